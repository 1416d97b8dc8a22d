"""The equity DAG end to end under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
import zipfile

import pytest

from include.nse_standin.generate import generate
from tests.conftest import parse_dag
from tests.helpers import state, task_instances, task_log, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 7, 4), dt.date(2024, 7, 8)
DATASETS = ("cm_bhavcopy", "cm_delivery")
STEPS = ("fetch", "parse", "validate", "load")


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 18:30 in Mumbai, 13:00 UTC."""
    return dt.datetime.combine(day, dt.time(13, 0), dt.UTC)


def _legacy_rows(root, day: dt.date) -> list[dict]:
    mmm = day.strftime("%b").upper()
    name = f"cm{day:%d}{mmm}{day:%Y}bhav.csv"
    path = root / f"content/historical/EQUITIES/{day:%Y}/{mmm}/{name}.zip"
    with zipfile.ZipFile(path) as z:
        return list(csv.DictReader(io.TextIOWrapper(z.open(name), encoding="utf-8")))


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, root, symbols=300)
    return root


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_cm_bhavcopy")


def test_a_day_lands_once_in_clickhouse(dag, dag_env, nse_root, ch_client):
    """A scheduled day lands both datasets; running it again leaves one copy of each row."""
    day = dt.date(2024, 7, 5)
    expected = _legacy_rows(nse_root, day)
    for _ in range(2):
        run = dag.test(logical_date=_run_at(day))
        assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == {
        f"{step}_{name}": "success" for step in STEPS for name in DATASETS
    }
    db = dag_env["database"]
    count, volume = ch_client.execute(
        f"SELECT count(), sum(volume) FROM {db}.cm_bhavcopy WHERE trade_date = %(d)s", {"d": day}
    )[0]
    assert count == len(expected)
    assert volume == sum(int(r["TOTTRDQTY"]) for r in expected)
    assert ch_client.execute(
        f"SELECT count() > 0, uniqExact(symbol, series) = count() FROM {db}.cm_delivery"
    ) == [(1, 1)]
    bronze = dag_env["lake"] / "bronze/cm_bhavcopy/trade_date=2024-07-05/cm05JUL2024bhav.csv.zip"
    assert bronze.exists()


def test_udiff_day_by_param(dag, dag_env, ch_client):
    """A `trade_date` param loads that day; after the cutover the UDiFF file is used."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 9)), run_conf={"trade_date": "2024-07-08"})
    assert state(run) == "success"
    db = dag_env["database"]
    assert ch_client.execute(
        f"SELECT DISTINCT trade_date, source_format FROM {db}.cm_bhavcopy"
    ) == [(dt.date(2024, 7, 8), "udiff")]


def test_unpublished_day_skips(dag, dag_env):
    """A trading day NSE has not published yet ends as skipped after asking for its files, with
    nothing in silver and the missing file named in the fetch task's log."""
    with task_log() as logged:
        run = dag.test(logical_date=_run_at(dt.date(2024, 7, 9)))
    states = task_states(dag.dag_id, run.run_id)
    assert states and set(states.values()) == {"skipped"}, states
    assert state(run) == "success"
    assert not (dag_env["lake"] / "silver").exists()
    paths = [e["path"] for e in dag_env["standin"].request_log]
    udiff = "BhavCopy_NSE_CM_0_0_0_20240709_F_0000.csv.zip"
    assert any(udiff in p for p in paths)
    assert any("sec_bhavdata_full_09072024.csv" in p for p in paths)
    skipped = [m for m in logged if "is not published yet" in m]
    assert sorted(m.split(" ", 1)[0] for m in skipped) == sorted(DATASETS)
    assert any(udiff in m for m in skipped)


def test_weekend_skips_every_task_before_any_request(dag, dag_env):
    """A Saturday without a session skips every task without a single request to NSE, each
    fetch saying the segment was closed that day and why."""
    day = dt.date(2024, 7, 6)
    with task_log() as logged:
        run = dag.test(logical_date=_run_at(day))
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == {
        f"{step}_{name}": "skipped" for step in STEPS for name in DATASETS
    }
    assert dag_env["standin"].request_log == []
    closed = [m for m in logged if "closed" in m]
    assert len(closed) == len(DATASETS), logged
    for message in closed:
        assert "CM segment" in message and "Saturday 2024-07-06" in message, message
        assert "weekend" in message, message
    assert not (dag_env["lake"] / "bronze").exists()


def test_every_query_names_its_task_in_the_query_log(dag, dag_env, ch_client):
    """Every statement a run sends to its database carries the query id of the task try that
    sent it (dag, task, run, try), in system.query_log; the validate and load tasks query."""
    from nse_clickhouse_provider.query_ids import safe

    db = dag_env["database"]
    # The log keeps whole seconds: start at the next one, after the database was created.
    created = ch_client.execute("SELECT now()")[0][0]
    while (started := ch_client.execute("SELECT now()")[0][0]) == created:
        time.sleep(0.05)
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 5)))
    assert state(run) == "success"
    prefixes = {
        f"{dag.dag_id}.{ti.task_id}.{safe(run.run_id)}.{ti.try_number}.": ti.task_id
        for ti in task_instances(dag.dag_id, run.run_id)
    }
    ch_client.execute("SYSTEM FLUSH LOGS")
    logged = ch_client.execute(
        "SELECT query_id, query FROM system.query_log WHERE event_time >= %(started)s "
        "AND position(query, %(db)s) > 0 AND position(query, 'system.query_log') = 0",
        {"started": started, "db": db},
    )
    assert logged
    untagged = [(qid, q) for qid, q in logged if not qid.startswith(tuple(prefixes))]
    assert untagged == []
    tasks = {
        task for qid, _ in logged for prefix, task in prefixes.items() if qid.startswith(prefix)
    }
    assert tasks == {f"{step}_{name}" for step in ("validate", "load") for name in DATASETS}
