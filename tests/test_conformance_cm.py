"""The CM parsers against every real NSE file in the samples folder.

Expected counts and sums come from the file itself through Python's csv module, never through
the parser's own helpers, so a shared mistake cannot hide.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from decimal import Decimal

import pytest

from include.nse.errors import ParseError
from include.nse.sources import cm_bhavcopy, cm_delivery
from tests.helpers import blank_field, check_blank_number, line_of, read_records, sample_names

FOLDER = "cm_bhavcopy_legacy"


def date_in_name(name: str) -> dt.date:
    if match := re.fullmatch(r"cm(\d{2}[A-Z]{3}\d{4})bhav\.csv(\.zip)?", name):
        return dt.datetime.strptime(match[1].title(), "%d%b%Y").date()
    match = re.fullmatch(r"sec_bhavdata_full_(\d{8})\.csv", name)
    return dt.datetime.strptime(match[1], "%d%m%Y").date()


#: One row per file, read off the file by eye: symbol, series -> silver values.
BHAVCOPY_KNOWN = {
    "cm01JAN2016bhav.csv.zip": (
        "RELIANCE",
        {"open": 1009.8, "close": 1015.35, "volume": 1238135, "turnover": 1257352825.3},
    ),
    "cm29FEB2016bhav.csv": (
        "RELIANCE",
        {"open": 951.3, "close": 966.65, "volume": 7093474, "turnover": 6816551287.2},
    ),
    "cm24MAY2022bhav.csv.zip": (
        "RELIANCE",
        {"open": 2607.0, "close": 2615.85, "volume": 6243086, "turnover": 16353268081.5},
    ),
    "cm05JUL2024bhav.csv.zip": (
        "RELIANCE",
        {"open": 3107.65, "close": 3177.25, "volume": 6134855, "turnover": 19323716027.9},
    ),
}
DELIVERY_KNOWN = {
    "sec_bhavdata_full_01012018.csv": [
        (
            "RELIANCE",
            "EQ",
            {"close": 909.75, "volume": 4321686, "turnover": 3947569000.0, "delivery_qty": 2615951},
        ),
        (
            "ABGSHIP",
            "BZ",
            {"close": 13.7, "trades": 99, "delivery_qty": None, "delivery_pct": None},
        ),
    ],
}


@pytest.mark.parametrize("name", sample_names(FOLDER, "cm*bhav.csv*"))
class TestBhavcopySamples:
    def test_rows_and_sums_match_the_file(self, samples_dir, name):
        """Row count and volume, turnover and trades totals equal the file's own."""
        raw = (samples_dir / FOLDER / name).read_bytes()
        records = read_records(raw)
        frame = cm_bhavcopy.parse(raw, name)
        assert frame.height == len(records)
        assert frame["volume"].sum() == sum(int(r["TOTTRDQTY"]) for r in records)
        assert frame["trades"].sum() == sum(int(r["TOTALTRADES"]) for r in records)
        expected_turnover = float(sum(Decimal(r["TOTTRDVAL"]) for r in records))
        assert frame["turnover"].sum() == pytest.approx(expected_turnover, rel=1e-12)
        assert frame["isin"].null_count() == 0
        assert frame["source_format"].unique().to_list() == ["legacy"]

    def test_known_row(self, samples_dir, name):
        """One row read off the file by eye comes out with the same values."""
        symbol, expected = BHAVCOPY_KNOWN[name]
        frame = cm_bhavcopy.parse((samples_dir / FOLDER / name).read_bytes(), name)
        (row,) = frame.filter(symbol=symbol, series="EQ").iter_rows(named=True)
        assert {column: row[column] for column in expected} == expected

    def test_key_unique_and_date_from_name(self, samples_dir, name):
        """One row per key, all on the trade date the file's name carries."""
        frame = cm_bhavcopy.parse((samples_dir / FOLDER / name).read_bytes(), name)
        assert not frame.select(cm_bhavcopy.DATASET.key).is_duplicated().any()
        assert frame["trade_date"].unique().to_list() == [date_in_name(name)]


@pytest.mark.parametrize("name", sample_names(FOLDER, "cm*bhav.csv.zip"))
def test_zip_parses_as_its_extracted_csv(samples_dir, name):
    """Zipped and extracted bytes give the same silver frame."""
    raw = (samples_dir / FOLDER / name).read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        (member,) = archive.namelist()
        plain = archive.read(member)
    assert cm_bhavcopy.parse(plain, member).equals(cm_bhavcopy.parse(raw, name))


