"""The option chain DAG under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from include.nse.dates import IST
from include.nse_standin.option_chain import write_option_chains
from tests.conftest import parse_dag
from tests.helpers import map_labels, state, task_log, task_result, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

SNAPSHOT = dt.datetime(2024, 7, 5, 10, 14, 58, tzinfo=IST)
#: A scheduled slot: 10:15 in Mumbai on a trading day.
RUN_AT = dt.datetime(2024, 7, 5, 4, 45, tzinfo=dt.UTC)
SERVED = ["NIFTY", "RELIANCE", "TCS"]
#: NOSUCH has no chain on the stand-in: every request for it is a 404.
UNDERLYINGS = ["NIFTY", "RELIANCE", "NOSUCH", "TCS"]
STEPS = ("plan", "fetch", "parse", "validate", "load", "analytics", "charts", "check_coverage")
TASKS = [f"{step}_option_chain" for step in STEPS]


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    write_option_chains(root, SERVED, SNAPSHOT)
    return root


@pytest.fixture()
def env(dag_env):
    """The DAG's surroundings, the stand-in throttling the chain endpoint twice."""
    dag_env["standin"].add_fault("throttle_empty_json", path="/api/option-chain-v3", times=2)
    return dag_env


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_option_chain")


def test_shape(dag):
    """Plan, then fetch and parse mapped over batches in the API's pool, one gate and load for
    the cycle, analytics and charts after it, and the coverage check last, whatever happened."""
    assert {t.task_id for t in dag.tasks} == set(TASKS)
    downstream = {t: dag.get_task(t).downstream_task_ids for t in TASKS}
    assert downstream["plan_option_chain"] >= {"fetch_option_chain"}
    assert downstream["fetch_option_chain"] == {"parse_option_chain"}
    assert downstream["parse_option_chain"] >= {"validate_option_chain"}
    assert downstream["validate_option_chain"] == {"load_option_chain"}
    assert downstream["load_option_chain"] >= {"analytics_option_chain", "charts_option_chain"}
    assert downstream["check_coverage_option_chain"] == set()
    assert dag.get_task("fetch_option_chain").pool == "nse_api"
    assert dag.get_task("check_coverage_option_chain").trigger_rule == "all_done"
    assert [o.name for o in dag.get_task("load_option_chain").outlets] == ["nse_option_chain"]
    assert "trade_date" not in dag.params
    assert dag.max_active_runs == 1


def test_cycle_lands_once_despite_a_failing_underlying(dag, env, ch_client):
    """Batches map by name; NOSUCH fails alone, a throttled answer is retried, rows land once,
    the chosen underlying is charted, and the next slot with nothing new stores nothing."""
    conf = {"underlyings": UNDERLYINGS, "batch_size": 2, "max_missing_share": 0.3}
    run = dag.test(logical_date=RUN_AT, run_conf=conf)
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "success")
    for task in ("fetch_option_chain", "parse_option_chain"):
        assert map_labels(dag.dag_id, run.run_id, task) == ["NIFTY,RELIANCE", "NOSUCH,TCS"]
    throttled = [e for e in env["standin"].request_log if e["fault"] == "throttle_empty_json"]
    assert len(throttled) == 2
    coverage = task_result(dag.dag_id, run.run_id, "check_coverage_option_chain")
    assert list(coverage["failed"]) == ["NOSUCH"] and coverage["missing_share"] == 0.25

    db, lake = env["database"], env["lake"]
    silver = sorted((lake / "silver/option_chain/trade_date=2024-07-05").glob("*/*.parquet"))
    assert [p.parent.name for p in silver] == [f"underlying={n}" for n in sorted(SERVED)]
    rows = pl.read_parquet(silver).height
    count = f"SELECT count(), uniqExact(underlying) FROM {db}.option_chain"
    assert ch_client.execute(count) == [(rows, 3)]
    assert ch_client.execute(
        f"SELECT uniqExact(underlying, expiry_date) = count(), uniqExact(underlying) "
        f"FROM {db}.option_chain_analytics"
    ) == [(1, 3)]
    charts = list((lake / "gold/option_chain_charts").rglob("*.png"))
    assert [p.parent.name for p in charts] == ["underlying=NIFTY"]
    drawn = task_result(dag.dag_id, run.run_id, "charts_option_chain")
    assert drawn["artifacts"] == [str(p) for p in charts]

    # The next slot finds the exchange's timestamps unchanged: stale, nothing stored twice.
    run = dag.test(logical_date=RUN_AT + dt.timedelta(minutes=5), run_conf=conf)
    assert state(run) == "success"
    assert ch_client.execute(count) == [(rows, 3)]
    assert (
        sorted((lake / "silver/option_chain/trade_date=2024-07-05").glob("*/*.parquet")) == silver
    )
    coverage = task_result(dag.dag_id, run.run_id, "check_coverage_option_chain")
    assert coverage["stale"] == len(SERVED) and coverage["stored"] == 0


def test_too_many_missing_fails_the_run_after_loading(dag, env, ch_client):
    """Above the allowed missing share the last task fails the run; what landed is loaded."""
    conf = {
        "underlyings": UNDERLYINGS,
        "batch_size": 3,
        "max_missing_share": 0.1,
        "chart_underlyings": [],
    }
    run = dag.test(logical_date=RUN_AT, run_conf=conf)
    assert state(run) == "failed"
    states = task_states(dag.dag_id, run.run_id)
    assert states.pop("check_coverage_option_chain") == "failed"
    assert states == dict.fromkeys(TASKS[:-1], "success")
    assert ch_client.execute(
        f"SELECT uniqExact(underlying) FROM {env['database']}.option_chain"
    ) == [(3,)]
    assert not (env["lake"] / "gold/option_chain_charts").exists()


def test_closed_day_skips_before_any_request(dag, env):
    """A slot on a day the F&O segment is closed plans nothing and asks NSE nothing."""
    saturday = dt.datetime(2024, 7, 6, 4, 45, tzinfo=dt.UTC)
    with task_log() as logged:
        run = dag.test(logical_date=saturday, run_conf={"underlyings": SERVED})
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "skipped")
    assert env["standin"].request_log == []
    reasons = {m for m in logged if "closed" in m}
    assert len(reasons) == 1, logged
    (reason,) = reasons
    assert "FO segment" in reason and "Saturday 2024-07-06" in reason and "weekend" in reason
