"""The gold layer: analytics over silver, computed by PySpark jobs (YARN in production).

Each job (`jobs.JOBS`, job name -> function) reads the silver Parquet it needs from a lake root
and writes `gold/<dataset>/trade_date=YYYY-MM-DD/` for the dates of one run, replacing those
folders whole and no others. `run.py` is the `spark-submit` entry point.

The job modules (everything here but `datasets.py` and `local.py`) import only pyspark and the
standard library: they ship to the executors as a zip (`local.build_zip`) holding this folder as
the package `nse_gold`, and import each other relatively, so they work as `nse_gold` on YARN and
as `include.nse_gold` in a checkout. `datasets.py` (the warehouse side: columns, checks, reading
a gold partition with polars) and `local.py` (building the zip, submitting a job on this machine)
run in Airflow tasks and tests, never on executors.
"""
