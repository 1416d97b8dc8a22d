"""Airflow's side of the pipeline: one builder turns datasets into a DAG's tasks.

`include.nse` runs the chain (fetch -> bronze -> parse -> silver -> gate -> load) without knowing
Airflow; this package knows Airflow and little else. `nse_dag` builds the task chain of any
dataset from its `Dataset` description, resolves what a task needs from Airflow (the run's trade
date and params, NSE's hosts from connections, ClickHouse from the provider's hook) and maps each
step's outcome to Airflow's vocabulary. A DAG file says *when* and *which datasets*.
"""

from include.nse_airflow.tasks import DEFAULT_ARGS, nse_dag

__all__ = ["DEFAULT_ARGS", "nse_dag"]
