"""The index constituents DAG under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zipfile

import pytest
import test_dag_cm_bhavcopy as cm_dag
from test_dag_cm_bhavcopy import _task_states

from include.nse_standin.generate import generate
from tests.conftest import parse_dag

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

#: The equity DAG's set-up (stand-in over this module's `nse_root`, a fresh lake and database).
dag_env = cm_dag.dag_env

FIRST, LAST = dt.date(2024, 6, 24), dt.date(2024, 7, 5)
#: June's last trading day: only the monthly archive (NIFTY 50 and NEXT 50) can be its list.
MONTH_END = dt.date(2024, 6, 28)
#: After the 1 July rebalance: every index's current list is that day's.
DAY = dt.date(2024, 7, 4)
INDICES = 9


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 20:00 in Mumbai, 14:30 UTC."""
    return dt.datetime.combine(day, dt.time(14, 30), dt.UTC)


def _state(thing) -> str:
    return str(getattr(thing.state, "value", thing.state))


def _list_symbols(root, file_name: str) -> set[str]:
    text = (root / "content/indices" / file_name).read_text()
    return {row["Symbol"] for row in csv.DictReader(io.StringIO(text))}


def _monthly_symbols(root, member: str) -> set[str]:
    with zipfile.ZipFile(root / "content/indices/mcwb_jun24.zip") as archive:
        rows = list(csv.reader(io.StringIO(archive.read(member).decode())))
    return {row[1] for row in rows if row and row[0].isdigit()}


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, root, symbols=300, datasets=["index_constituents"])
    return root


@pytest.fixture()
def env(dag_env, monkeypatch):
    """The equity DAG's environment, with the API host on the stand-in too."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_NSE_API", json.dumps({"conn_type": "http", "host": dag_env["standin"].url})
    )
    return dag_env


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_index_constituents")


def test_month_end_then_daily_lists_give_history(dag, env, nse_root, ch_client):
    """A backfilled month end (monthly archive) and a later day (current lists) land once each;
    the changes between them are the files' differences, and a rerun leaves one copy."""
    db = env["database"]
    assert _state(dag.test(logical_date=_run_at(MONTH_END))) == "success"
    for _ in range(2):
        run = dag.test(logical_date=_run_at(DAY))
        assert _state(run) == "success"
    states = _task_states(dag.dag_id, run.run_id)
    assert set(states.values()) == {"success"}, states

    counts = dict(
        ch_client.execute(
            f"SELECT concat(toString(trade_date), ' ', index_name), count() "
            f"FROM {db}.index_constituents GROUP BY trade_date, index_name"
        )
    )
    assert counts["2024-06-28 NIFTY 50"] == len(_monthly_symbols(nse_root, "nifty50_mcwb.csv"))
    assert counts["2024-07-04 NIFTY 50"] == len(_list_symbols(nse_root, "ind_nifty50list.csv"))
    assert counts["2024-07-04 NIFTY 500"] == len(_list_symbols(nse_root, "ind_nifty500list.csv"))
    assert len(counts) == 2 + INDICES

    before = _monthly_symbols(nse_root, "nifty50_mcwb.csv")
    after = _list_symbols(nse_root, "ind_nifty50list.csv")
    assert before != after, "the generated rebalance should change NIFTY 50"
    found = ch_client.execute(
        f"SELECT change, groupArray(symbol) FROM {db}.index_changes "
        f"WHERE index_name = 'NIFTY 50' AND trade_date = %(d)s GROUP BY change",
        {"d": DAY},
    )
    assert {change: set(symbols) for change, symbols in found} == {
        "inclusion": after - before,
        "exclusion": before - after,
    }
    members = ch_client.execute(
        f"SELECT symbol FROM {db}.index_membership WHERE index_name = 'NIFTY 50' "
        f"AND valid_from <= '2024-07-01' AND (valid_to > '2024-07-01' OR valid_to IS NULL)"
    )
    assert {symbol for (symbol,) in members} == before
    bronze = env["lake"] / "bronze/index_constituents/nifty50/trade_date=2024-06-28"
    assert (bronze / "mcwb_jun24.zip").exists()


def test_soft_404_falls_back_to_the_api(dag, env, nse_root, ch_client):
    """An HTML page served with 200 for one index's list is not a list: the API's is used."""
    env["standin"].add_fault("html_200", "/content/indices/ind_niftyitlist.csv", times=None)
    run = dag.test(logical_date=_run_at(LAST))
    assert _state(run) == "success"
    rows = ch_client.execute(
        f"SELECT index_name, any(source_format), count() FROM {env['database']}.index_constituents "
        "GROUP BY index_name ORDER BY index_name"
    )
    sources = {name: source for name, source, _ in rows}
    assert sources.pop("NIFTY IT") == "api"
    assert set(sources.values()) == {"csv"} and len(sources) == INDICES - 1
    assert dict((name, n) for name, _, n in rows)["NIFTY IT"] == len(
        _list_symbols(nse_root, "ind_niftyitlist.csv")
    )
    assert any(e["path"] == "/api/equity-stockIndices" for e in env["standin"].request_log)


def test_day_without_a_list_skips(dag, env):
    """A past weekday that is not a month end has no list NSE still serves: skipped, no rows."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 6, 26)))
    assert _state(run) == "success"
    states = _task_states(dag.dag_id, run.run_id)
    assert states["parse"] == "skipped" and states["load_index_constituents"] == "skipped"
    assert not (env["lake"] / "silver").exists()
