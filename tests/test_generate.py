"""The generator writes NSE's files, in NSE's layout, with a market that hangs together.

Files are read back with the standard library only, so these tests do not lean on the parsers
in `include/nse/sources`, which they exist to check.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from include.nse_standin.cli import generate_command
from include.nse_standin.generate import generate
from include.nse_standin.market import EPOCH, trading_days
from tests.helpers import read_records

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
FIRST, LAST = dt.date(2024, 7, 1), dt.date(2024, 7, 10)
#: A made-up holiday inside the range, so the walk and the layout have to skip it.
HOLIDAY = dt.date(2024, 7, 3)
SIZE = 400
DAYS = [dt.date(2024, 7, d) for d in (1, 2, 4, 5, 8, 9, 10)]
UDIFF_HEADER = (
    "TradDt,BizDt,Sgmt,Src,FinInstrmTp,FinInstrmId,ISIN,TckrSymb,SctySrs,XpryDt,"
    "FininstrmActlXpryDt,StrkPric,OptnTp,FinInstrmNm,OpnPric,HghPric,LwPric,ClsPric,LastPric,"
    "PrvsClsgPric,UndrlygPric,SttlmPric,OpnIntrst,ChngInOpnIntrst,TtlTradgVol,TtlTrfVal,"
    "TtlNbOfTxsExctd,SsnId,NewBrdLotQty,Rmks,Rsvd1,Rsvd2,Rsvd3,Rsvd4"
)
#: Real ISINs from NSE's files, to show the validator below accepts what NSDL issues.
REAL_ISINS = ("INE002A01018", "INE467B01029", "INE0NHL23019", "IN002023Y458", "INF204KB14I2")


# ---- reading the files back -------------------------------------------------------------------
def legacy_member(day: dt.date) -> str:
    return f"cm{day:%d}{MONTHS[day.month - 1]}{day:%Y}bhav.csv"


def legacy_path(root: Path, day: dt.date) -> Path:
    month = MONTHS[day.month - 1]
    return root / "content/historical/EQUITIES" / f"{day:%Y}" / month / f"{legacy_member(day)}.zip"


def udiff_member(day: dt.date) -> str:
    return f"BhavCopy_NSE_CM_0_0_0_{day:%Y%m%d}_F_0000.csv"


def udiff_path(root: Path, day: dt.date) -> Path:
    return root / "content/cm" / f"{udiff_member(day)}.zip"


def delivery_path(root: Path, day: dt.date) -> Path:
    return root / "products/content" / f"sec_bhavdata_full_{day:%d%m%Y}.csv"


def unzip(path: Path, member: str) -> str:
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [member]
        return archive.read(member).decode()


def legacy_rows(root: Path, day: dt.date) -> list[dict]:
    text = unzip(legacy_path(root, day), legacy_member(day))
    return list(csv.DictReader(io.StringIO(text)))


def udiff_rows(root: Path, day: dt.date) -> list[dict]:
    text = unzip(udiff_path(root, day), udiff_member(day))
    return list(csv.DictReader(io.StringIO(text)))


def delivery_rows(root: Path, day: dt.date) -> list[dict]:
    header, *lines = delivery_path(root, day).read_text().splitlines()
    names = header.split(", ")
    return [dict(zip(names, line.split(", "), strict=True)) for line in lines]


def udiff_as_legacy(root: Path, day: dt.date) -> list[dict]:
    """The UDiFF file's rows under the legacy file's column names."""
    names = {
        "TckrSymb": "SYMBOL",
        "SctySrs": "SERIES",
        "OpnPric": "OPEN",
        "HghPric": "HIGH",
        "LwPric": "LOW",
        "ClsPric": "CLOSE",
        "LastPric": "LAST",
        "PrvsClsgPric": "PREVCLOSE",
        "TtlTradgVol": "TOTTRDQTY",
        "TtlTrfVal": "TOTTRDVAL",
        "TtlNbOfTxsExctd": "TOTALTRADES",
        "ISIN": "ISIN",
    }
    return [{names[k]: v for k, v in r.items() if k in names} for r in udiff_rows(root, day)]


def cm_rows(root: Path, day: dt.date) -> list[dict]:
    """The day's bhavcopy in legacy column names, whichever format NSE published it in."""
    if legacy_path(root, day).exists():
        return legacy_rows(root, day)
    return udiff_as_legacy(root, day)


