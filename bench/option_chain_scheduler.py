"""One `nse_option_chain` run for 200 underlyings under a real Airflow scheduler, timed.

python -m bench.option_chain_scheduler [--api-rate N] [--batch-size N] [--keep DIR]

Builds a throw-away Airflow home (SQLite, LocalExecutor, parallelism 4, the demo's environment
from `scripts/airflow-env.sh`, everything on 127.0.0.1 on free ports), serves generated chains
for the 200 underlyings from the stand-in, applies `airflow_settings.yaml` (so the `nse_api`
pool has its 4 slots) with ClickHouse in a database of its own, sets the underlyings Variable
and creates a one-slot backfill before the daemons start (SQLite takes one writer at a time).
The api-server starts first and the scheduler and dag-processor once it answers, as in a
deployment where it is always up. The bench then waits for the run, prints per task its
instances, their summed run time, their wall-clock span and their longest wait in the queue,
stops what it started, and reports the run's duration (end - start in the metadata database)
against the 5-minute interval, and how much of it no task was running (scheduling and task
start-up) against the whole run.

Targets: the run under a fifth of the interval (60 s), as `bench.option_chain`'s cycle; no task
running for under a quarter of the run (the scheduler's own share).

The scheduler only starts the backfill's run (`use_job_schedule` off): unpausing the DAG would
otherwise also schedule its latest slot, a second cycle over the same stand-in. MLflow tracking
is off. The client's API rate is lifted (`--api-rate`, default 1000 a second per task) as in
`bench.option_chain`; NSE's default is `Settings.api_rate_per_second`. `--batch-size` sets the
run's `batch_size` param (default: the DAG's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.airflow_harness import (
    RUN_TIMEOUT,
    Airflow,
    airflow_env,
    busy_seconds,
    clickhouse_database,
    free_port,
    task_breakdown,
    wait_for_run,
)
from bench.option_chain import INTERVAL, TARGET_SHARE, UNDERLYINGS, names
from bench.results import Result, table

DAG_ID = "nse_option_chain"
#: A trading day (F&O) whose 15:30 slot the backfill runs; the stand-in serves that snapshot.
DAY = dt.date(2024, 7, 31)
#: The client's API rate limit per task in the bench (requests a second): lifted, on loopback.
API_RATE = 1000.0
#: The share of the run during which no task may be running.
IDLE_TARGET = 0.25


def bench(work: Path, api_rate: float, batch_size: int | None = None) -> list[Result]:
    from include.nse.dates import IST
    from include.nse_standin.option_chain import write_option_chains
    from include.nse_standin.server import StandIn

    underlyings = names(UNDERLYINGS)
    snapshot = dt.datetime.combine(DAY, dt.time(15, 30), IST)
    written = write_option_chains(work / "nse", underlyings, snapshot)
    print(
        f"generated {len(underlyings)} chains as of {snapshot:%Y-%m-%d %H:%M}: "
        f"{written['files']} responses, {written['bytes'] / 1e6:.1f} MB",
        flush=True,
    )
    home = work / "airflow"
    with StandIn(work / "nse") as standin, clickhouse_database() as clickhouse:
        env = airflow_env(
            home,
            free_port(),
            {
                "NSE_LAKE_ROOT": str(work / "lake"),
                "NSE_ARCHIVE_BASE_URL": standin.url,
                "NSE_API_BASE_URL": standin.url,
                "NSE_API_RATE": str(api_rate),
                **clickhouse,
                "NSE_MLFLOW_ENABLED": "false",
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            },
        )
        airflow = Airflow(home, env)
        slot = f"{DAY.isoformat()}T15:30:00+05:30"
        steps = [
            ("db migrate", ("db", "migrate")),
            ("settings", ("scripts/apply_airflow_settings.py", "airflow_settings.yaml")),
            ("reserialize", ("dags", "reserialize")),
            (
                "variable",
                ("variables", "set", "nse_option_chain_underlyings", json.dumps(underlyings)),
            ),
            ("unpause", ("dags", "unpause", DAG_ID)),
            ("backfill", ("backfill", "create", "--dag-id", DAG_ID)),
        ]
        try:
            for label, args in steps:
                if label == "backfill":
                    args = (*args, "--from-date", slot, "--to-date", slot)
                    if batch_size:
                        args = (*args, "--dag-run-conf", json.dumps({"batch_size": batch_size}))
                print(f"  {label}: {airflow.run(*args):.1f} s", flush=True)
            airflow.start("api-server")
            airflow.wait_http(env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health", 180)
            started = time.perf_counter()
            airflow.start("scheduler")
            airflow.start("dag-processor")
            run = wait_for_run(home / "airflow.db", airflow, DAG_ID, RUN_TIMEOUT)
            waited = time.perf_counter() - started
        finally:
            airflow.stop()
    duration = (run["end"] - run["start"]).total_seconds()
    tasks = task_breakdown(home / "airflow.db", DAG_ID, run["run_id"])
    idle = duration - busy_seconds(tasks)
    print(
        f"{DAG_ID} run under the scheduler ({len(underlyings)} underlyings, "
        f"load average {os.getloadavg()[0]:.2f}): {run['state']} in {duration:.1f} s; "
        f"scheduler started to run finished {waited:.1f} s; no task running for {idle:.1f} s",
        flush=True,
    )
    print(f"  {'task':<16}{'n':>3}  {'run s (sum)':>11}  {'span s':>8}  {'queued s':>8}  states")
    for task in tasks:
        span = (
            (task["last"] - task["first"]).total_seconds() if task["first"] and task["last"] else 0
        )
        states = ", ".join(f"{n} {s}" for s, n in sorted(task["states"].items(), key=str))
        print(
            f"  {task['task']:<16}{task['n']:>3}  {task['run']:>11.1f}  {span:>8.1f}  "
            f"{task.get('queued', 0.0):>8.1f}  {states}",
            flush=True,
        )
    if run["state"] != "success":
        raise RuntimeError(f"the {DAG_ID} run under the scheduler ended {run['state']}")
    interval = INTERVAL.total_seconds()
    limit = TARGET_SHARE * interval
    instances = sum(task["n"] for task in tasks)
    return [
        Result(
            name=f"option_chain_scheduler run ({len(underlyings)} underlyings)",
            figure=duration,
            unit="s",
            baseline=interval,
            baseline_name="the 5-min interval",
            higher_is_better=False,
            target=f"under {limit:.0f} s ({TARGET_SHARE:.0%} of the interval)",
            met=duration < limit,
            note=f"{instances} task instances; scheduler start to run end {waited:.1f} s",
        ),
        Result(
            name="option_chain_scheduler idle",
            figure=idle,
            unit="s",
            baseline=duration,
            baseline_name="the run",
            higher_is_better=False,
            target=f"under {IDLE_TARGET:.0%} of the run",
            met=idle < IDLE_TARGET * duration,
            note="seconds of the run with no task running: scheduling and task start-up",
        ),
    ]


def bench_scheduler(root: Path) -> list[Result]:
    """For `python -m bench`: the run with the default options, in `root`."""
    return bench(root / "scheduler", API_RATE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-rate", type=float, default=API_RATE, help="requests/s per task")
    parser.add_argument("--batch-size", type=int, help="underlyings per mapped fetch task")
    parser.add_argument("--keep", type=Path, help="a new directory to work in and keep")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True)
        print(table(bench(args.keep, args.api_rate, args.batch_size)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        print(table(bench(Path(tmp), args.api_rate, args.batch_size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
