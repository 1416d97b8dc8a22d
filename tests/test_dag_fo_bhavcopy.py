"""The F&O DAG end to end under `dag.test()`: stand-in over loopback, lake, real ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import pytest

from include.nse import sources
from include.nse.calendar import default_calendar
from include.nse_standin.generate import generate
from tests.conftest import parse_dag
from tests.helpers import state, task_log, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 7, 4), dt.date(2024, 7, 8)
#: A weekday NSE's F&O segment was closed (Muharram), whose file the stand-in serves anyway.
HOLIDAY = dt.date(2024, 7, 17)
TASKS = ["fetch_fo_bhavcopy", "parse_fo_bhavcopy", "validate_fo_bhavcopy", "load_fo_bhavcopy"]


def _run_at(day: dt.date) -> dt.datetime:
    """The scheduled run for a trade date: 19:00 in Mumbai, 13:30 UTC."""
    return dt.datetime.combine(day, dt.time(13, 30), dt.UTC)


def _legacy_rows(root, day: dt.date) -> list[dict]:
    mmm = day.strftime("%b").upper()
    name = f"fo{day:%d}{mmm}{day:%Y}bhav.csv"
    path = root / f"content/historical/DERIVATIVES/{day:%Y}/{mmm}/{name}.zip"
    with zipfile.ZipFile(path) as z:
        return list(csv.DictReader(io.TextIOWrapper(z.open(name), encoding="utf-8")))


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, root, symbols=300, datasets=["fo_bhavcopy"])
    generate(HOLIDAY, HOLIDAY, root, symbols=300, datasets=["fo_bhavcopy"])
    return root


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_fo_bhavcopy")


def test_a_day_lands_once_in_clickhouse(dag, dag_env, nse_root, ch_client):
    """A scheduled legacy day lands every contract; running it again leaves one copy."""
    day = dt.date(2024, 7, 5)
    expected = _legacy_rows(nse_root, day)
    for _ in range(2):
        run = dag.test(logical_date=_run_at(day))
        assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "success")
    db = dag_env["database"]
    count, contracts, futures, source = ch_client.execute(
        f"SELECT count(), sum(contracts), countIf(option_type IS NULL), any(source_format) "
        f"FROM {db}.fo_bhavcopy WHERE trade_date = %(d)s",
        {"d": day},
    )[0]
    assert count == len(expected)
    assert contracts == sum(int(r["CONTRACTS"]) for r in expected)
    assert futures == sum(r["OPTION_TYP"] == "XX" for r in expected)
    assert source == "legacy"
    assert ch_client.execute(
        f"SELECT count() = uniqExact(instrument, symbol, expiry_date, "
        f"ifNull(strike_price, 0), ifNull(option_type, '')) FROM {db}.fo_bhavcopy"
    ) == [(1,)]
    bronze = dag_env["lake"] / "bronze/fo_bhavcopy/trade_date=2024-07-05/fo05JUL2024bhav.csv.zip"
    assert bronze.exists()


def test_udiff_day_by_param(dag, dag_env, ch_client):
    """A `trade_date` param loads that day; after the cutover the UDiFF file is used."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 9)), run_conf={"trade_date": "2024-07-08"})
    assert state(run) == "success"
    db = dag_env["database"]
    rows = ch_client.execute(
        f"SELECT trade_date, source_format, count() > 0, countIf(lot_size IS NULL) "
        f"FROM {db}.fo_bhavcopy GROUP BY trade_date, source_format"
    )
    assert rows == [(dt.date(2024, 7, 8), "udiff", 1, 0)]


def test_unpublished_day_skips(dag, dag_env):
    """A trading day NSE has not published yet ends as skipped after asking for its file, with
    nothing loaded."""
    run = dag.test(logical_date=_run_at(dt.date(2024, 7, 9)))
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "skipped")
    assert state(run) == "success"
    assert not (dag_env["lake"] / "silver").exists()
    paths = [e["path"] for e in dag_env["standin"].request_log]
    assert any("BhavCopy_NSE_FO_0_0_0_20240709_F_0000.csv.zip" in p for p in paths)


def test_holiday_skips_every_task_before_any_request(dag, dag_env, nse_root):
    """A trading holiday skips the whole run without asking NSE, though a file is there to
    fetch; the fetch task's reason names the holiday."""
    (path,) = sources.get("fo_bhavcopy").publication.paths(HOLIDAY)
    assert (nse_root / path.lstrip("/")).is_file()
    closed = default_calendar().classify(HOLIDAY, "FO")
    assert not closed.is_trading_day and closed.kind == "holiday" and closed.description
    with task_log() as logged:
        run = dag.test(logical_date=_run_at(HOLIDAY))
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == dict.fromkeys(TASKS, "skipped")
    assert dag_env["standin"].request_log == []
    (reason,) = [m for m in logged if "closed" in m]
    assert f"FO segment was closed on Wednesday {HOLIDAY}" in reason
    assert f"holiday: {closed.description}" in reason
    assert not (dag_env["lake"] / "bronze").exists()