def as_values(rows: list[dict]) -> list[tuple]:
    """Rows as values, so 36.3 and 36.30 compare equal."""
    numbers = ("OPEN", "HIGH", "LOW", "CLOSE", "LAST", "PREVCLOSE", "TOTTRDQTY", "TOTTRDVAL")
    return [
        (r["SYMBOL"], r["SERIES"], r["ISIN"], r["TOTALTRADES"], *(price(r[k]) for k in numbers))
        for r in rows
    ]


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def isin_is_valid(isin: str) -> bool:
    """Luhn over the digits of the whole ISIN (letters as 10..35) sums to a multiple of 10."""
    if not re.fullmatch(r"IN[0-9A-Z]{9}[0-9]", isin):
        return False
    digits = [int(d) for c in isin for d in str(int(c, 36))]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 else digit
        total += doubled // 10 + doubled % 10
    return total % 10 == 0


def price(text: str) -> Decimal:
    return Decimal(text)


#: The equity datasets this file checks; other datasets' files have their own tests.
CM_DATASETS = ["cm_bhavcopy", "cm_delivery"]


# ---- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nse_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, root, symbols=SIZE, holidays={HOLIDAY}, datasets=CM_DATASETS)
    return root


@pytest.fixture(scope="module")
def full_day(tmp_path_factory) -> Path:
    """One day at the default size, for the numbers that depend on it."""
    root = tmp_path_factory.mktemp("full")
    generate(dt.date(2024, 7, 5), dt.date(2024, 7, 5), root, datasets=CM_DATASETS)
    return root


# ---- tests ------------------------------------------------------------------------------------
class TestLayout:
    def test_paths_follow_nse_urls_around_the_udiff_cutover(self, nse_root):
        """Legacy up to 2024-07-05, UDiFF from 2024-07-08, delivery every day; nothing else."""
        expected = set()
        for day in DAYS:
            expected.add(delivery_path(nse_root, day))
            expected.add(udiff_path(nse_root, day))
            if day <= dt.date(2024, 7, 5):
                expected.add(legacy_path(nse_root, day))
        assert {p for p in nse_root.rglob("*") if p.is_file()} == expected

    def test_zip_holds_one_member_named_like_nse(self, nse_root):
        """Each ZIP holds exactly the CSV its URL names, dated on the trade date."""
        with zipfile.ZipFile(legacy_path(nse_root, DAYS[0])) as archive:
            (info,) = archive.infolist()
        assert info.filename == "cm01JUL2024bhav.csv"
        assert info.date_time[:3] == (2024, 7, 1)
        assert info.compress_type == zipfile.ZIP_DEFLATED

    def test_first_half_of_2024_has_both_formats_with_the_same_rows(self, tmp_path):
        """NSE back-filled UDiFF to 2024-01-01: both files exist and agree there."""
        day = dt.date(2024, 1, 1)
        report = generate(dt.date(2023, 12, 29), day, tmp_path, symbols=120, datasets=CM_DATASETS)
        assert report.files == {"cm_bhavcopy": 3, "cm_delivery": 2}
        assert legacy_path(tmp_path, dt.date(2023, 12, 29)).exists()
        assert not udiff_path(tmp_path, dt.date(2023, 12, 29)).exists()
        assert as_values(legacy_rows(tmp_path, day)) == as_values(udiff_as_legacy(tmp_path, day))

    def test_a_weekend_session_has_its_files_and_other_weekends_none(self, tmp_path):
        """A Saturday NSE opened (2024-03-02) gets a day's files; the Sunday after gets none,
        and Monday's previous close is Saturday's close."""
        report = generate(
            dt.date(2024, 3, 1),
            dt.date(2024, 3, 4),
            tmp_path,
            symbols=50,
            datasets=["cm_bhavcopy"],
            weekend_sessions=[dt.date(2024, 3, 2)],
        )
        assert report.trading_days == [
            dt.date(2024, 3, 1),
            dt.date(2024, 3, 2),
            dt.date(2024, 3, 4),
        ]
        folder = tmp_path / "content/historical/EQUITIES/2024/MAR"
        assert sorted(p.name for p in folder.iterdir()) == [
            "cm01MAR2024bhav.csv.zip",
            "cm02MAR2024bhav.csv.zip",
            "cm04MAR2024bhav.csv.zip",
        ]
        saturday = {
            r["SYMBOL"]: r for r in read_records((folder / "cm02MAR2024bhav.csv.zip").read_bytes())
        }
        monday = read_records((folder / "cm04MAR2024bhav.csv.zip").read_bytes())
        carried = [r for r in monday if r["SYMBOL"] in saturday and r["SERIES"] == "EQ"]
        assert carried
        assert all(r["PREVCLOSE"] == saturday[r["SYMBOL"]]["CLOSE"] for r in carried)


