"""One `nse_option_chain` run for 200 underlyings under a real Airflow scheduler, timed.

python -m bench.option_chain_scheduler [--api-rate N] [--batch-size N] [--keep DIR]

Builds a throw-away Airflow home (SQLite, LocalExecutor, parallelism 4, the demo's environment
from `scripts/airflow-env.sh`, everything on 127.0.0.1 on free ports), serves generated chains
for the 200 underlyings from the stand-in, applies `airflow_settings.yaml` (so the `nse_api`
pool has its 4 slots) with ClickHouse in a database of its own, sets the underlyings Variable
and creates a one-slot backfill before the daemons start (SQLite takes one writer at a time).
The api-server starts first and the scheduler and dag-processor once it answers, as in a
deployment where it is always up. The bench then waits for the run and prints its duration (end
- start in the metadata database), the share of the 5-minute interval, how much of it no task
was running (scheduling and task start-up), and per task its instances, their summed run time,
their wall-clock span and their longest wait in the queue; and stops what it started.

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
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench.option_chain import INTERVAL, UNDERLYINGS, names

ROOT = Path(__file__).resolve().parents[1]
DAG_ID = "nse_option_chain"
#: A trading day (F&O) whose 15:30 slot the backfill runs; the stand-in serves that snapshot.
DAY = dt.date(2024, 7, 31)
#: Ports other local services use; a free port is never one of these.
TAKEN_PORTS = {8080, 8081, 8765, 8766, 19000, 19100}
RUN_TIMEOUT = 900
#: The client's API rate limit per task in the bench (requests a second): lifted, on loopback.
API_RATE = 1000.0


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in TAKEN_PORTS:
            return port


def airflow_env(home: Path, port: int, extra: dict[str, str]) -> dict[str, str]:
    """The demo's Airflow environment (sourced, not copied) for `home`, plus `extra`."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "NSE_", "CLICKHOUSE_", "MLFLOW_", "CH_"))
    }
    sourced = subprocess.run(
        ["bash", "-c", 'source "$1" && env -0', "bash", str(ROOT / "scripts/airflow-env.sh")],
        env=inherited | {"AIRFLOW_HOME": str(home), "AIRFLOW_PORT": str(port)},
        capture_output=True,
        check=True,
    ).stdout.decode()
    env = dict(item.split("=", 1) for item in sourced.split("\0") if "=" in item)
    return env | extra


class Airflow:
    """The `airflow` command and its daemons in one home; daemons run in their own groups."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.logs = home / "bench-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.daemons: dict[str, subprocess.Popen] = {}

    def run(self, *args: str) -> float:
        """Run one command to completion; returns its seconds."""
        started = time.perf_counter()
        log = self.logs / f"{args[0].replace('/', '_')}-{len(os.listdir(self.logs))}.log"
        command = [str(ROOT / ".venv/bin/airflow"), *args]
        if args[0].endswith(".py"):
            command = [sys.executable, *args]
        with open(log, "wb") as out:
            done = subprocess.run(command, env=self.env, cwd=ROOT, stdout=out, stderr=out)
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{_tail(log)}")
        return time.perf_counter() - started

    def start(self, name: str) -> None:
        with open(self.logs / f"{name}.log", "wb") as out:
            self.daemons[name] = subprocess.Popen(
                [str(ROOT / ".venv/bin/airflow"), name],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def stop(self) -> None:
        """TERM each daemon's process group, then KILL what is left after 20 s."""
        for process in self.daemons.values():
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.daemons.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(process, signal.SIGKILL)
            process.wait()
        self.daemons = {}

    def wait_http(self, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_daemons()
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")

    def check_daemons(self) -> None:
        for name, process in self.daemons.items():
            if process.poll() is not None:
                log = self.logs / f"{name}.log"
                raise RuntimeError(f"{name} exited ({process.returncode}):\n{_tail(log)}")


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def wait_for_run(db: Path, airflow: Airflow, timeout: float) -> dict:
    """The backfill's run once it has finished, read from the metadata database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow.check_daemons()
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            row = con.execute(
                "SELECT run_id, state, start_date, end_date FROM dag_run "
                "WHERE dag_id = ? AND backfill_id IS NOT NULL",
                (DAG_ID,),
            ).fetchone()
        if row and row[1] in ("success", "failed"):
            return {"run_id": row[0], "state": row[1], "start": _time(row[2]), "end": _time(row[3])}
        time.sleep(1)
    raise TimeoutError(f"the {DAG_ID} run did not finish within {timeout:.0f} s")


def task_breakdown(db: Path, run_id: str) -> list[dict]:
    """Per task: instances, states, summed run time, wall-clock span, longest queue wait."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        rows = con.execute(
            "SELECT task_id, state, start_date, end_date, queued_dttm FROM task_instance "
            "WHERE dag_id = ? AND run_id = ?",
            (DAG_ID, run_id),
        ).fetchall()
    tasks: dict[str, dict] = {}
    for task_id, state, start, end, queued in rows:
        start, end, queued = _time(start), _time(end), _time(queued)
        task = tasks.setdefault(
            task_id,
            {
                "task": task_id,
                "n": 0,
                "states": {},
                "run": 0.0,
                "first": start,
                "last": end,
                "instances": [],
            },
        )
        task["n"] += 1
        task["states"][state] = task["states"].get(state, 0) + 1
        if start and end:
            task["instances"].append({"start": start, "end": end})
            task["run"] += (end - start).total_seconds()
            task["first"] = min(filter(None, (task["first"], start)))
            task["last"] = max(filter(None, (task["last"], end)))
        if start and queued:
            task["queued"] = max(task.get("queued", 0.0), (start - queued).total_seconds())
    never = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(tasks.values(), key=lambda t: t["first"] or never)


