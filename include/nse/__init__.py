"""NSE market data: fetch, keep, parse and load NSE's published files.

The library knows nothing of Airflow; DAGs, the command line and tests all call it the same way.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
