"""A year of CM and F&O history through `nse_history_backfill` under a real scheduler.

python -m bench history_scheduler

The stand-in generates a year of trading days (2023-07-03 to 2024-06-28, about 250 days a
segment) of CM and F&O bhavcopies for 300 securities. The same chunks (a month each, one at a
time) load twice against it, each into a database and lake of its own:

- **the library**: `include.nse.history.load_chunk` for each chunk in one process, what
  `python -m include.nse ingest` runs: the work without Airflow (the baseline);
- **the scheduler**: `airflow dags trigger nse_history_backfill` with the range, `chunk` month and
  `max_parallel_chunks` 1, in a throw-away Airflow home with the api-server, scheduler and
  dag-processor on 127.0.0.1 and the demo's executor; timed from the run's start to its end in
  the metadata database.

It reports rows per second both ways, and the share of the scheduled run's wall time that is
Airflow's own (planning, queueing, task start-up, the summary and asset tasks): 1 - library /
scheduler. Targets: the scheduled load at least 0.85 of the library's speed (Airflow's share
under 15%).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid
from pathlib import Path

from bench.airflow_harness import Airflow, airflow_env, clickhouse_database, free_port
from bench.results import Result

FIRST, LAST = dt.date(2023, 7, 3), dt.date(2024, 6, 28)
DATASETS = ["cm_bhavcopy", "fo_bhavcopy"]
SYMBOLS = 300
DAG_ID = "nse_history_backfill"
RUN_TIMEOUT = 3600
SHARE_TARGET = 0.15


def _library(nse: Path, work: Path) -> dict:

    from include.nse import history, pipeline, quality
    from include.nse.config import Settings
    from include.nse.warehouse import Warehouse, connector
    from include.nse_standin.server import StandIn

    quality._gx()
    with clickhouse_database() as env, StandIn(nse) as standin:
        server = {
            "host": env["CLICKHOUSE_HOST"],
            "port": int(env["CLICKHOUSE_PORT"]),
            "user": env["CLICKHOUSE_USER"],
            "password": env["CLICKHOUSE_PASSWORD"],
        }

        settings = Settings(
            lake_root=work / "lake-library",
            archive_base_url=standin.url,
            archive_rate_per_second=1000,
        )
        ctx = pipeline.Context(
            settings,
            Warehouse(connector(**server, send_receive_timeout=600), env["CLICKHOUSE_DATABASE"]),
        )
        chunks = history.plan(FIRST, LAST, DATASETS, chunk="month")
        started = time.perf_counter()
        outcomes = [o for chunk in chunks for o in history.load_chunk(ctx, chunk, reload=True)]
        seconds = time.perf_counter() - started
    summary = history.summarize(outcomes)
    if summary["failed"]:
        raise RuntimeError(f"the library's load failed days: {summary['failed_days'][:3]}")
    return {"rows": summary["rows"], "days": summary["loaded"], "seconds": seconds}


def _scheduled(nse: Path, work: Path) -> dict:
    from include.nse_standin.server import StandIn

    home = work / "airflow"
    with clickhouse_database() as clickhouse, StandIn(nse) as standin:
        env = airflow_env(
            home,
            free_port(),
            {
                "NSE_LAKE_ROOT": str(work / "lake-scheduler"),
                "NSE_ARCHIVE_BASE_URL": standin.url,
                "NSE_API_BASE_URL": standin.url,
                "NSE_ARCHIVE_RATE": "1000",
                **clickhouse,
                "NSE_MLFLOW_ENABLED": "false",
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            },
        )
        airflow = Airflow(home, env)
        run_id = f"manual__bench_{uuid.uuid4().hex[:8]}"
        conf = {
            "start": FIRST.isoformat(),
            "end": LAST.isoformat(),
            "datasets": DATASETS,
            "chunk": "month",
            "max_parallel_chunks": 1,
            "reload": True,
        }
        try:
            airflow.run("db", "migrate")
            airflow.run("scripts/apply_airflow_settings.py", "airflow_settings.yaml")
            airflow.run("dags", "reserialize")
            airflow.run("dags", "unpause", DAG_ID)
            airflow.start("api-server")
            airflow.wait_http(env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health", 180)
            airflow.start("scheduler")
            airflow.start("dag-processor")
            airflow.run("dags", "trigger", DAG_ID, "--run-id", run_id, "--conf", json.dumps(conf))
            run = _wait(home / "airflow.db", airflow, run_id)
        finally:
            airflow.stop()
    if run["state"] != "success":
        raise RuntimeError(f"the {DAG_ID} run ended {run['state']}; see {airflow.logs}")
    return run


def _wait(db: Path, airflow: Airflow, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        airflow.check_daemons()
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            row = con.execute(
                "SELECT state, start_date, end_date FROM dag_run WHERE dag_id = ? AND run_id = ?",
                (DAG_ID, run_id),
            ).fetchone()
            if row and row[0] in ("success", "failed"):
                summary = con.execute(
                    "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND "
                    "task_id = 'summarize' AND key = 'return_value'",
                    (DAG_ID, run_id),
                ).fetchone()
                start, end = (dt.datetime.fromisoformat(v) for v in row[1:])
                result = json.loads(summary[0]) if summary else {}
                return {
                    "state": row[0],
                    "seconds": (end - start).total_seconds(),
                    "rows": result.get("rows", 0),
                    "days": result.get("loaded", 0),
                }
        time.sleep(2)
    raise TimeoutError(f"the {DAG_ID} run did not finish within {RUN_TIMEOUT} s")


def bench_history_scheduler(root: Path) -> list[Result]:
    from include.nse_standin.generate import generate

    work = root / "history-scheduler"
    nse = work / "nse"
    started = time.perf_counter()
    generate(FIRST, LAST, nse, symbols=SYMBOLS, datasets=DATASETS)
    print(
        f"history_scheduler: generated a year in {time.perf_counter() - started:.0f} s", flush=True
    )
    library = _library(nse, work)
    print(f"history_scheduler: library {library}", flush=True)
    scheduled = _scheduled(nse, work)
    print(f"history_scheduler: scheduler {scheduled}", flush=True)
    if (scheduled["rows"], scheduled["days"]) != (library["rows"], library["days"]):
        raise RuntimeError(f"the two loads differ: library {library}, scheduler {scheduled}")
    rate = {
        way: got["rows"] / got["seconds"] for way, got in (("lib", library), ("sched", scheduled))
    }
    share = 1 - library["seconds"] / scheduled["seconds"]
    note = (
        f"{library['days']} days, {library['rows']:,} rows; library {library['seconds']:.0f} s, "
        f"scheduler {scheduled['seconds']:.0f} s"
    )
    return [
        Result(
            "history year CM+FO under scheduler",
            rate["sched"],
            "rows/s",
            rate["lib"],
            "the same chunks through the library",
            True,
            f"at least {1 - SHARE_TARGET:.2f}x the library",
            rate["sched"] >= (1 - SHARE_TARGET) * rate["lib"],
            note=note,
        ),
        Result(
            "history year: Airflow's share of wall time",
            100 * share,
            "%",
            None,
            "",
            False,
            f"under {100 * SHARE_TARGET:.0f}%",
            share < SHARE_TARGET,
            note=note,
        ),
    ]