def busy_seconds(tasks: list[dict]) -> float:
    """Seconds during which at least one task instance was running."""
    spans = sorted((i["start"], i["end"]) for t in tasks for i in t["instances"])
    busy, until = 0.0, None
    for start, end in spans:
        if until is None or start > until:
            busy += (end - start).total_seconds()
            until = end
        elif end > until:
            busy += (end - until).total_seconds()
            until = end
    return busy


def bench(work: Path, api_rate: float, batch_size: int | None = None) -> int:
    from clickhouse_driver import Client

    from include.nse.sources.option_chain import IST
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
    ch_port = os.environ.get("CLICKHOUSE_PORT", "19000")
    database = f"bench_{uuid.uuid4().hex[:8]}"
    home = work / "airflow"
    with StandIn(work / "nse") as standin:
        env = airflow_env(
            home,
            free_port(),
            {
                "NSE_LAKE_ROOT": str(work / "lake"),
                "NSE_ARCHIVE_BASE_URL": standin.url,
                "NSE_API_BASE_URL": standin.url,
                "NSE_API_RATE": str(api_rate),
                "CLICKHOUSE_HOST": "127.0.0.1",
                "CLICKHOUSE_PORT": ch_port,
                "CLICKHOUSE_DATABASE": database,
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
            run = wait_for_run(home / "airflow.db", airflow, RUN_TIMEOUT)
            waited = time.perf_counter() - started
        finally:
            airflow.stop()
            client = Client(host="127.0.0.1", port=int(ch_port))
            client.execute(f"DROP DATABASE IF EXISTS {database}")
            client.disconnect()
    duration = (run["end"] - run["start"]).total_seconds()
    tasks = task_breakdown(home / "airflow.db", run["run_id"])
    print(
        f"{DAG_ID} run under the scheduler ({len(underlyings)} underlyings, "
        f"load average {os.getloadavg()[0]:.2f}): {run['state']} in {duration:.1f} s "
        f"({duration / INTERVAL.total_seconds():.1%} of a 5-minute interval; "
        f"target 60 s {'met' if duration < 60 and run['state'] == 'success' else 'NOT met'}); "
        f"scheduler started to run finished {waited:.1f} s; no task running for "
        f"{duration - busy_seconds(tasks):.1f} s of the run",
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
            f"{task.get('queued', 0.0):>8.1f}  {states}"
        )
    return 0 if run["state"] == "success" else 1


def bench_scheduler(root: Path) -> None:
    """For `python -m bench`: the run with the default options, in `root`."""
    if bench(root / "scheduler", API_RATE):
        raise RuntimeError(f"the {DAG_ID} run under the scheduler failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-rate", type=float, default=API_RATE, help="requests/s per task")
    parser.add_argument("--batch-size", type=int, help="underlyings per mapped fetch task")
    parser.add_argument("--keep", type=Path, help="a new directory to work in and keep")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True)
        return bench(args.keep, args.api_rate, args.batch_size)
    with tempfile.TemporaryDirectory(prefix="bench-scheduler-") as tmp:
        return bench(Path(tmp), args.api_rate, args.batch_size)


if __name__ == "__main__":
    sys.exit(main())
