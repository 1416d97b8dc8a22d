"""Index constituents: every shape NSE serves (list CSV, monthly archive, API) parsed from
generated files, and bad input refused with a clear error.

Expected values are read back from the generated files with the standard library.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from include.nse.errors import ParseError
from include.nse.sources import index_constituents as source
from include.nse_standin.generate import generate
from include.nse_standin.market import Universe
from include.nse_standin.server import api_file
from tests.helpers import rewrite_csv

FIRST, LAST = dt.date(2024, 6, 24), dt.date(2024, 7, 5)
SEED, SIZE = 7, 400
#: Real ISINs from NSE's files, and the same with the check digit changed.
REAL_ISINS = ("INE002A01018", "INE467B01029", "INE0NHL23019", "IN002023Y458", "INF204KB14I2")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, out, seed=SEED, symbols=SIZE, datasets=["index_constituents"])
    return out


def _list_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _parse(path: Path):
    return source.parse(path.read_bytes(), path.name)


class TestCurrentLists:
    @pytest.mark.parametrize("index", source.INDICES, ids=lambda i: i.name)
    def test_every_list_parses_to_its_rows(self, root, index):
        """Each index's list gives its rows, ISINs and industries, named by the file's name."""
        path = root / "content/indices" / index.list_file
        expected = _list_rows(path)
        df = _parse(path)
        assert df.height == len(expected) > 0
        assert df["index_name"].unique().to_list() == [index.name]
        assert sorted(df["symbol"]) == sorted(r["Symbol"] for r in expected)
        by_symbol = {r["Symbol"]: r for r in expected}
        for row in df.iter_rows(named=True):
            assert row["isin"] == by_symbol[row["symbol"]]["ISIN Code"]
            assert row["industry"] == by_symbol[row["symbol"]]["Industry"]
        assert df["weight"].null_count() == df.height
        assert df["trade_date"].null_count() == df.height  # the file names no day
        assert set(df["source_format"]) == {"csv"}

    def test_written_like_nse(self, root):
        """CRLF line ends and no newline after the last row, as NSE's file."""
        data = (root / "content/indices/ind_nifty50list.csv").read_bytes()
        assert data.count(b"\r\n") == data.count(b"\n") == 50
        assert not data.endswith(b"\n")

    def test_members_are_market_securities(self, root):
        """Constituents are the generated market's EQ companies, with their ISINs."""
        universe = Universe.build(SEED, SIZE)
        listed = dict(zip(universe.symbol, universe.isin, strict=True))
        rows = _list_rows(root / "content/indices/ind_nifty500list.csv")
        assert rows and all(listed[r["Symbol"]] == r["ISIN Code"] for r in rows)
        assert all(r["Series"] == "EQ" and r["ISIN Code"].startswith("INE") for r in rows)

    def test_old_uppercase_lists_with_lf(self):
        """An older list (LF line ends, UPPERCASE industries, a final newline) keeps its text."""
        text = (
            "Company Name,Industry,Symbol,Series,ISIN Code\n"
            "Axis Bank Ltd.,FINANCIAL SERVICES,AXISBANK,EQ,INE238A01034\n"
            "State Bank of India,FINANCIAL SERVICES,SBIN,EQ,INE062A01020\n"
        )
        df = source.parse(text.encode(), "ind_niftybanklist.csv")
        assert df["industry"].to_list() == ["FINANCIAL SERVICES"] * 2
        assert df["index_name"].to_list() == ["NIFTY BANK"] * 2


