"""The trading calendar: NSE's lists, the calendar library, special sessions, per segment."""

from __future__ import annotations

import datetime as dt

import pytest

from include.nse import calendar
from include.nse.calendar import (
    Holiday,
    TradingCalendar,
    library_sessions,
    load_calendar,
    read_holidays,
    read_special_sessions,
    write_holidays,
)

D = dt.date


@pytest.fixture(scope="module")
def cal() -> TradingCalendar:
    return load_calendar()


class TestRealYears:
    def test_budget_saturday_2025_trades(self, cal):
        """Saturday 2025-02-01 (Union Budget) was a full session for CM and FO."""
        assert D(2025, 2, 1).weekday() == 5
        assert cal.is_trading_day(D(2025, 2, 1), "CM")
        assert cal.is_trading_day(D(2025, 2, 1), "FO")
        assert cal.classify(D(2025, 2, 1)).kind == "budget"

    def test_mahashivratri_2025_closed(self, cal):
        """Wednesday 2025-02-26 (Mahashivratri) was a holiday for CM and FO."""
        assert not cal.is_trading_day(D(2025, 2, 26), "CM")
        assert not cal.is_trading_day(D(2025, 2, 26), "FO")
        assert cal.classify(D(2025, 2, 26)).description == "Mahashivratri"

    def test_ordinary_weekends_closed(self, cal):
        """Saturdays and Sundays without a special session do not trade, in any year."""
        for day in (D(2025, 2, 8), D(2025, 2, 9), D(2019, 3, 2), D(2008, 6, 1), D(2026, 5, 9)):
            assert day.weekday() >= 5
            assert not cal.is_trading_day(day)

    def test_2025_count(self, cal):
        """2025 has 248 regular CM sessions (NSE's 14 weekday holidays) plus two special ones."""
        days = cal.trading_days(D(2025, 1, 1), D(2025, 12, 31))
        weekdays = sum(1 for i in range(365) if (D(2025, 1, 1) + dt.timedelta(i)).weekday() < 5)
        listed = [h for h in cal.listed("CM", 2025) if h.date.weekday() < 5]
        assert len(listed) == 14
        # Budget Saturday and the Muhurat session on a listed weekday holiday (Diwali).
        assert len(days) == weekdays - len(listed) + 2
        assert D(2025, 10, 21) in days

    def test_history_from_the_library(self, cal):
        """Years no NSE list covers come from the library: Diwali 2018 week and 2016 Holi."""
        assert cal.covered_years("CM") and 2016 not in cal.covered_years("CM")
        assert not cal.is_trading_day(D(2018, 11, 8))  # Diwali Balipratipada
        assert not cal.is_trading_day(D(2016, 3, 24))  # Holi
        assert cal.is_trading_day(D(2016, 3, 23))
        assert cal.classify(D(2016, 3, 23)).source == "library"

    def test_july_2024_for_the_demo(self, cal):
        """July 2024 has one weekday holiday, Muharram on the 17th (the demo relies on it)."""
        days = cal.trading_days(D(2024, 7, 1), D(2024, 7, 31))
        assert len(days) == 22
        assert D(2024, 7, 17) not in days
        assert cal.holiday(D(2024, 7, 17)).description == "Moharram"


class TestSpecialSessions:
    @pytest.mark.parametrize(
        "day", [D(2019, 10, 27), D(2023, 11, 12), D(2020, 11, 14), D(2024, 1, 20), D(2020, 2, 1)]
    )
    def test_weekend_sessions_trade(self, cal, day):
        """Muhurat Sundays, the Saturday sessions of 2020 and 2024 are trading days."""
        assert day.weekday() >= 5
        assert cal.is_trading_day(day, "CM") and cal.is_trading_day(day, "FO")

    def test_muhurat_overrides_the_listed_holiday(self, cal):
        """NSE lists Diwali 2024 as a holiday, yet its Muhurat hour trades, 18:00-19:00."""
        day = D(2024, 11, 1)
        assert cal.holiday(day).description == "Diwali Laxmi Pujan"
        assert cal.is_trading_day(day)
        session = cal.special_session(day)
        assert (session.kind, session.open, session.close) == (
            "muhurat",
            dt.time(18),
            dt.time(19),
        )

    def test_budget_saturdays_are_equity_only(self, cal):
        """Currency derivatives did not open on Budget Saturdays."""
        assert not cal.is_trading_day(D(2025, 2, 1), "CD")
        assert not cal.is_trading_day(D(2020, 2, 1), "CD")

    def test_the_data_file_is_consistent(self):
        """Budget and other special sessions fall on weekends; hours are given in pairs."""
        sessions = read_special_sessions()
        assert {s.kind for s in sessions} == {"budget", "muhurat", "special"}
        for session in sessions:
            assert not (session.open is None) ^ (session.close is None), session
            if session.open:
                assert session.open < session.close, session
            if session.kind != "muhurat":
                assert session.date.weekday() >= 5, session


