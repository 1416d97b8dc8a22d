"""Backfills under a real scheduler: Airflow's own `backfill create` over two weeks of the equity
DAG (one run per trading day, a weekend session included, none on the holiday), its reprocessing,
and the history DAG keeping to its `max_parallel_chunks`."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
import uuid

import pytest
from clickhouse_driver import Client

from bench.airflow_harness import Airflow, airflow_env, free_port
from include.nse import sources
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.conftest import new_database
from tests.helpers import read_records

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 2, 26), dt.date(2024, 3, 8)
#: Mahashivratri, a Friday NSE was closed; and a Saturday it opened (a disaster-recovery drill).
HOLIDAY, SATURDAY = dt.date(2024, 3, 8), dt.date(2024, 3, 2)
TRADING_DAYS = [
    *(dt.date(2024, 2, 26) + dt.timedelta(days=i) for i in range(5)),
    SATURDAY,
    *(dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(4)),
]
EQUITY = "nse_cm_bhavcopy"
HISTORY = "nse_history_backfill"
RUN_TIMEOUT = 420


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, clickhouse_server):
    """Airflow (api-server, scheduler, dag-processor, the demo's executor) in a home of its own,
    the NSE stand-in serving the fortnight, a ClickHouse database of its own."""
    work = tmp_path_factory.mktemp("scheduler")
    generate(
        FIRST,
        LAST,
        work / "nse",
        symbols=60,
        datasets=["cm_bhavcopy", "cm_delivery"],
        holidays=[HOLIDAY],
        weekend_sessions=[SATURDAY],
    )
    with StandIn(work / "nse") as standin, new_database(clickhouse_server) as database:
        env = airflow_env(
            work / "airflow",
            free_port(),
            {
                "NSE_LAKE_ROOT": str(work / "lake"),
                "NSE_ARCHIVE_BASE_URL": standin.url,
                "NSE_API_BASE_URL": standin.url,
                "CLICKHOUSE_HOST": clickhouse_server["host"],
                "CLICKHOUSE_PORT": str(clickhouse_server["port"]),
                "CLICKHOUSE_DATABASE": database,
                "NSE_MLFLOW_ENABLED": "false",
                # Only the runs the tests create: not each DAG's latest scheduled slot.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            },
        )
        daemons = Airflow(work / "airflow", env)
        daemons.run("db", "migrate")
        daemons.run("scripts/apply_airflow_settings.py", "airflow_settings.yaml")
        daemons.run("dags", "reserialize")
        for dag_id in (EQUITY, HISTORY):
            daemons.run("dags", "unpause", dag_id)
        daemons.database = database
        daemons.nse = work / "nse"
        try:
            yield daemons
        finally:
            daemons.stop()


def _start(daemons: Airflow) -> None:
    """The api-server first (tasks talk to it), then the scheduler and the dag-processor."""
    if "api-server" not in daemons.daemons:
        daemons.start("api-server")
        daemons.wait_http(daemons.env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health", 180)
    daemons.start("scheduler")
    daemons.start("dag-processor")


def _stop_scheduler(daemons: Airflow) -> None:
    """Stop the scheduler and the dag-processor: SQLite takes one writer at a time, and a
    backfill's many inserts must not wait on the scheduler's."""
    for name in ("scheduler", "dag-processor"):
        process = daemons.daemons.pop(name)
        process.terminate()
        process.wait(60)


def _query(daemons: Airflow, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(f"file:{daemons.home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as con:
        return con.execute(sql, args).fetchall()


def _wait(daemons: Airflow, sql: str, *args, until) -> list[tuple]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        daemons.check_daemons()
        rows = _query(daemons, sql, *args)
        if until(rows):
            return rows
        time.sleep(2)
    raise TimeoutError(f"not done within {RUN_TIMEOUT} s: {rows}")


def _backfill(daemons: Airflow, *extra: str) -> None:
    daemons.run(
        "backfill",
        "create",
        "--dag-id",
        EQUITY,
        "--from-date",
        f"{FIRST}T00:00:00+05:30",
        "--to-date",
        f"{LAST}T23:59:59+05:30",
        "--max-active-runs",
        "4",
        *extra,
    )


def _equity_runs(daemons: Airflow) -> list[tuple]:
    return _wait(
        daemons,
        "SELECT logical_date, state FROM dag_run WHERE dag_id = ? AND backfill_id IS NOT NULL",
        EQUITY,
        until=lambda rows: len(rows) >= len(TRADING_DAYS)
        and all(state in ("success", "failed") for _, state in rows),
    )


def _counts(daemons: Airflow, table: str) -> dict[dt.date, int]:
    client = Client(host="127.0.0.1", port=int(daemons.env["CLICKHOUSE_PORT"]))
    try:
        return dict(
            client.execute(
                f"SELECT trade_date, count() FROM {daemons.database}.{table} GROUP BY trade_date"
            )
        )
    finally:
        client.disconnect()


def _file_rows(daemons: Airflow, dataset: str, day: dt.date) -> int:
    path = sources.get(dataset).publication.paths(day)[0]
    return len(read_records((daemons.nse / path.lstrip("/")).read_bytes()))


def test_native_backfill_runs_each_trading_day_once_and_reprocessing_changes_nothing(airflow):
    """`airflow backfill create` over the fortnight makes one run per trading day (the Saturday
    session's included, the holiday's not) and lands exactly each file's rows; backfilling
    again with `--reprocess-behavior completed` runs them again and leaves the same rows."""
    _backfill(airflow)
    _start(airflow)
    runs = _equity_runs(airflow)
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    days = sorted(dt.datetime.fromisoformat(at).astimezone(ist).date() for at, _ in runs)
    assert days == TRADING_DAYS
    assert {state for _, state in runs} == {"success"}
    for dataset in ("cm_bhavcopy", "cm_delivery"):
        expected = {day: _file_rows(airflow, dataset, day) for day in TRADING_DAYS}
        assert _counts(airflow, dataset) == expected, dataset
    loaded = {name: _counts(airflow, name) for name in ("cm_bhavcopy", "cm_delivery")}
    ended = _query(airflow, "SELECT max(end_date) FROM dag_run WHERE dag_id = ?", EQUITY)[0][0]
    # The scheduler closes a backfill once its runs are done; only then may another start.
    _wait(
        airflow,
        "SELECT completed_at FROM backfill WHERE dag_id = ?",
        EQUITY,
        until=lambda rows: rows and all(at for (at,) in rows),
    )

    _stop_scheduler(airflow)
    _backfill(airflow, "--reprocess-behavior", "completed")
    _start(airflow)
    _wait(
        airflow,
        "SELECT state, end_date FROM dag_run WHERE dag_id = ? AND backfill_id IS NOT NULL",
        EQUITY,
        until=lambda rows: sum(
            state == "success" and end > ended for state, end in rows if end
        ) >= len(TRADING_DAYS),
    )
    assert {name: _counts(airflow, name) for name in loaded} == loaded


def test_history_dag_keeps_to_its_parallel_chunks(airflow):
    """With `max_parallel_chunks` 1 and a pool of two slots, the history DAG's day chunks load
    one after another: no two overlap in time, and chunks whose turn had not come waited."""
    if "scheduler" not in airflow.daemons:
        _start(airflow)
    run_id = f"manual__history_{uuid.uuid4().hex[:8]}"
    conf = {
        "start": "2024-03-04",
        "end": "2024-03-07",
        "datasets": ["cm_bhavcopy"],
        "chunk": "day",
        "max_parallel_chunks": 1,
        "reload": True,
    }
    airflow.run("dags", "trigger", HISTORY, "--run-id", run_id, "--conf", json.dumps(conf))
    _wait(
        airflow,
        "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?",
        HISTORY,
        run_id,
        until=lambda rows: rows and rows[0][0] in ("success", "failed"),
    )
    assert _query(
        airflow, "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", HISTORY, run_id
    ) == [("success",)]
    spans = _query(
        airflow,
        "SELECT start_date, end_date FROM task_instance WHERE dag_id = ? AND run_id = ? "
        "AND task_id = 'load' ORDER BY start_date",
        HISTORY,
        run_id,
    )
    assert len(spans) == 4
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end, spans
    waited = _query(
        airflow,
        "SELECT count() FROM task_reschedule WHERE ti_id IN (SELECT id FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? AND task_id = 'load')",
        HISTORY,
        run_id,
    )
    assert waited[0][0] >= 1