class TestDeterminism:
    def test_same_seed_same_bytes(self, nse_root, tmp_path):
        """A rerun with the same arguments writes identical bytes."""
        generate(FIRST, LAST, tmp_path, symbols=SIZE, holidays={HOLIDAY}, datasets=CM_DATASETS)
        assert files_under(tmp_path) == files_under(nse_root)

    def test_a_day_does_not_depend_on_the_range(self, nse_root, tmp_path):
        """Generating part of the range reproduces that part: the walk starts at a fixed day."""
        generate(
            dt.date(2024, 7, 8),
            dt.date(2024, 7, 9),
            tmp_path,
            symbols=SIZE,
            holidays={HOLIDAY},
            datasets=CM_DATASETS,
        )
        part = files_under(tmp_path)
        assert len(part) == 4
        assert all(data == (nse_root / name).read_bytes() for name, data in part.items())

    def test_another_seed_another_market(self, nse_root, tmp_path):
        """A different seed gives different files."""
        generate(LAST, LAST, tmp_path, seed=8, symbols=SIZE, holidays={HOLIDAY})
        assert (
            delivery_path(tmp_path, LAST).read_bytes() != delivery_path(nse_root, LAST).read_bytes()
        )


class TestFormats:
    def test_legacy_bytes(self, nse_root):
        """Header and rows end with a comma, LF lines, numbers without trailing zeros."""
        text = unzip(legacy_path(nse_root, DAYS[0]), legacy_member(DAYS[0]))
        lines = text.split("\n")
        assert "\r" not in text and lines[-1] == ""
        assert lines[0] == (
            "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
            "TOTALTRADES,ISIN,"
        )
        trimmed = re.compile(r"\d+(\.\d?[1-9])?")
        for line in lines[1:-1]:
            fields = line.split(",")
            assert len(fields) == 14 and fields[-1] == ""
            assert fields[10] == "01-JUL-2024"
            for number in fields[2:10]:
                assert trimmed.fullmatch(number), line
        assert any("." not in f for line in lines[1:-1] for f in line.split(",")[2:8])

    def test_udiff_bytes(self, nse_root):
        """34 columns; CM, NSE, STK, F1; ISO dates; two decimals; derivative columns empty."""
        day = dt.date(2024, 7, 8)
        text = unzip(udiff_path(nse_root, day), udiff_member(day))
        header, *lines = text.rstrip("\n").split("\n")
        assert header == UDIFF_HEADER
        two = re.compile(r"\d+\.\d\d")
        for r in csv.DictReader(io.StringIO(text)):
            assert len(r) == 34 and None not in r
            assert (r["TradDt"], r["BizDt"], r["Sgmt"], r["Src"]) == (
                "2024-07-08",
                "2024-07-08",
                "CM",
                "NSE",
            )
            assert (r["FinInstrmTp"], r["SsnId"]) == ("STK", "F1")
            for name in ("XpryDt", "FininstrmActlXpryDt", "StrkPric", "OptnTp", "UndrlygPric"):
                assert r[name] == ""
            assert r["OpnIntrst"] == r["ChngInOpnIntrst"] == r["Rmks"] == r["Rsvd4"] == ""
            for name in ("OpnPric", "HghPric", "LwPric", "ClsPric", "LastPric", "TtlTrfVal"):
                assert two.fullmatch(r[name]), (name, r[name])
            assert r["SttlmPric"] == r["ClsPric"]
            assert r["FinInstrmId"].isdigit() and r["FinInstrmNm"]
            assert int(r["NewBrdLotQty"]) >= 1
        assert all(line.endswith(",,,,,") for line in lines)

    def test_delivery_bytes(self, nse_root):
        """ ", " separators, DATE1 like 01-Jul-2024, prices and lakhs with two decimals."""
        header, *lines = delivery_path(nse_root, DAYS[0]).read_text().rstrip("\n").split("\n")
        assert header == (
            "SYMBOL, SERIES, DATE1, PREV_CLOSE, OPEN_PRICE, HIGH_PRICE, LOW_PRICE, LAST_PRICE, "
            "CLOSE_PRICE, AVG_PRICE, TTL_TRD_QNTY, TURNOVER_LACS, NO_OF_TRADES, DELIV_QTY, "
            "DELIV_PER"
        )
        two = re.compile(r"\d+\.\d\d")
        for line in lines:
            fields = line.split(", ")
            assert len(fields) == 15 and fields[2] == "01-Jul-2024"
            assert all(two.fullmatch(f) for f in [*fields[3:10], fields[11]]), line
            assert fields[10].isdigit() and fields[12].isdigit()


