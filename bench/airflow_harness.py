"""Airflow under a real scheduler for the benchmarks: a throw-away home and its daemons.

`airflow_env` builds the demo's environment (sourced from `scripts/airflow-env.sh`) for a new
home on a free port; `Airflow` runs its commands and daemons (each daemon in its own process
group, stopped with its children); `wait_for_run` and `task_breakdown` read the outcome from the
SQLite metadata database without disturbing the scheduler; `clickhouse_database` gives a run
a database of its own on the benchmarks' ClickHouse server, dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Ports other local services use; a free port is never one of these.
TAKEN_PORTS = {8080, 8081, 8765, 8766, 19000, 19100}
RUN_TIMEOUT = 900


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


@contextmanager
def clickhouse_database() -> Iterator[dict[str, str]]:
    """The CLICKHOUSE_* variables for a new database on the server the benchmarks use (see
    `tests/local_clickhouse.py`); the database is dropped on exit."""
    from clickhouse_driver import Client

    from tests.local_clickhouse import clickhouse_settings

    server = clickhouse_settings()
    database = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        yield {
            "CLICKHOUSE_HOST": server["host"],
            "CLICKHOUSE_PORT": str(server["port"]),
            "CLICKHOUSE_USER": server["user"],
            "CLICKHOUSE_PASSWORD": server["password"],
            "CLICKHOUSE_DATABASE": database,
        }
    finally:
        client = Client(**server)
        try:
            client.execute(f"DROP DATABASE IF EXISTS {database}")
        finally:
            client.disconnect()


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


def wait_for_run(db: Path, airflow: Airflow, dag_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    """The DAG's backfill run once it has finished, read from the metadata database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        airflow.check_daemons()
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
            row = con.execute(
                "SELECT run_id, state, start_date, end_date FROM dag_run "
                "WHERE dag_id = ? AND backfill_id IS NOT NULL",
                (dag_id,),
            ).fetchone()
        if row and row[1] in ("success", "failed"):
            return {"run_id": row[0], "state": row[1], "start": _time(row[2]), "end": _time(row[3])}
        time.sleep(1)
    raise TimeoutError(f"the {dag_id} run did not finish within {timeout:.0f} s")


def task_breakdown(db: Path, dag_id: str, run_id: str) -> list[dict]:
    """Per task: instances, states, summed run time, wall-clock span, longest queue wait, and
    the CPU seconds the instances report in their results (`cpu_seconds`)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        rows = con.execute(
            "SELECT task_id, state, start_date, end_date, queued_dttm FROM task_instance "
            "WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
        results = con.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND run_id = ? "
            "AND key = 'return_value'",
            (dag_id, run_id),
        ).fetchall()
    cpu: dict[str, float] = {}
    for task_id, value in results:
        result = json.loads(value) if isinstance(value, str | bytes) else value
        if isinstance(result, dict) and "cpu_seconds" in result:
            cpu[task_id] = cpu.get(task_id, 0.0) + float(result["cpu_seconds"])
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
        task["cpu"] = cpu.get(task_id)
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