@pytest.mark.parametrize("name", sample_names(FOLDER, "sec_bhavdata_full_*.csv"))
class TestDeliverySamples:
    def test_rows_and_sums_match_the_file(self, samples_dir, name):
        """Row count, totals, and one null delivery for each " -" in the file."""
        raw = (samples_dir / FOLDER / name).read_bytes()
        records = read_records(raw)
        frame = cm_delivery.parse(raw, name)
        assert frame.height == len(records)
        assert frame["volume"].sum() == sum(int(r["TTL_TRD_QNTY"]) for r in records)
        assert frame["trades"].sum() == sum(int(r["NO_OF_TRADES"]) for r in records)
        lakhs = sum(Decimal(r["TURNOVER_LACS"]) for r in records)
        assert frame["turnover"].sum() == pytest.approx(float(lakhs * 100_000), rel=1e-12)
        delivered = [r["DELIV_QTY"] for r in records if r["DELIV_QTY"] != "-"]
        assert frame["delivery_qty"].sum() == sum(int(q) for q in delivered)
        assert frame["delivery_qty"].null_count() == len(records) - len(delivered)
        assert frame["delivery_pct"].null_count() == len(records) - len(delivered)

    def test_known_rows(self, samples_dir, name):
        """Rows read off the file by eye, one with delivery and one without."""
        frame = cm_delivery.parse((samples_dir / FOLDER / name).read_bytes(), name)
        for symbol, series, expected in DELIVERY_KNOWN[name]:
            (row,) = frame.filter(symbol=symbol, series=series).iter_rows(named=True)
            assert {column: row[column] for column in expected} == expected

    def test_key_unique_and_date_from_name(self, samples_dir, name):
        """One row per key, all on the trade date the file's name carries."""
        frame = cm_delivery.parse((samples_dir / FOLDER / name).read_bytes(), name)
        assert not frame.select(cm_delivery.DATASET.key).is_duplicated().any()
        assert frame["trade_date"].unique().to_list() == [date_in_name(name)]


def test_fo_udiff_is_not_taken_for_cm(samples_dir):
    """The real F&O UDiFF zip has the CM header; the parser refuses it by its segment."""
    path = samples_dir / "fo_bhavcopy" / "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"
    with pytest.raises(ParseError, match=r"line 2, column 'Sgmt': expected 'CM', found 'FO'"):
        cm_bhavcopy.parse(path.read_bytes(), path.name)


# ---- a blank number in a real file: null in silver, judged by the gate ------------------------
NOT_NULL = "expect_column_values_to_not_be_null"
#: (file column, silver column, the gate's verdict on a blank): a blank close stops the load;
#: the other numbers of a series that did not trade may be blank, a warning. Trades has no
#: not-null check at all: files before about 2011 have no such column.
BHAVCOPY_BLANKS = [
    ("CLOSE", "close", "critical"),
    ("OPEN", "open", "warning"),
    ("HIGH", "high", "warning"),
    ("LOW", "low", "warning"),
    ("LAST", "last_price", "warning"),
    ("PREVCLOSE", "prev_close", "warning"),
    ("TOTTRDQTY", "volume", "warning"),
    ("TOTTRDVAL", "turnover", "warning"),
    ("TOTALTRADES", "trades", None),
]
DELIVERY_BLANKS = [
    ("CLOSE_PRICE", "close", "critical"),
    ("OPEN_PRICE", "open", "warning"),
    ("PREV_CLOSE", "prev_close", "warning"),
    ("AVG_PRICE", "avg_price", "warning"),
    ("TTL_TRD_QNTY", "volume", "warning"),
    ("TURNOVER_LACS", "turnover", "warning"),
    ("NO_OF_TRADES", "trades", "warning"),
    # " -" already stands for "no delivery figure": a blank is the same null, and no check.
    ("DELIV_QTY", "delivery_qty", None),
]


def _check_blank(samples_dir, dataset, name, file_column, column, severity):
    """RELIANCE's `file_column` blanked in the real bytes: the row stays with a null, the rest
    is unchanged, and the gate gives the verdict `severity` says (None: nothing notices)."""
    raw = (samples_dir / FOLDER / name).read_bytes()
    line = line_of(raw, SYMBOL="RELIANCE", SERIES="EQ")
    frame = dataset.parse(blank_field(raw, line, file_column), name)
    original = dataset.parse(raw, name)
    before, after, new = check_blank_number(dataset, original, frame, line - 2, column)
    assert before.failed == []
    assert new == ({(severity, NOT_NULL, column)} if severity else set())
    assert after.passed is (severity != "critical")


@pytest.mark.parametrize(("file_column", "column", "severity"), BHAVCOPY_BLANKS)
@pytest.mark.parametrize("name", ["cm24MAY2022bhav.csv.zip", "cm29FEB2016bhav.csv"])
def test_blank_number_in_a_bhavcopy(samples_dir, name, file_column, column, severity):
    """A blank number of a real legacy bhavcopy (zipped or plain) is null, not an error; a
    blank close stops the load, other blanks are warnings."""
    _check_blank(samples_dir, cm_bhavcopy.DATASET, name, file_column, column, severity)


@pytest.mark.parametrize(("file_column", "column", "severity"), DELIVERY_BLANKS)
def test_blank_number_in_the_delivery_file(samples_dir, file_column, column, severity):
    """A blank number of the real full bhavcopy is null; a blank close stops the load."""
    name = "sec_bhavdata_full_01012018.csv"
    _check_blank(samples_dir, cm_delivery.DATASET, name, file_column, column, severity)


@pytest.mark.parametrize(("file_column", "column"), [("SYMBOL", "SYMBOL"), ("SERIES", "SERIES")])
def test_blank_key_in_a_real_file_is_refused(samples_dir, file_column, column):
    """A blank key column is refused by the parser, naming the line and the column."""
    name = "cm24MAY2022bhav.csv.zip"
    raw = (samples_dir / FOLDER / name).read_bytes()
    line = line_of(raw, SYMBOL="RELIANCE", SERIES="EQ")
    with pytest.raises(ParseError) as caught:
        cm_bhavcopy.parse(blank_field(raw, line, file_column), name)
    assert (caught.value.line, caught.value.column) == (line, column)
