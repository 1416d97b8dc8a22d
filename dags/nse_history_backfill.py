"""
### NSE history backfill

Loads years of history on purpose: every trading day from `start` to `end` of the chosen
`datasets` (each on its own segment's trading days), through the same gated chain as the daily
DAGs: fetched into bronze, parsed into silver, checked, loaded into ClickHouse.

1. **plan** cuts the range into chunks of the trading calendar (`chunk`: month, week or day);
2. **load** runs one mapped task per chunk, named by its range, in the `nse_backfill` pool, at
   most `max_parallel_chunks` of this run at once. Inside a chunk, fetching, parsing with the
   gate, and loading overlap, and several days go to ClickHouse per insert. A bad day (not
   published, unreadable, failing the gate) is recorded and the others go on; every day's
   outcome is in `nse.backfill_days`;
3. **summarize** lists the days loaded, skipped and failed, and fails (so Slack gets the
   summary) when any failed;
4. **publish_&lt;dataset&gt;** emits each loaded dataset's asset once for the range, so the gold
   DAG runs once for it rather than once per day.

Run it again for the same range to resume: days loaded before from the same bronze files (and
still holding their rows) are skipped without a request; `reload` loads them again.
"""

from __future__ import annotations

from include.nse_airflow.history import history_dag

dag = history_dag("nse_history_backfill", doc_md=__doc__, tags=["nse", "history", "backfill"])
