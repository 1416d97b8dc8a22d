"""Under a real scheduler: Airflow's own `backfill create` over two weeks of the equity DAG (one
run per trading day, a weekend session included, none on the holiday), its reprocessing, the
history DAG keeping to its `max_parallel_chunks`, `nse_market_data` run by the assets the
end-of-day DAGs publish (gold on `spark-submit --master local[2]`, loaded into ClickHouse once),
and a deadline alert reaching Slack from the triggerer."""

from __future__ import annotations

import datetime as dt
import itertools
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
from tests.conftest import new_database, slack_connection, slack_receiver
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
#: The days backfilled again with `--reprocess-behavior completed`.
REPROCESSED = (dt.date(2024, 3, 1), dt.date(2024, 3, 4))
HISTORY = "nse_history_backfill"
FO, GOLD = "nse_fo_bhavcopy", "nse_market_data"
RUN_TIMEOUT = 420
DEADLINE_ENV, DEADLINE_SECONDS = "NSE_DEADLINE_MINUTES_", 20


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
        datasets=["cm_bhavcopy", "cm_delivery", "fo_bhavcopy"],
        holidays=[HOLIDAY],
        weekend_sessions=[SATURDAY],
    )
    with (
        StandIn(work / "nse") as standin,
        new_database(clickhouse_server) as database,
        slack_receiver() as (slack_url, messages),
    ):
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
                "AIRFLOW_CONN_SLACK_ALERTS": slack_connection(slack_url),
                "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps(
                    {"conn_type": "spark", "host": "local[2]"}
                ),
                # The equity DAG's runs are due 20 s after their logical date.
                f"{DEADLINE_ENV}{EQUITY.upper()}": str(DEADLINE_SECONDS / 60),
                # Only the runs the tests create: not each DAG's latest scheduled slot.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                # The DAG files do not change during the tests: parsed once per start.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            },
        )
        daemons = Airflow(work / "airflow", env)
        daemons.run("db", "migrate")
        daemons.run("scripts/apply_airflow_settings.py", "airflow_settings.yaml")
        daemons.run("dags", "reserialize")
        for dag_id in (EQUITY, HISTORY, FO, GOLD):
            daemons.run("dags", "unpause", dag_id)
        daemons.database = database
        daemons.clickhouse = clickhouse_server
        daemons.nse = work / "nse"
        daemons.lake = work / "lake"
        daemons.slack = messages
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
    if "triggerer" not in daemons.daemons:
        daemons.start("triggerer")


def _stop_scheduler(daemons: Airflow) -> None:
    """Stop the scheduler, the dag-processor and the triggerer: SQLite takes one writer at a
    time, and a backfill's many inserts must not wait on theirs."""
    for name in ("scheduler", "dag-processor", "triggerer"):
        process = daemons.daemons.pop(name)
        process.terminate()
        process.wait(60)


def _query(daemons: Airflow, sql: str, *args) -> list[tuple]:
    with sqlite3.connect(
        f"file:{daemons.home / 'airflow.db'}?mode=ro", uri=True, timeout=30
    ) as con:
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


def _backfill(daemons: Airflow, *extra: str, first: dt.date = FIRST, last: dt.date = LAST) -> None:
    daemons.run(
        "backfill",
        "create",
        "--dag-id",
        EQUITY,
        "--from-date",
        f"{first}T00:00:00+05:30",
        "--to-date",
        f"{last}T23:59:59+05:30",
        "--max-active-runs",
        "4",
        *extra,
    )


def _equity_runs(daemons: Airflow) -> list[tuple]:
    return _wait(
        daemons,
        "SELECT logical_date, state FROM dag_run WHERE dag_id = ? AND backfill_id IS NOT NULL",
        EQUITY,
        until=lambda rows: (
            len(rows) >= len(TRADING_DAYS)
            and all(state in ("success", "failed") for _, state in rows)
        ),
    )