class TestMonthlyArchive:
    def _members(self, root) -> dict[str, list[list[str]]]:
        with zipfile.ZipFile(root / "content/indices/mcwb_jun24.zip") as archive:
            return {
                name: list(csv.reader(io.StringIO(archive.read(name).decode())))
                for name in archive.namelist()
            }

    def test_weights_and_date(self, root):
        """Each member's rows and weights, dated by its 'Last day of trading' footnote."""
        df = _parse(root / "content/indices/mcwb_jun24.zip")
        members = self._members(root)
        assert sorted(members) == ["nifty50_mcwb.csv", "niftynext50_mcwb.csv"]
        for member, name in (
            ("nifty50_mcwb.csv", "NIFTY 50"),
            ("niftynext50_mcwb.csv", "NIFTY NEXT 50"),
        ):
            rows = [r for r in members[member] if r and r[0].isdigit()]
            mine = df.filter(df["index_name"] == name)
            assert sorted(mine["symbol"]) == sorted(r[1] for r in rows)
            assert mine["weight"].sum() == pytest.approx(sum(float(r[6]) for r in rows))
            assert 99 < mine["weight"].sum() < 101
        assert set(df["as_of"]) == set(df["trade_date"]) == {dt.date(2024, 6, 28)}
        assert df["isin"].null_count() == df.height
        assert set(df["source_format"]) == {"mcwb"}

    def test_written_only_on_month_ends(self, root):
        """June's archive exists (its last weekday is in range), July's does not (yet)."""
        names = sorted(p.name for p in (root / "content/indices").glob("mcwb_*.zip"))
        assert names == ["mcwb_jun24.zip"]


class TestApi:
    def test_constituents_after_the_index_row(self, root):
        """The API's constituents (not its first, the index's own row), dated by its timestamp."""
        path = api_file(root, "equity-stockIndices", {"index": "NIFTY BANK"})
        document = json.loads(path.read_text())
        df = source.parse(path.read_bytes(), "equity-stockIndices.json")
        constituents = document["data"][1:]
        assert df.height == len(constituents)
        assert df["isin"].to_list() == [row["meta"]["isin"] for row in constituents]
        assert set(df["index_name"]) == {"NIFTY BANK"}
        assert set(df["as_of"]) == {LAST}

    def test_agrees_with_the_list(self, root):
        """The last day's API answer and list hold the same members."""
        path = api_file(root, "equity-stockIndices", {"index": "NIFTY 50"})
        api = _parse(path)
        listed = _parse(root / "content/indices/ind_nifty50list.csv")
        assert sorted(api["symbol"]) == sorted(listed["symbol"])