class TestMarket:
    def test_rows_a_day_at_the_default_size(self, full_day):
        """About 2,000 to 3,000 rows a day, mostly EQ, then SM and BE, then bonds and the rest."""
        rows = legacy_rows(full_day, dt.date(2024, 7, 5))
        assert 2000 <= len(rows) <= 3000
        series = [r["SERIES"] for r in rows]
        counts = {s: series.count(s) for s in set(series)}
        assert counts["EQ"] / len(rows) > 0.6
        assert counts["SM"] > counts["GB"] and counts["BE"] > counts["BZ"] > 0
        assert {"GS", "TB", "IV", "RR"} <= set(counts)
        assert len([s for s in counts if re.fullmatch(r"N[0-9A-Z]", s)]) >= 8

    def test_symbols_and_isins(self, full_day):
        """Symbols look like NSE's and are unique; every ISIN has a valid check digit."""
        assert all(isin_is_valid(isin) for isin in REAL_ISINS)
        assert not isin_is_valid("INE002A01019")
        rows = legacy_rows(full_day, dt.date(2024, 7, 5))
        symbols = [r["SYMBOL"] for r in rows]
        assert len(set(symbols)) == len(symbols)
        assert {"RELIANCE", "TCS", "INFY", "HDFCBANK", "M&M", "BAJAJ-AUTO"} <= set(symbols)
        assert all(re.fullmatch(r"[0-9A-Z][0-9A-Z&-]{0,9}", s) for s in symbols)
        assert any(s[0].isdigit() for s in symbols) and any("&" in s for s in symbols)
        isins = [r["ISIN"] for r in rows]
        assert len(set(isins)) == len(isins)
        assert [i for i in isins if not isin_is_valid(i)] == []
        assert {i[:3] for i in isins} >= {"INE", "INF", "IN0"}

    def test_prices_hang_together(self, nse_root):
        """Low <= open, close, last <= high; turnover lies between volume x low and x high."""
        for day in DAYS:
            for r in cm_rows(nse_root, day):
                o, h, lo, c, last = (price(r[k]) for k in ("OPEN", "HIGH", "LOW", "CLOSE", "LAST"))
                assert 0 < lo <= min(o, c, last) and max(o, c, last) <= h, r
                volume, trades = int(r["TOTTRDQTY"]), int(r["TOTALTRADES"])
                assert 1 <= trades <= volume
                assert volume * lo <= price(r["TOTTRDVAL"]) <= volume * h, r

    def test_prev_close_is_the_last_close(self, nse_root):
        """Prices walk: a security's previous close is the close last printed for it."""
        last_close: dict[tuple[str, str], Decimal] = {}
        checked = 0
        for day in DAYS:
            for r in cm_rows(nse_root, day):
                key = (r["SYMBOL"], r["SERIES"])
                prev, close = price(r["PREVCLOSE"]), price(r["CLOSE"])
                if key in last_close:
                    assert prev == last_close[key], (day, key)
                    checked += 1
                assert abs(math.log(close / prev)) <= 0.2
                last_close[key] = close
        assert checked > 5 * SIZE * 0.8


