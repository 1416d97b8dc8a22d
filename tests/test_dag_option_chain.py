"""The option chain DAG under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from test_dag_cm_bhavcopy import _task_states

from include.nse.sources.option_chain import IST
from include.nse_standin.option_chain import write_option_chains
from include.nse_standin.server import StandIn
from tests.conftest import clickhouse_connection, parse_dag

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

SNAPSHOT = dt.datetime(2024, 7, 5, 10, 14, 58, tzinfo=IST)
#: A scheduled slot: 10:15 in Mumbai on a trading day.
RUN_AT = dt.datetime(2024, 7, 5, 4, 45, tzinfo=dt.UTC)
SERVED = ["NIFTY", "RELIANCE", "TCS"]
#: NOSUCH has no chain on the stand-in: every request for it is a 404.
UNDERLYINGS = ["NIFTY", "RELIANCE", "NOSUCH", "TCS"]


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    write_option_chains(root, SERVED, SNAPSHOT)
    return root


@pytest.fixture()
def dag_env(nse_root, tmp_path, monkeypatch, airflow_db, clickhouse_server, ch_database):
    """Point the DAG at the stand-in (throttling twice), a fresh lake and database."""
    with StandIn(nse_root) as standin:
        standin.add_fault("throttle_empty_json", path="/api/option-chain-v3", times=2)
        monkeypatch.setenv("NSE_LAKE_ROOT", str(tmp_path / "lake"))
        monkeypatch.setenv("NSE_API_RATE", "200")
        monkeypatch.setenv("NSE_HTTP_BACKOFF_INITIAL", "0.05")
        monkeypatch.setenv("NSE_HTTP_BACKOFF_MAX", "0.2")
        monkeypatch.setenv(
            "AIRFLOW_CONN_NSE_API", json.dumps({"conn_type": "http", "host": standin.url})
        )
        monkeypatch.setenv(
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT", clickhouse_connection(clickhouse_server, ch_database)
        )
        yield {"standin": standin, "lake": tmp_path / "lake", "database": ch_database}


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_option_chain")


def _state(thing) -> str:
    return str(getattr(thing.state, "value", thing.state))


def _mapped_labels(dag_id: str, run_id: str, task_id: str) -> list[str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance)
            .where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
            )
            .order_by(TaskInstance.map_index)
        ).all()
        return [ti.rendered_map_index for ti in tis]


def test_cycle_lands_once_despite_a_failing_underlying(dag, dag_env, ch_client):
    """Batches map by name; NOSUCH fails alone, a throttled answer is retried, rows land once."""
    conf = {"underlyings": UNDERLYINGS, "batch_size": 2, "max_missing_share": 0.3}
    run = dag.test(logical_date=RUN_AT, run_conf=conf)
    assert _state(run) == "success"
    states = _task_states(dag.dag_id, run.run_id)
    assert set(states.values()) == {"success"}, states
    assert _mapped_labels(dag.dag_id, run.run_id, "fetch") == ["NIFTY,RELIANCE", "NOSUCH,TCS"]
    throttled = [e for e in dag_env["standin"].request_log if e["fault"] == "throttle_empty_json"]
    assert len(throttled) == 2

    db, lake = dag_env["database"], dag_env["lake"]
    silver = sorted((lake / "silver/option_chain/trade_date=2024-07-05").glob("*/*.parquet"))
    assert [p.parent.name for p in silver] == [f"underlying={n}" for n in sorted(SERVED)]
    rows = pl.read_parquet(silver).height
    count = f"SELECT count(), uniqExact(underlying) FROM {db}.option_chain"
    assert ch_client.execute(count) == [(rows, 3)]
    assert ch_client.execute(
        f"SELECT uniqExact(underlying, expiry_date) = count() FROM {db}.option_chain_analytics"
    ) == [(1,)]
    charts = list((lake / "gold/option_chain_charts").rglob("*.png"))
    assert [p.parent.name for p in charts] == ["underlying=NIFTY"]

    # The next slot finds the exchange's timestamps unchanged: stale, nothing stored twice.
    run = dag.test(logical_date=RUN_AT + dt.timedelta(minutes=5), run_conf=conf)
    assert _state(run) == "success"
    assert ch_client.execute(count) == [(rows, 3)]
    assert (
        sorted((lake / "silver/option_chain/trade_date=2024-07-05").glob("*/*.parquet")) == silver
    )


def test_too_many_missing_fails_the_run_after_loading(dag, dag_env, ch_client):
    """Above the allowed missing share the last task fails the run; what landed is loaded."""
    conf = {
        "underlyings": UNDERLYINGS,
        "batch_size": 3,
        "max_missing_share": 0.1,
        "chart_underlyings": [],
    }
    run = dag.test(logical_date=RUN_AT, run_conf=conf)
    assert _state(run) == "failed"
    states = _task_states(dag.dag_id, run.run_id)
    assert states.pop("check_coverage") == "failed"
    assert set(states.values()) == {"success"}, states
    assert ch_client.execute(
        f"SELECT uniqExact(underlying) FROM {dag_env['database']}.option_chain"
    ) == [(3,)]
