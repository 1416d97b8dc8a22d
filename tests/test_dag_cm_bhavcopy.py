"""The equity DAG end to end under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest

from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.conftest import clickhouse_connection, parse_dag

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 7, 4), dt.date(2024, 7, 8)


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 18:30 in Mumbai, 13:00 UTC."""
    return dt.datetime.combine(day, dt.time(13, 0), dt.UTC)


def _task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
        ).all()
        return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in tis}


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
def dag_env(nse_root, tmp_path, monkeypatch, airflow_db, clickhouse_server, ch_database):
    """Point the DAG at the stand-in, a fresh lake and a fresh ClickHouse database."""
    with StandIn(nse_root) as standin:
        monkeypatch.setenv("NSE_LAKE_ROOT", str(tmp_path / "lake"))
        monkeypatch.setenv("NSE_HTTP_BACKOFF_INITIAL", "0.05")
        monkeypatch.setenv("NSE_HTTP_BACKOFF_MAX", "0.2")
        monkeypatch.setenv(
            "AIRFLOW_CONN_NSE_ARCHIVES", json.dumps({"conn_type": "http", "host": standin.url})
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT", clickhouse_connection(clickhouse_server, ch_database)
        )
        yield {"standin": standin, "lake": tmp_path / "lake", "database": ch_database}


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
        assert str(getattr(run.state, "value", run.state)) == "success"
    states = _task_states(dag.dag_id, run.run_id)
    assert set(states.values()) == {"success"}, states
    db = dag_env["database"]
    count, volume = ch_client.execute(
        f"SELECT count(), sum(volume) FROM {db}.cm_bhavcopy WHERE trade_date = %(d)s", {"d": day}
    )[0]
    assert count == len(expected)
    assert volume == sum(int(r["TOTTRDQTY"]) for r in expected)
    assert ch_client.execute(
        f"SELECT uniqExact(symbol, series) = count() FROM {db}.cm_delivery"
    ) == [(1,)]
    bronze = dag_env["lake"] / "bronze/cm_bhavcopy/trade_date=2024-07-05/cm05JUL2024bhav.csv.zip"
    assert bronze.exists()


def test_udiff_day_by_param(dag, dag_env, ch_client):
    """A `trade_date` param loads that day; after the cutover the UDiFF file is used."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 9)), run_conf={"trade_date": "2024-07-08"})
    assert str(getattr(run.state, "value", run.state)) == "success"
    db = dag_env["database"]
    assert ch_client.execute(
        f"SELECT DISTINCT trade_date, source_format FROM {db}.cm_bhavcopy"
    ) == [(dt.date(2024, 7, 8), "udiff")]


def test_unpublished_day_skips(dag, dag_env):
    """A date NSE has not published ends as skipped, with nothing loaded."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 6)))
    states = _task_states(dag.dag_id, run.run_id)
    assert states and set(states.values()) == {"skipped"}, states
    assert str(getattr(run.state, "value", run.state)) == "success"
    assert not (dag_env["lake"] / "silver").exists()
    paths = [e["path"] for e in dag_env["standin"].request_log]
    assert any("BhavCopy_NSE_CM_0_0_0_20240706_F_0000.csv.zip" in p for p in paths)
    assert any("sec_bhavdata_full_06072024.csv" in p for p in paths)
