"""The index constituents DAG under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest

from include.nse.sources.index_constituents import DEFAULT_INDICES
from include.nse_standin.generate import generate
from tests.conftest import parse_dag
from tests.helpers import state, task_log, task_result, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 6, 24), dt.date(2024, 7, 5)
#: June's last trading day: only the monthly archive (NIFTY 50 and NEXT 50) can be its list.
MONTH_END = dt.date(2024, 6, 28)
#: After the 1 July rebalance: every index's current list is that day's.
DAY = dt.date(2024, 7, 4)
INDICES = len(DEFAULT_INDICES)
TASKS = [f"{step}_index_constituents" for step in ("fetch", "parse", "validate", "load", "changes")]


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 20:00 in Mumbai, 14:30 UTC."""
    return dt.datetime.combine(day, dt.time(14, 30), dt.UTC)


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
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_index_constituents")


def test_month_end_then_daily_lists_give_history(dag, dag_env, nse_root, ch_client):
    """A backfilled month end (monthly archive) and a later day (current lists) land once each;
    the changes between them are the files' differences, and a rerun leaves one copy."""
    db = dag_env["database"]
    assert state(dag.test(logical_date=_run_at(MONTH_END))) == "success"
    for _ in range(2):
        run = dag.test(logical_date=_run_at(DAY))
        assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "success")

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
    # The step after the load reports the same changes.
    reported = task_result(dag.dag_id, run.run_id, "changes_index_constituents")["changes"]
    assert {
        change: {
            c["symbol"] for c in reported if c["index_name"] == "NIFTY 50" and c["change"] == change
        }
        for change in ("inclusion", "exclusion")
    } == {"inclusion": after - before, "exclusion": before - after}
    members = ch_client.execute(
        f"SELECT symbol FROM {db}.index_membership WHERE index_name = 'NIFTY 50' "
        f"AND valid_from <= '2024-07-01' AND (valid_to > '2024-07-01' OR valid_to IS NULL)"
    )
    assert {symbol for (symbol,) in members} == before
    bronze = dag_env["lake"] / "bronze/index_constituents/trade_date=2024-06-28"
    assert sorted(p.relative_to(bronze).as_posix() for p in bronze.rglob("*.zip")) == [
        "index=nifty50/mcwb_jun24.zip",
        "index=niftynext50/mcwb_jun24.zip",
    ]


def test_soft_404_falls_back_to_the_api(dag, dag_env, nse_root, ch_client):
    """An HTML page served with 200 for one index's list is not a list: the API's is used."""
    dag_env["standin"].add_fault("html_200", "/content/indices/ind_niftyitlist.csv", times=None)
    run = dag.test(logical_date=_run_at(LAST))
    assert state(run) == "success"
    rows = ch_client.execute(
        "SELECT index_name, any(source_format), count() "
        f"FROM {dag_env['database']}.index_constituents GROUP BY index_name ORDER BY index_name"
    )
    sources = {name: source for name, source, _ in rows}
    assert sources.pop("NIFTY IT") == "api"
    assert set(sources.values()) == {"csv"} and len(sources) == INDICES - 1
    assert dict((name, n) for name, _, n in rows)["NIFTY IT"] == len(
        _list_symbols(nse_root, "ind_niftyitlist.csv")
    )
    assert any(e["path"] == "/api/equity-stockIndices" for e in dag_env["standin"].request_log)


def test_day_without_a_list_skips(dag, dag_env):
    """A past weekday that is not a month end has no list NSE still serves: every task is
    skipped, nothing lands, and the fetch's reason says why for each index."""
    with task_log() as logged:
        run = dag.test(logical_date=_run_at(dt.date(2024, 6, 26)))
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "skipped")
    assert not (dag_env["lake"] / "silver").exists()
    (reason,) = [m for m in logged if "is not published yet" in m]
    assert "2024-06-26" in reason
    assert all(f"{name}: " in reason for name in DEFAULT_INDICES), reason