class TestRefused:
    HEADER = "Company Name,Industry,Symbol,Series,ISIN Code\r\n"

    def test_soft_404_page(self):
        """An HTML page served where a list was expected is no list."""
        page = b"<!DOCTYPE html><html><body>Page not available</body></html>"
        with pytest.raises(ParseError, match="HTML page"):
            source.parse(page, "ind_nifty50list.csv")

    def test_bad_isin_check_digit(self):
        """An ISIN whose check digit is wrong is refused, naming its line and column."""
        data = self.HEADER + "Reliance Industries Ltd.,Oil Gas,RELIANCE,EQ,INE002A01019"
        with pytest.raises(ParseError, match=r"line 2, column 'ISIN Code'.*check digit"):
            source.parse(data.encode(), "ind_nifty50list.csv")

    def test_unknown_list_name(self):
        """A list whose file name names no known index cannot be filed."""
        data = self.HEADER + "Reliance Industries Ltd.,Oil Gas,RELIANCE,EQ,INE002A01018"
        with pytest.raises(ParseError, match="cannot tell which index"):
            source.parse(data.encode(), "constituents.csv")

    def test_repeated_symbol(self):
        """One symbol twice in a list would double its membership."""
        row = "Reliance Industries Ltd.,Oil Gas,RELIANCE,EQ,INE002A01018\r\n"
        with pytest.raises(ParseError, match="line 3"):
            source.parse((self.HEADER + row + row).encode(), "ind_nifty50list.csv")

    def test_header_only(self):
        """A list with no rows is not an index with no members."""
        with pytest.raises(ParseError, match="only the header"):
            source.parse(self.HEADER.encode(), "ind_nifty50list.csv")

    def _mcwb(self, root, edit) -> bytes:
        """The generated June archive with `edit` applied to the text of each member."""
        raw = (root / "content/indices/mcwb_jun24.zip").read_bytes()
        for member in ("nifty50_mcwb.csv", "niftynext50_mcwb.csv"):
            raw = rewrite_csv(raw, lambda data: edit(data.decode()).encode(), member)
        return raw

    def test_archive_without_its_date(self, root):
        """A monthly archive whose footnotes do not state its last trading day is refused."""
        raw = self._mcwb(root, lambda text: text.replace("Last day of trading", "Last day"))
        with pytest.raises(ParseError, match="Last day of trading was"):
            source.parse(raw, "mcwb_jun24.zip")

    def test_cut_archive(self, root):
        """A member cut before its totals row is refused rather than loaded short."""
        raw = self._mcwb(root, lambda text: "\r\n".join(text.split("\r\n")[:20]))
        with pytest.raises(ParseError, match="totals row"):
            source.parse(raw, "mcwb_jun24.zip")

    def test_api_without_constituents(self):
        """An API answer holding only the index's own row has no list."""
        document = {
            "timestamp": "05-Jul-2024 16:00:00",
            "data": [{"priority": 1, "symbol": "NIFTY 50"}],
        }
        with pytest.raises(ParseError, match="found none"):
            source.parse(json.dumps(document).encode(), "equity-stockIndices.json")

    def test_api_bad_isin(self, root):
        """A constituent's bad ISIN is named by its place in `data`."""
        path = api_file(root, "equity-stockIndices", {"index": "NIFTY IT"})
        document = json.loads(path.read_text())
        document["data"][2]["meta"]["isin"] = "INE0000000"
        with pytest.raises(ParseError, match=r"data\[2\]\.meta\.isin"):
            source.parse(json.dumps(document).encode(), "equity-stockIndices.json")

    @pytest.mark.parametrize(
        ("where", "value"),
        [
            (("data", 2, "series"), ["EQ"]),
            (("data", 2, "series"), 1),
            (("data", 2, "meta", "industry"), ["IT", "Software"]),
            (("data", 2, "meta", "industry"), 7),
            (("data", 2, "symbol"), 500209),
            (("data", 2, "meta", "companyName"), {"name": "x"}),
            (("data", 2, "priority"), "0"),
            (("name",), ["NIFTY IT"]),
            (("name",), 50),
        ],
        ids=lambda v: "-".join(map(str, v)) if isinstance(v, tuple) else type(v).__name__,
    )
    def test_api_wrong_json_type_is_refused(self, root, where, value):
        """A list, number or object where the API sends text (or text where it sends a number)
        is refused naming the field and its record, never turned into text."""
        path = api_file(root, "equity-stockIndices", {"index": "NIFTY IT"})
        document = json.loads(path.read_text())
        target = document
        for step in where[:-1]:
            target = target[step]
        target[where[-1]] = value
        column = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in where).lstrip(".")
        with pytest.raises(ParseError, match=re.escape(f"column '{column}': expected")):
            source.parse(json.dumps(document).encode(), "equity-stockIndices.json")

    def test_throttled_api(self):
        """NSE's throttling answer `{}` is not a list."""
        with pytest.raises(ParseError, match="non-empty 'data'"):
            source.parse(b"{}", "equity-stockIndices.json")


class TestIsin:
    def test_real_isins_pass(self):
        """ISINs NSDL issued (shares, a T-bill, a fund) pass the check."""
        assert all(source.isin_valid(isin) for isin in REAL_ISINS)

    def test_changed_digits_fail(self):
        """Any other check digit, a short code or lower case fails."""
        for isin in REAL_ISINS:
            others = [isin[:-1] + d for d in "0123456789" if d != isin[-1]]
            assert not any(source.isin_valid(other) for other in others)
        assert not source.isin_valid("INE002A0101")
        assert not source.isin_valid("ine002a01018")


class TestPaths:
    def test_nse_file_names(self):
        """NSE's archive names: the lists and the month's weightage archive."""
        assert source.index("NIFTY FINANCIAL SERVICES").list_path == (
            "/content/indices/ind_niftyfinancelist.csv"
        )
        assert source.mcwb_path(dt.date(2022, 5, 31)) == "/content/indices/mcwb_may22.zip"
        with pytest.raises(KeyError, match="known: NIFTY 50"):
            source.index("NIFTY SMALLCAP 999")