class TestDelivery:
    def test_agrees_with_the_bhavcopy(self, nse_root):
        """Same securities, prices, volume and trades; turnover in lakhs; VWAP from turnover."""
        for day in DAYS:
            cm = {(r["SYMBOL"], r["SERIES"]): r for r in cm_rows(nse_root, day)}
            delivery = delivery_rows(nse_root, day)
            assert [(r["SYMBOL"], r["SERIES"]) for r in delivery] == list(cm)
            for d in delivery:
                c = cm[d["SYMBOL"], d["SERIES"]]
                pairs = [
                    ("PREV_CLOSE", "PREVCLOSE"),
                    ("OPEN_PRICE", "OPEN"),
                    ("HIGH_PRICE", "HIGH"),
                    ("LOW_PRICE", "LOW"),
                    ("LAST_PRICE", "LAST"),
                    ("CLOSE_PRICE", "CLOSE"),
                ]
                assert all(price(d[a]) == price(c[b]) for a, b in pairs), (d, c)
                assert d["TTL_TRD_QNTY"] == c["TOTTRDQTY"]
                assert d["NO_OF_TRADES"] == c["TOTALTRADES"]
                turnover = price(c["TOTTRDVAL"])
                assert abs(price(d["TURNOVER_LACS"]) - turnover / 100_000) <= Decimal("0.005")
                vwap = turnover / int(c["TOTTRDQTY"])
                assert abs(price(d["AVG_PRICE"]) - vwap) <= Decimal("0.005")

    def test_no_delivery_figure_for_trade_for_trade_series(self, nse_root):
        """BE and BZ print " -" for delivery; other series a quantity within the volume."""
        text = delivery_path(nse_root, DAYS[0]).read_text()
        seen = set()
        for d in delivery_rows(nse_root, DAYS[0]):
            if d["SERIES"] in ("BE", "BZ"):
                assert d["DELIV_QTY"] == d["DELIV_PER"] == "-"
                seen.add(d["SERIES"])
            else:
                quantity, volume = int(d["DELIV_QTY"]), int(d["TTL_TRD_QNTY"])
                assert 0 <= quantity <= volume
                assert abs(price(d["DELIV_PER"]) - Decimal(100 * quantity) / volume) <= Decimal(
                    "0.005"
                )
        assert "BE" in seen
        assert ", -, -\n" in text


class TestTradingDays:
    def test_weekdays_without_holidays(self, nse_root):
        """Weekends and holidays are skipped; the report lists the days written."""
        assert trading_days(FIRST, LAST, {HOLIDAY}) == DAYS
        assert trading_days(dt.date(2024, 7, 6), dt.date(2024, 7, 7)) == []
        assert not delivery_path(nse_root, HOLIDAY).exists()
        assert not delivery_path(nse_root, dt.date(2024, 7, 6)).exists()

    def test_report_and_dataset_choice(self, tmp_path):
        """Counts per dataset, and only the datasets asked for."""
        report = generate(
            FIRST, dt.date(2024, 7, 2), tmp_path, symbols=60, datasets=["cm_delivery"]
        )
        assert report.trading_days == [FIRST, dt.date(2024, 7, 2)]
        assert report.files == {"cm_delivery": 2}
        assert report.rows["cm_delivery"] == sum(
            len(delivery_rows(tmp_path, d)) for d in report.trading_days
        )
        assert not (tmp_path / "content").exists()

    def test_refuses_what_it_cannot_write(self, tmp_path):
        """Unknown datasets and dates before the walk starts are errors, not empty output."""
        with pytest.raises(ValueError, match="unknown datasets"):
            generate(FIRST, FIRST, tmp_path, datasets=["fo_bhavcopy_x"])
        with pytest.raises(ValueError, match=str(EPOCH)):
            generate(dt.date(2010, 1, 4), dt.date(2010, 1, 4), tmp_path)
        with pytest.raises(ValueError, match="before it starts"):
            generate(LAST, FIRST, tmp_path)


class TestCommand:
    def test_prints_one_json_line(self, tmp_path):
        """`generate` writes the files and prints a one-line JSON summary."""
        args = ["--from", "2024-07-04", "--to", "2024-07-08", "--out", str(tmp_path)]
        args += ["--symbols", "50", "--dataset", "cm_bhavcopy", "--holiday", "2024-07-05"]
        result = CliRunner().invoke(generate_command, args)
        assert result.exit_code == 0, result.output
        (line,) = result.output.splitlines()
        summary = json.loads(line)
        assert summary["trading_days"] == 2
        assert summary["files"] == {"cm_bhavcopy": 3}
        assert legacy_path(tmp_path, dt.date(2024, 7, 4)).exists()

    def test_bad_range_is_a_usage_error(self, tmp_path):
        """A range the generator refuses exits with a message, not a traceback."""
        args = ["--from", "2024-07-08", "--to", "2024-07-01", "--out", str(tmp_path)]
        result = CliRunner().invoke(generate_command, args)
        assert result.exit_code == 2
        assert "before it starts" in result.output
