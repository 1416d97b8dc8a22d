"""What a task costs under a real scheduler: one `nse_cm_bhavcopy` day per executor, per task.

python -m bench.task_cost [--keep DIR]

Runs the equity DAG for one trade date (both datasets: fetch, parse, validate, load) against the
stand-in twice, each time in a throw-away Airflow home with the api-server, scheduler and
dag-processor on 127.0.0.1: first with Airflow's `LocalExecutor` (the baseline: each task
imports what it uses), then with `PreloadingLocalExecutor` (the pipeline's libraries imported
once, before the workers fork; `include/nse_airflow/executor.py`). For each task it prints the
wall time of its instance and the CPU its process used (each task reports `cpu_seconds`), and
for the run its duration from the metadata database, with the ratio preloaded / baseline.

It reports, preloading against the LocalExecutor: the run's duration, and a task's mean wall
time and CPU. The day's files are small, so a task's time is nearly all overhead (the
process, the imports, the DAG file's parse, the API calls). Targets: a task under 3 s of wall
time and 1 s of CPU on average (a DAG of a dozen tasks then spends seconds, not minutes, on
overhead); the run under 0.75 of the LocalExecutor's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import uuid
from pathlib import Path

from bench.airflow_harness import (
    Airflow,
    airflow_env,
    clickhouse_database,
    free_port,
    task_breakdown,
    wait_for_run,
)
from bench.results import Result, table

DAG_ID = "nse_cm_bhavcopy"
#: A CM trading day of the generated month.
DAY = dt.date(2024, 7, 5)
EXECUTORS = {
    "LocalExecutor": "LocalExecutor",
    "preloading": "include.nse_airflow.executor.PreloadingLocalExecutor",
}
TASK_TARGET, TASK_CPU_TARGET, RUN_TARGET = 3.0, 1.0, 0.75


def run_once(work: Path, standin_url: str, executor: str) -> dict:
    """One backfilled day of the DAG with `executor`; the run and its tasks."""
    home = work / f"airflow-{executor.rsplit('.', 1)[-1]}"
    with clickhouse_database() as clickhouse:
        env = airflow_env(
            home,
            free_port(),
            {
                "NSE_LAKE_ROOT": str(work / f"lake-{uuid.uuid4().hex[:6]}"),
                "NSE_ARCHIVE_BASE_URL": standin_url,
                "NSE_API_BASE_URL": standin_url,
                **clickhouse,
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
            airflow.run(
                "backfill", "create", "--dag-id", DAG_ID, "--from-date", day, "--to-date", day
            )
            airflow.start("api-server")
            airflow.wait_http(env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health", 180)
            airflow.start("scheduler")
            airflow.start("dag-processor")
            run = wait_for_run(home / "airflow.db", airflow, DAG_ID)
        finally:
            airflow.stop()
    run["tasks"] = task_breakdown(home / "airflow.db", DAG_ID, run["run_id"])
    run["seconds"] = (run["end"] - run["start"]).total_seconds()
    return run


def bench(work: Path) -> list[Result]:
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
    for task in base["tasks"]:
        mine = ours_by_task[task["task"]]
        print(
            f"  {task['task']:<24}{task['run']:>6.1f} {mine['run']:>6.1f}"
            f"{_ratio(mine['run'], task['run']):>8}"
            f"{task['cpu'] or 0:>6.1f} {mine['cpu'] or 0:>6.1f}"
            f"{_ratio(mine['cpu'], task['cpu']):>8}"
        )
    print(
        f"  {'whole run':<24}{base['seconds']:>6.1f} {ours['seconds']:>6.1f}"
        f"{_ratio(ours['seconds'], base['seconds']):>8}",
        flush=True,
    )
    (base_wall, base_cpu), (wall, cpu) = _per_task(base), _per_task(ours)
    instances = sum(t["n"] for t in ours["tasks"])
    compared = f"preloading vs the LocalExecutor, {instances} task instances"
    return [
        Result(
            name=f"task_cost task wall ({DAG_ID})",
            figure=wall,
            unit="s",
            baseline=base_wall,
            baseline_name="LocalExecutor",
            higher_is_better=False,
            target=f"under {TASK_TARGET:g} s a task",
            met=wall < TASK_TARGET,
            note=f"mean over the run's tasks; {compared}",
        ),
        Result(
            name=f"task_cost task CPU ({DAG_ID})",
            figure=cpu,
            unit="s",
            baseline=base_cpu,
            baseline_name="LocalExecutor",
            higher_is_better=False,
            target=f"under {TASK_CPU_TARGET:g} s a task",
            met=cpu < TASK_CPU_TARGET,
            note=f"mean CPU a task's process used (cpu_seconds); {compared}",
        ),
        Result(
            name=f"task_cost run ({DAG_ID} {DAY})",
            figure=ours["seconds"],
            unit="s",
            baseline=base["seconds"],
            baseline_name="LocalExecutor",
            higher_is_better=False,
            target=f"under {RUN_TARGET:g}x the LocalExecutor",
            met=ours["seconds"] < RUN_TARGET * base["seconds"],
            note=f"the run's duration in the metadata database; {compared}",
        ),
    ]


def _per_task(run: dict) -> tuple[float, float]:
    """Mean wall time and mean CPU of the run's task instances."""
    tasks = run["tasks"]
    instances = sum(t["n"] for t in tasks)
    with_cpu = [t for t in tasks if t["cpu"] is not None]
    if not instances or not with_cpu:
        raise RuntimeError(f"the {DAG_ID} run reported no task instances with their CPU")
    wall = sum(t["run"] for t in tasks) / instances
    return wall, sum(t["cpu"] for t in with_cpu) / sum(t["n"] for t in with_cpu)


def _ratio(ours: float | None, base: float | None) -> str:
    return f"{ours / base:.2f}x" if ours and base else "-"


def bench_task_cost(root: Path) -> list[Result]:
    """For `python -m bench`."""
    return bench(root / "task_cost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="a new directory to work in and keep")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True)
        print(table(bench(args.keep)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-task-cost-") as tmp:
        print(table(bench(Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
