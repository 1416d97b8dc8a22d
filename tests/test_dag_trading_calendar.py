"""The trading-calendar DAG end to end under `dag.test()`: stand-in API, lake, real ClickHouse."""

from __future__ import annotations

import datetime as dt
import json

import pendulum
import pytest

from include.nse_standin.generate import generate
from include.nse_standin.server import api_file
from tests.conftest import parse_dag
from tests.helpers import state, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

#: A holiday NSE might add mid-year (an election day), which the library does not know.
ADDED = {
    "tradingDate": "05-Mar-2025",
    "weekDay": "Wednesday",
    "description": "Election holiday",
    "morning_session": None,
    "evening_session": None,
    "Sr_no": 99,
}


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    """The stand-in's 2025 holiday master, with one CM holiday added."""
    root = tmp_path_factory.mktemp("nse")
    generate(dt.date(2025, 3, 3), dt.date(2025, 3, 3), root, symbols=20, datasets=["holidays"])
    path = api_file(root, "holiday-master", {"type": "trading"})
    answer = json.loads(path.read_text())
    answer["CM"].append(ADDED)
    path.write_text(json.dumps(answer, indent=2))
    return root


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_trading_calendar")


def test_refresh_lands_and_reruns_once(dag, dag_env, nse_root, ch_client):
    """Holidays and the calendar land in ClickHouse; a rerun leaves one copy; the timetable
    follows NSE's added holiday."""
    from nse_timetable import TradingDayTimetable

    answer = json.loads(api_file(nse_root, "holiday-master", {"type": "trading"}).read_text())
    quarter_start = pendulum.datetime(2025, 4, 1, 6, tz="Asia/Kolkata")
    for _ in range(2):
        run = dag.test(logical_date=quarter_start)
        assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == {
        f"{step}_holidays": "success"
        for step in ("fetch", "parse", "validate", "load", "refresh_calendar")
    }
    assert [o.name for o in dag.get_task("refresh_calendar_holidays").outlets] == [
        "nse_trading_calendar"
    ]

    db = dag_env["database"]
    assert ch_client.execute(f"SELECT count(), uniqExact(date, segment) FROM {db}.holidays") == [
        (sum(len(v) for v in answer.values()),) * 2
    ]
    rows = dict(
        ch_client.execute(
            f"SELECT date, is_trading_day FROM {db}.trading_calendar "
            "WHERE segment = 'CM' AND date IN ('2025-02-01', '2025-02-26', '2025-03-05', "
            "'2025-02-22', '2024-07-17', '2016-03-23')"
        )
    )
    assert rows == {
        dt.date(2025, 2, 1): 1,
        dt.date(2025, 2, 26): 0,
        dt.date(2025, 3, 5): 0,
        dt.date(2025, 2, 22): 0,
        dt.date(2024, 7, 17): 0,
        dt.date(2016, 3, 23): 1,
    }
    count, unique, days_2025 = ch_client.execute(
        f"SELECT count(), uniqExact(date, segment), countIf(toYear(date) = 2025) "
        f"FROM {db}.trading_calendar"
    )[0]
    assert count == unique and days_2025 == 365 * 4

    # The refreshed file in the lake now steers the scheduler: no run on the added holiday.
    assert (dag_env["lake"] / "gold/trading_calendar/holidays.csv").exists()
    from airflow.timetables.base import TimeRestriction

    info = TradingDayTimetable().next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(
            pendulum.datetime(2025, 3, 5, tz="Asia/Kolkata"), None, catchup=True
        ),
    )
    assert info.logical_date.in_timezone("Asia/Kolkata").date() == dt.date(2025, 3, 6)
    paths = [e["path"] for e in dag_env["standin"].request_log]
    assert "/api/holiday-master" in paths
