"""What a task costs under a real scheduler: one `nse_cm_bhavcopy` day per executor, per task.

python -m bench.task_cost [--keep DIR]

Runs the equity DAG for one trade date (both datasets: fetch, parse, validate, load) against the
stand-in twice, each time in a throw-away Airflow home with the api-server, scheduler and
dag-processor on 127.0.0.1: first with Airflow's `LocalExecutor` (the baseline: each task
imports what it uses), then with `PreloadingLocalExecutor` (the pipeline's libraries imported
once, before the workers fork; `include/nse_airflow/executor.py`). For each task it prints the
wall time of its instance and the CPU its process used (each task reports `cpu_seconds`), and
for the run its duration from the metadata database, with the ratio preloaded / baseline.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import uuid
from pathlib import Path

from bench.airflow_harness import Airflow, airflow_env, free_port, task_breakdown, wait_for_run

DAG_ID = "nse_cm_bhavcopy"
#: A CM trading day of the generated month.
DAY = dt.date(2024, 7, 5)
EXECUTORS = {
    "LocalExecutor": "LocalExecutor",
    "preloading": "include.nse_airflow.executor.PreloadingLocalExecutor",
}


def run_once(work: Path, standin_url: str, executor: str) -> dict:
    """One backfilled day of the DAG with `executor`; the run and its tasks."""
    from clickhouse_driver import Client

    ch_port = os.environ.get("CLICKHOUSE_PORT", "19000")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    home = work / f"airflow-{executor.rsplit('.', 1)[-1]}"
    env = airflow_env(
        home,
        free_port(),
        {
            "NSE_LAKE_ROOT": str(work / f"lake-{uuid.uuid4().hex[:6]}"),
            "NSE_ARCHIVE_BASE_URL": standin_url,
            "NSE_API_BASE_URL": standin_url,
            "CLICKHOUSE_HOST": "127.0.0.1",
            "CLICKHOUSE_PORT": ch_port,
            "CLICKHOUSE_DATABASE": database,
            "NSE_MLFLOW_ENABLED": "false",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        },
    )
    airflow = Airflow(home, env)
    day = f"{DAY.isoformat()}T18:30:00+05:30"
    try:
        airflow.run("db", "migrate")
        airflow.run("scripts/apply_airflow_settings.py", "airflow_settings.yaml")
        airflow.run("dags", "reserialize")
        airflow.run("dags", "unpause", DAG_ID)
        airflow.run("backfill", "create", "--dag-id", DAG_ID, "--from-date", day, "--to-date", day)
        airflow.start("api-server")
        airflow.wait_http(env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health", 180)
        airflow.start("scheduler")
        airflow.start("dag-processor")
        run = wait_for_run(home / "airflow.db", airflow, DAG_ID)
    finally:
        airflow.stop()
        client = Client(host="127.0.0.1", port=int(ch_port))
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()
    run["tasks"] = task_breakdown(home / "airflow.db", DAG_ID, run["run_id"])
    run["seconds"] = (run["end"] - run["start"]).total_seconds()
    return run


def bench(work: Path) -> dict:
    from include.nse_standin.generate import generate
    from include.nse_standin.server import StandIn

    generate(DAY, DAY, work / "nse")
    with StandIn(work / "nse") as standin:
        runs = {name: run_once(work, standin.url, path) for name, path in EXECUTORS.items()}
    base, ours = runs["LocalExecutor"], runs["preloading"]
    for name, run in runs.items():
        if run["state"] != "success":
            raise RuntimeError(f"the {DAG_ID} run with {name} ended {run['state']}")
    print(
        f"{DAG_ID} {DAY} under a real scheduler, LocalExecutor vs preloading "
        f"(load average {os.getloadavg()[0]:.2f})",
        flush=True,
    )
    print(f"  {'task':<24}{'wall s':>14}{'ratio':>8}{'cpu s':>14}{'ratio':>8}")
    ours_by_task = {t["task"]: t for t in ours["tasks"]}
    totals = {"base_cpu": 0.0, "ours_cpu": 0.0}
    for task in base["tasks"]:
        mine = ours_by_task[task["task"]]
        totals["base_cpu"] += task["cpu"] or 0.0
        totals["ours_cpu"] += mine["cpu"] or 0.0
        print(
            f"  {task['task']:<24}{task['run']:>6.1f} {mine['run']:>6.1f}"
            f"{_ratio(mine['run'], task['run']):>8}"
            f"{task['cpu'] or 0:>6.1f} {mine['cpu'] or 0:>6.1f}"
            f"{_ratio(mine['cpu'], task['cpu']):>8}"
        )
    print(
        f"  {'whole run':<24}{base['seconds']:>6.1f} {ours['seconds']:>6.1f}"
        f"{_ratio(ours['seconds'], base['seconds']):>8}"
        f"{totals['base_cpu']:>6.1f} {totals['ours_cpu']:>6.1f}"
        f"{_ratio(totals['ours_cpu'], totals['base_cpu']):>8}",
        flush=True,
    )
    return {"baseline": base, "preloading": ours, **totals}


def _ratio(ours: float | None, base: float | None) -> str:
    return f"{ours / base:.2f}x" if ours and base else "-"


def bench_task_cost(root: Path) -> None:
    """For `python -m bench`."""
    bench(root / "task_cost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="a new directory to work in and keep")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True)
        bench(args.keep)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-task-cost-") as tmp:
        bench(Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