class TestSegments:
    def test_currency_has_extra_holidays(self, cal):
        """CD also closes on RBI holidays, e.g. 2025-02-19 (Shivaji Jayanti), when CM trades."""
        day = D(2025, 2, 19)
        assert cal.is_trading_day(day, "CM")
        assert not cal.is_trading_day(day, "CD")
        assert cal.holiday(day, "CD").description == "Chatrapati Shivaji Maharaj Jayanti"

    def test_commodity_half_days_trade(self, cal):
        """A COM holiday with its evening session open trades; Good Friday closes both."""
        assert cal.is_trading_day(D(2025, 2, 26), "COM")
        assert cal.classify(D(2025, 2, 26), "COM").kind == "half_day"
        assert not cal.is_trading_day(D(2025, 4, 18), "COM")
        assert not cal.is_trading_day(D(2025, 2, 26), "CM")

    def test_next_and_previous(self, cal):
        """Steps skip weekends and holidays, and land on weekend sessions."""
        assert cal.next_trading_day(D(2025, 2, 25)) == D(2025, 2, 27)
        assert cal.previous_trading_day(D(2025, 2, 27)) == D(2025, 2, 25)
        assert cal.next_trading_day(D(2025, 1, 31)) == D(2025, 2, 1)
        assert cal.next_trading_day(D(2025, 2, 1)) == D(2025, 2, 3)
        assert cal.previous_trading_day(D(2025, 2, 3)) == D(2025, 2, 1)

    def test_module_functions_use_the_default_calendar(self, monkeypatch, tmp_path):
        """`is_trading_day` and friends answer from the packaged data without a lake file."""
        monkeypatch.setenv(calendar.HOLIDAYS_FILE_ENV, str(tmp_path / "none.csv"))
        assert calendar.is_trading_day(D(2025, 2, 1))
        assert not calendar.is_trading_day(D(2025, 2, 26))
        assert calendar.trading_days(D(2025, 2, 24), D(2025, 2, 28)) == [
            D(2025, 2, 24),
            D(2025, 2, 25),
            D(2025, 2, 27),
            D(2025, 2, 28),
        ]
        assert calendar.next_trading_day(D(2025, 2, 25)) == D(2025, 2, 27)
        assert calendar.previous_trading_day(D(2025, 2, 27)) == D(2025, 2, 25)


class TestReconciliation:
    def test_shipped_lists_agree_with_the_library(self, cal):
        """NSE's CM and FO lists for every shipped year match the library on every weekday."""
        assert cal.differences("CM") == []
        assert cal.differences("FO") == []

    def test_a_disagreement_is_reported(self):
        """A holiday only NSE lists, and one only the library knows, are both reported."""
        listed = [
            Holiday(D(2025, 3, 5), "CM", "Election"),  # the library trades on it
        ]
        cal = TradingCalendar(listed, [])
        found = {d["date"]: d for d in cal.differences("CM")}
        assert found["2025-03-05"]["nse"] == "holiday"
        assert found["2025-03-05"]["library"] == "trading"
        # Mahashivratri is missing from this list, so NSE's side trades there.
        assert found["2025-02-26"] == {
            "date": "2025-02-26",
            "segment": "CM",
            "nse": "trading",
            "library": "holiday",
            "description": None,
        }

    def test_library_covers_history(self):
        """The library reaches back to 1997 and at least through the shipped years."""
        _, first, last = library_sessions()
        assert first <= D(1997, 1, 2) and last >= D(2025, 12, 31)


class TestRefreshedFile:
    def test_round_trip(self, tmp_path):
        """Holidays written and read back are the same, COM sessions included."""
        holidays = [
            Holiday(D(2025, 2, 26), "COM", "Mahashivratri", "Closed", "Open"),
            Holiday(D(2025, 2, 26), "CM", "Mahashivratri"),
        ]
        path = write_holidays(holidays, tmp_path / "h.csv")
        assert sorted(read_holidays(path), key=lambda h: h.segment) == sorted(
            holidays, key=lambda h: h.segment
        )

    def test_refreshed_list_replaces_its_year(self, tmp_path):
        """A refreshed CM 2025 list replaces the shipped one; other years and segments stay."""
        path = write_holidays([Holiday(D(2025, 3, 5), "CM", "Election")], tmp_path / "h.csv")
        cal = load_calendar(path)
        assert not cal.is_trading_day(D(2025, 3, 5))
        assert cal.is_trading_day(D(2025, 2, 26))  # not in the refreshed CM list
        assert not cal.is_trading_day(D(2025, 2, 26), "FO")
        assert not cal.is_trading_day(D(2024, 7, 17))

    def test_default_calendar_follows_the_file(self, tmp_path, monkeypatch):
        """The default calendar reloads when the refreshed file appears or changes."""
        path = tmp_path / "h.csv"
        monkeypatch.setenv(calendar.HOLIDAYS_FILE_ENV, str(path))
        assert calendar.is_trading_day(D(2025, 3, 5))
        write_holidays([Holiday(D(2025, 3, 5), "CM", "Election")], path)
        assert not calendar.is_trading_day(D(2025, 3, 5))

    def test_lake_path_by_default(self, tmp_path, monkeypatch):
        """Without NSE_HOLIDAYS_FILE the file is under the lake root."""
        monkeypatch.delenv(calendar.HOLIDAYS_FILE_ENV, raising=False)
        monkeypatch.setenv("NSE_LAKE_ROOT", str(tmp_path))
        assert calendar.refreshed_file() == tmp_path / "gold/trading_calendar/holidays.csv"