def _counts(daemons: Airflow, table: str) -> dict[dt.date, int]:
    client = Client(**daemons.clickhouse)
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
    a Friday-to-Monday part again with `--reprocess-behavior completed` runs those days again
    (the Saturday session's too) and leaves the same rows."""
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
    # Friday to Monday again: the weekend session's run is made again too.
    again = [day for day in TRADING_DAYS if REPROCESSED[0] <= day <= REPROCESSED[1]]
    _backfill(
        airflow,
        "--reprocess-behavior",
        "completed",
        first=REPROCESSED[0],
        last=REPROCESSED[1],
    )
    _start(airflow)
    _wait(
        airflow,
        "SELECT state, end_date FROM dag_run WHERE dag_id = ? AND backfill_id IS NOT NULL",
        EQUITY,
        until=lambda rows: (
            sum(state == "success" and end > ended for state, end in rows if end) >= len(again)
        ),
    )
    assert {name: _counts(airflow, name) for name in loaded} == loaded
    # Every backfilled run was created long after its deadline: old, not late, so no alert.
    assert airflow.slack == []


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
    # When each chunk did its work: its day's outcome is recorded when the day is loaded, with
    # the seconds it took (a task's start_date is its first try's, before any waiting).
    client = Client(**airflow.clickhouse)
    try:
        spans = client.execute(
            f"SELECT chunk, attempt / 1e6 - seconds, attempt / 1e6 "
            f"FROM {airflow.database}.backfill_days WHERE run_id = %(run)s ORDER BY attempt",
            {"run": run_id},
        )
    finally:
        client.disconnect()
    assert [chunk for chunk, _, _ in spans] == [
        "2024-03-04",
        "2024-03-05",
        "2024-03-06",
        "2024-03-07",
    ]
    for (_, _, end), (_, start, _) in itertools.pairwise(spans):
        assert start >= end, spans
    waited = _query(
        airflow,
        "SELECT count() FROM task_reschedule WHERE ti_id IN (SELECT id FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? AND task_id = 'load')",
        HISTORY,
        run_id,
    )
    assert waited[0][0] >= 1


def _run_state(daemons: Airflow, dag_id: str, run_id: str) -> str:
    rows = _wait(
        daemons,
        "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?",
        dag_id,
        run_id,
        until=lambda rows: rows and rows[0][0] in ("success", "failed"),
    )
    return rows[0][0]


def _gold_counts(daemons: Airflow) -> dict[str, dict[dt.date, int]]:
    from include.nse_airflow.gold import JOBS

    client = Client(**daemons.clickhouse)
    try:
        return {
            name: dict(
                client.execute(
                    f"SELECT trade_date, count() FROM {daemons.database}.{name} GROUP BY trade_date"
                )
            )
            for name in JOBS
        }
    finally:
        client.disconnect()


def test_gold_runs_on_the_landed_days_assets(airflow):
    """The equity days (their backfill published `cm_bhavcopy` and `cm_delivery`) and then an
    F&O day complete `nse_market_data`'s assets: the scheduler starts one asset-triggered run,
    whose Spark jobs cover the days the events name, every gold date lands in ClickHouse as Spark
    wrote it, once, bars dated by their period's last trading day (a rerun's one copy is checked
    under `dag.test()` in test_dag_market_data.py)."""
    from include.nse_airflow.gold import JOBS, run_folder
    from include.nse_gold.datasets import DATASETS, read_partition

    if not _query(airflow, "SELECT 1 FROM dag_run WHERE dag_id = ?", EQUITY):
        _backfill(airflow)
    if "scheduler" not in airflow.daemons:
        _start(airflow)
    fo_run = f"manual__fo_{uuid.uuid4().hex[:8]}"
    airflow.run("dags", "trigger", FO, "--run-id", fo_run, "--conf", '{"trade_date": "2024-03-07"}')
    assert _run_state(airflow, FO, fo_run) == "success"
    # Asset-triggered runs are made by the scheduler's run-making pass, which the module has
    # off so that unpaused DAGs make no runs for their latest slots: pause those, turn it on.
    for dag_id in (EQUITY, FO):
        airflow.run("dags", "pause", dag_id)
    _stop_scheduler(airflow)
    airflow.env["AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"] = "True"
    _start(airflow)
    (run_id,) = _wait(
        airflow,
        "SELECT run_id FROM dag_run WHERE dag_id = ? AND run_type = 'asset_triggered'",
        GOLD,
        until=lambda rows: len(rows) == 1,
    )[0]
    assert _run_state(airflow, GOLD, run_id) == "success"
    report = run_folder(airflow.lake, run_id) / "report.jsonl"
    written = {doc["job"]: sorted(doc["rows"]) for doc in map(json.loads, report.open())}
    assert list(written) == list(JOBS)
    # The range is every day the triggering events name, the backfilled fortnight's.
    assert written["equity_eod"] == [day.isoformat() for day in TRADING_DAYS]
    assert written["fo_daily"] == ["2024-03-07"]
    # The first week ends on its Saturday session, the second on Thursday (Friday's holiday).
    assert written["equity_bars_weekly"] == ["2024-03-02", "2024-03-07"]
    # March's last trading day is Thursday 28th (Good Friday, then the weekend).
    assert written["equity_bars_monthly"] == ["2024-02-29", "2024-03-28"]
    counts = _gold_counts(airflow)
    for name, dates in written.items():
        for day in map(dt.date.fromisoformat, dates):
            expected = read_partition(airflow.lake, name, day).height
            assert counts[name].get(day) == expected > 0, (name, day)

    client = Client(**airflow.clickhouse)
    try:
        for name in JOBS:
            key = ", ".join(DATASETS[name].key)
            (dupes,) = client.execute(
                f"SELECT count() FROM (SELECT {key} FROM {airflow.database}.{name} "
                f"GROUP BY {key} HAVING count() > 1)"
            )[0]
            assert dupes == 0, name
    finally:
        client.disconnect()


def test_a_run_unfinished_by_its_deadline_alerts_slack_once(airflow):
    """A run of the equity DAG that cannot start (the DAG is paused) passes its deadline: the
    scheduler marks it missed, the triggerer posts one alert naming the DAG, run and trade date."""
    if "scheduler" not in airflow.daemons:
        _start(airflow)
    airflow.run("dags", "pause", EQUITY)
    run_id = f"manual__late_{uuid.uuid4().hex[:8]}"
    # With a logical date, as a scheduled run has (the deadline counts from it; a run triggered
    # without one has no deadline).
    now = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    airflow.run(
        "dags",
        "trigger",
        EQUITY,
        "--run-id",
        run_id,
        "--logical-date",
        now,
        "--conf",
        '{"trade_date": "2024-03-05"}',
    )
    deadline = time.monotonic() + DEADLINE_SECONDS + 120
    while time.monotonic() < deadline and not airflow.slack:
        airflow.check_daemons()
        time.sleep(2)
    assert len(airflow.slack) == 1, airflow.slack
    text = airflow.slack[0]["text"]
    assert f"{EQUITY} has not finished by" in text and run_id in text
    assert "Trade date: 2024-03-05" in text and "state queued" in text
    assert _query(
        airflow,
        "SELECT missed FROM deadline WHERE dagrun_id = "
        "(SELECT id FROM dag_run WHERE dag_id = ? AND run_id = ?)",
        EQUITY,
        run_id,
    ) == [(1,)]
    time.sleep(10)
    assert len(airflow.slack) == 1
