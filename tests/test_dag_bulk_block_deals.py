"""The deals DAG end to end under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest

from include.nse_standin.generate import generate
from include.nse_standin.server import api_file
from tests.conftest import parse_dag
from tests.helpers import state, task_log, task_result, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 7, 2), dt.date(2024, 7, 5)
KINDS = ("bulk_deals", "block_deals")
STEPS = ("fetch", "fetch_history", "parse", "validate", "load")


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 19:30 in Mumbai, 14:00 UTC."""
    return dt.datetime.combine(day, dt.time(14, 0), dt.UTC)


def _api_deals(root, kind: str, day: dt.date) -> list[dict]:
    params = {"optionType": kind, "from": f"{day:%d-%m-%Y}", "to": f"{day:%d-%m-%Y}"}
    return json.loads(api_file(root, "historicalOR/bulk-block-short-deals", params).read_text())[
        "data"
    ]


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, root, symbols=300, datasets=list(KINDS))
    return root


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_bulk_block_deals")


def test_shape_and_pools(dag):
    """Per dataset: archive fetch, then the API's in the nse_api pool, parse, validate, load; a
    `trade_date` param and nothing for loading history in one run (that is a backfill's job)."""
    assert {t.task_id for t in dag.tasks} == {f"{s}_{n}" for s in STEPS for n in KINDS}
    for name in KINDS:
        assert dag.get_task(f"fetch_{name}").pool == "nse_archives"
        assert dag.get_task(f"fetch_history_{name}").pool == "nse_api"
        assert dag.get_task(f"fetch_{name}").downstream_task_ids == {f"fetch_history_{name}"}
        assert dag.get_task(f"fetch_history_{name}").downstream_task_ids == {f"parse_{name}"}
        assert [o.name for o in dag.get_task(f"load_{name}").outlets] == [f"nse_{name}"]
    assert set(dag.params) == {"trade_date"}


def test_latest_day_from_the_archive_lands_once(dag, dag_env, nse_root, ch_client):
    """The day the archive files hold lands from them; a rerun leaves one copy, pair and all."""
    for _ in range(2):
        run = dag.test(logical_date=_run_at(LAST))
        assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == {
        f"{step}_{name}": "success" for step in STEPS for name in KINDS
    }
    db = dag_env["database"]
    for name, file in (("bulk_deals", "bulk.csv"), ("block_deals", "block.csv")):
        with (nse_root / "content/equities" / file).open() as f:
            rows = [r for r in csv.DictReader(f) if r["Date"] != "NO RECORDS"]
        count, shares, formats = ch_client.execute(
            f"SELECT count(), sum(quantity), groupUniqArray(source_format) FROM {db}.{name} "
            "WHERE trade_date = %(d)s",
            {"d": LAST},
        )[0]
        assert count == len(rows)
        assert shares == sum(int(r["Quantity Traded"]) for r in rows)
        assert formats == (["archive_csv"] if rows else [])
        assert (dag_env["lake"] / f"bronze/{name}/trade_date={LAST}/{file}").exists()
    # The generator's identical pair: both rows in ClickHouse, the key still unique.
    assert ch_client.execute(
        f"SELECT max(deal_ordinal), count() = uniqExact(symbol, client_name, side, quantity, "
        f"price, deal_ordinal) FROM {db}.bulk_deals"
    ) == [(2, 1)]
    assert not any(e["path"].startswith("/api/") for e in dag_env["standin"].request_log)


@pytest.mark.parametrize(
    ("day", "blocks"),
    [(FIRST, True), (dt.date(2024, 7, 4), False)],
    ids=["deals-of-both-kinds", "a-day-without-block-deals"],
)
def test_past_day_comes_from_the_api(dag, dag_env, nse_root, ch_client, day, blocks):
    """A run for a past trade date, as a backfill makes one per day: the archive files have
    moved past it, so the day's deals come from the API, with the day's dates asked for."""
    run = dag.test(logical_date=_run_at(LAST), run_conf={"trade_date": day.isoformat()})
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == {
        f"{step}_{name}": "success" for step in STEPS for name in KINDS
    }
    assert bool(_api_deals(nse_root, "block_deals", day)) == blocks
    db = dag_env["database"]
    for name in KINDS:
        expected = len(_api_deals(nse_root, name, day))
        got = ch_client.execute(f"SELECT trade_date, count() FROM {db}.{name} GROUP BY trade_date")
        assert got == ([(day, expected)] if expected else [])
        assert (
            dag_env["lake"] / f"bronze/{name}/trade_date={day}/bulk-block-short-deals.json"
        ).exists()
    # Each kind's day asked of the API once, by its fetch_history task in the API's pool.
    for name in KINDS:
        assert "in_history" in task_result(dag.dag_id, run.run_id, f"fetch_{name}")
        assert task_result(dag.dag_id, run.run_id, f"fetch_history_{name}")["source"] == "api"
    queries = [e["query"] for e in dag_env["standin"].request_log if e["path"].startswith("/api/")]
    assert sorted(queries) == [
        f"optionType={k}&from={day:%d-%m-%Y}&to={day:%d-%m-%Y}" for k in sorted(KINDS)
    ]


def test_unpublished_day_skips(dag, dag_env):
    """A trading day after the archive's latest day skips: NSE has not published it yet."""
    with task_log() as logged:
        run = dag.test(logical_date=_run_at(dt.date(2024, 7, 8)))
    states = task_states(dag.dag_id, run.run_id)
    assert states and set(states.values()) == {"skipped"}, states
    assert state(run) == "success"
    assert not (dag_env["lake"] / "silver").exists()
    skipped = [m for m in logged if "is not published yet" in m]
    assert sorted(m.split(" ", 1)[0] for m in skipped) == sorted(KINDS)
    assert all("still holds 2024-07-05" in m for m in skipped), skipped
