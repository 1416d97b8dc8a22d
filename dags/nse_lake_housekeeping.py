"""
### NSE lake housekeeping

Keeps years of intraday data tidy, every day at 16:30 IST, after the close:

1. **compact** folds each finished day's option-chain files (one per underlying and cycle, in
   silver and in gold) into one Parquet file per day, checking every row is in it before the
   small files go;
2. **prune_bronze** removes the raw option-chain responses of compacted days older than the
   retention (`keep_bronze_days`, else `NSE_INTRADAY_BRONZE_KEEP_DAYS`); with neither set it
   skips and bronze keeps everything;
3. **drop_stale_stages** drops the ClickHouse staging tables left behind by loads that died
   (older than an hour, or than the server's last start).

Each task's result and log say what it did: days, files, rows, bytes and tables.
"""

from __future__ import annotations

from include.nse_airflow.housekeeping import housekeeping_dag

dag = housekeeping_dag(
    "nse_lake_housekeeping", doc_md=__doc__, tags=["nse", "lake", "housekeeping"]
)
