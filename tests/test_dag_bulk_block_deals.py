"""The deals DAG end to end under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import json

import pytest
import test_dag_cm_bhavcopy as cm_dag
from test_dag_cm_bhavcopy import _task_states

from include.nse_standin.generate import generate
from include.nse_standin.server import api_file
from tests.conftest import parse_dag

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

#: The equity DAG's set-up (stand-in over this module's `nse_root`, a fresh lake and database).
dag_env = cm_dag.dag_env

FIRST, LAST = dt.date(2024, 7, 2), dt.date(2024, 7, 5)
KINDS = ("bulk_deals", "block_deals")


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 19:30 in Mumbai, 14:00 UTC."""
    return dt.datetime.combine(day, dt.time(14, 0), dt.UTC)


def _state(thing) -> str:
    return str(getattr(thing.state, "value", thing.state))


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
def env(dag_env, monkeypatch):
    """The equity set-up, with the API host pointed at the stand-in too."""
    url = dag_env["standin"].url
    monkeypatch.setenv("AIRFLOW_CONN_NSE_API", json.dumps({"conn_type": "http", "host": url}))
    return dag_env


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_bulk_block_deals")


def test_shape_and_pools(dag):
    """Per dataset: archive fetch, API fetch in the nse_api pool, parse, validate, load."""
    for name in KINDS:
        assert dag.get_task(f"fetch_{name}").pool == "nse_archives"
        assert dag.get_task(f"fetch_history_{name}").pool == "nse_api"
        assert dag.get_task(f"load_history_{name}").pool == "nse_api"
        assert dag.get_task(f"fetch_{name}").downstream_task_ids == {f"fetch_history_{name}"}
        assert dag.get_task(f"fetch_history_{name}").downstream_task_ids == {f"parse_{name}"}
        assert [o.name for o in dag.get_task(f"load_{name}").outlets] == [f"nse_{name}"]
    assert {"trade_date", "history_from"} <= set(dag.params)


def test_latest_day_from_the_archive_lands_once(dag, env, nse_root, ch_client):
    """The day the archive files hold lands from them; a rerun leaves one copy, pair and all."""
    for _ in range(2):
        run = dag.test(logical_date=_run_at(LAST))
        assert _state(run) == "success"
    states = _task_states(dag.dag_id, run.run_id)
    assert {k: v for k, v in states.items() if not k.startswith("load_history")} == {
        f"{step}_{name}": "success"
        for step in ("fetch", "fetch_history", "parse", "validate", "load")
        for name in KINDS
    }
    db = env["database"]
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
        assert (env["lake"] / f"bronze/{name}/trade_date={LAST}/{file}").exists()
    # The generator's identical pair: both rows in ClickHouse, the key still unique.
    assert ch_client.execute(
        f"SELECT max(deal_ordinal), count() = uniqExact(symbol, client_name, side, quantity, "
        f"price, deal_ordinal) FROM {db}.bulk_deals"
    ) == [(2, 1)]
    assert not any(e["path"].startswith("/api/") for e in env["standin"].request_log)


def test_past_days_come_from_the_api(dag, env, nse_root, ch_client):
    """A past trade date comes through the API, and `history_from` backfills the days before."""
    day = dt.date(2024, 7, 4)
    assert _api_deals(nse_root, "block_deals", day) == [], "the seed's day without block deals"
    run = dag.test(
        logical_date=_run_at(LAST),
        run_conf={"trade_date": day.isoformat(), "history_from": FIRST.isoformat()},
    )
    assert _state(run) == "success"
    states = _task_states(dag.dag_id, run.run_id)
    assert set(states.values()) == {"success"}, states
    db = env["database"]
    for name in KINDS:
        got = dict(
            ch_client.execute(f"SELECT trade_date, count() FROM {db}.{name} GROUP BY trade_date")
        )
        expected = {
            d: len(_api_deals(nse_root, name, d)) for d in (FIRST, dt.date(2024, 7, 3), day)
        }
        assert got == {d: n for d, n in expected.items() if n}
        assert (
            env["lake"] / f"bronze/{name}/trade_date={day}/bulk-block-short-deals.json"
        ).exists()
    queries = {e["query"] for e in env["standin"].request_log if e["path"].startswith("/api/")}
    assert "optionType=bulk_deals&from=02-07-2024&to=02-07-2024" in queries


def test_unpublished_day_skips(dag, env):
    """A weekday after the archive's latest day skips: NSE has not published it yet."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 8)))
    states = _task_states(dag.dag_id, run.run_id)
    assert states and set(states.values()) == {"skipped"}, states
    assert _state(run) == "success"
    assert not (env["lake"] / "silver").exists()
