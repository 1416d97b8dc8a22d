"""The holiday master parser: generated answers in NSE's shape, bad input, and NSE's real files."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest

from include.nse import sources
from include.nse.errors import ParseError
from include.nse.sources.holidays import parse
from include.nse_standin.generate import generate
from include.nse_standin.server import api_file
from tests.conftest import PROJECT_ROOT

MASTER = "holiday-master_type=trading.json"


def entry(date: str, weekday: str, description: str = "Holi", **sessions) -> dict:
    return {"tradingDate": date, "weekDay": weekday, "description": description, "Sr_no": 1} | {
        f"{name}_session": value for name, value in sessions.items()
    }


def encoded(data) -> bytes:
    return json.dumps(data, indent=2).encode()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> bytes:
    """The generated answer for 2025, as the stand-in serves it."""
    root = tmp_path_factory.mktemp("nse")
    generate(dt.date(2025, 3, 3), dt.date(2025, 3, 4), root, symbols=20, datasets=["holidays"])
    return api_file(root, "holiday-master", {"type": "trading"}).read_bytes()


class TestGenerated:
    def test_every_segment_and_entry(self, generated):
        """One row per entry of every segment list, with the date, weekday and description."""
        answer = json.loads(generated)
        df = parse(generated, MASTER)
        assert df.height == sum(len(v) for v in answer.values())
        assert sorted(df["segment"].unique()) == sorted(answer)
        first = answer["CM"][0]
        row = df.filter(pl.col("segment") == "CM").row(0, named=True)
        assert row["date"] == dt.datetime.strptime(first["tradingDate"], "%d-%b-%Y").date()
        assert (row["description"], row["weekday"]) == (first["description"], first["weekDay"])

    def test_schema_and_key(self, generated):
        """Exactly the silver schema, one row per (date, segment)."""
        df = parse(generated, MASTER)
        assert df.schema == sources.get("holidays").schema
        assert df.select(pl.struct("date", "segment").is_unique().all()).item()

    def test_commodity_sessions(self, generated):
        """COM rows keep their session flags; other segments have none."""
        df = parse(generated, MASTER)
        com = df.filter(pl.col("segment") == "COM", pl.col("date") == dt.date(2025, 2, 26))
        assert com.select("morning_session", "evening_session").row(0) == ("Closed", "Open")
        assert df.filter(pl.col("segment") == "CM")["morning_session"].null_count() == (
            df.filter(pl.col("segment") == "CM").height
        )


class TestShapes:
    def test_bare_list_is_cm(self):
        """A bare list of entries (the CM list alone) is read as segment CM."""
        df = parse(encoded([entry("26-Jan-2022", "Wednesday", "Republic Day")]), "holiday.json")
        assert df.rows() == [(dt.date(2022, 1, 26), "CM", "Republic Day", "Wednesday", None, None)]

    def test_entries_without_session_keys(self):
        """Before 2025 entries had no session keys: nulls."""
        df = parse(encoded({"FO": [entry("08-Mar-2024", "Friday")]}), MASTER)
        assert df["morning_session"].to_list() == [None]

    def test_description_whitespace(self):
        """Runs of spaces in descriptions are collapsed."""
        df = parse(encoded({"CM": [entry("25-Dec-2025", "Thursday", " Christmas  Day ")]}), MASTER)
        assert df["description"].to_list() == ["Christmas Day"]


class TestRefusals:
    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            (b"{}", "throttling"),
            (b"<html><body>Access Denied</body></html>", "HTML"),
            (b'{"CM": [', "expected JSON"),
            (encoded({"CM": {"a": 1}}), "expected a list"),
            (
                encoded({"CM": [entry("2025-01-26", "Sunday")]}),
                "tradingDate: expected a date like 05-Jul-2024, found '2025-01-26'",
            ),
            (encoded({"CM": [entry("26-Jan-2025", "Monday")]}), "is a Sunday"),
            (encoded({"CM": [{"tradingDate": "26-Jan-2025", "weekDay": "Sunday"}]}), "description"),
            (encoded({"COM": [entry("26-Feb-2025", "Wednesday", morning="Half")]}), "Open, Closed"),
            (
                encoded({"CM": [entry("14-Mar-2025", "Friday"), entry("14-Mar-2025", "Friday")]}),
                "twice",
            ),
        ],
        ids=[
            "throttled",
            "html",
            "truncated",
            "not-a-list",
            "date-format",
            "weekday",
            "no-description",
            "session",
            "duplicate",
        ],
    )
    def test_bad_input_names_the_problem(self, raw, message):
        """Each malformed answer is refused with a message saying what was expected."""
        with pytest.raises(ParseError, match=message) as caught:
            parse(raw, MASTER)
        assert MASTER in str(caught.value)


class TestConformance:
    """NSE's real answers in ../shared/nse-samples/holidays, checked against the files.

    Unlike the other datasets, a holiday list has no numeric field (dates, text and session
    flags only), so there is no blank number to read as null and leave to the gate here.
    """

    def test_every_real_file(self, samples_dir):
        """Every sample parses to one row per entry, dates and descriptions as printed."""
        files = sorted((samples_dir / "holidays").glob("*.json"))
        assert files
        for path in files:
            data = json.loads(path.read_text())
            lists = data if isinstance(data, dict) else {"CM": data}
            df = parse(path.read_bytes(), path.name)
            assert df.height == sum(len(v) for v in lists.values()), path.name
            for segment, entries in lists.items():
                got = df.filter(pl.col("segment") == segment)
                expected = sorted(
                    (dt.datetime.strptime(e["tradingDate"], "%d-%b-%Y").date(), e["description"])
                    for e in entries
                )
                assert list(zip(got["date"], got["description"], strict=True)) == expected

    def test_2025_master_segments(self, samples_dir):
        """The 2025 master: 11 segments; CD lists 5 more days than CM; COM has half days."""
        df = parse(
            (samples_dir / "holidays/holiday-master_trading_2025_misterdas.json").read_bytes(),
            "holiday-master_trading_2025_misterdas.json",
        )
        counts = dict(df.group_by("segment").len().iter_rows())
        assert len(counts) == 11
        assert counts["CD"] - counts["CM"] == 5
        com = df.filter(pl.col("segment") == "COM")
        assert com.filter(pl.col("evening_session") == "Open").height > 0

    def test_shipped_2025_lists_match_nse(self, samples_dir):
        """The calendar's shipped 2025 lists are NSE's, segment by segment."""
        from include.nse.calendar import load_calendar

        df = parse(
            (samples_dir / "holidays/holiday-master_trading_2025_misterdas.json").read_bytes(),
            "x.json",
        )
        calendar = load_calendar()
        for segment in df["segment"].unique():
            nse = df.filter(pl.col("segment") == segment)
            assert [h.date for h in calendar.listed(segment, 2025)] == nse["date"].to_list()

    def test_command_line(self, samples_dir, tmp_path):
        """`python -m include.nse parse holidays FILE` writes the silver rows."""
        path = samples_dir / "holidays/holiday-master_CMlist_2022_eod2.json"
        out = tmp_path / "h.parquet"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "include.nse",
                "parse",
                "holidays",
                str(path),
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["rows"] == len(json.loads(path.read_text()))
        assert pl.read_parquet(out).columns == [
            "date",
            "segment",
            "description",
            "weekday",
            "morning_session",
            "evening_session",
        ]
