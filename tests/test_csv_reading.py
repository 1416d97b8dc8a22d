"""The fast way of reading NSE's CSVs gives exactly what the slow, checked way gives."""

from __future__ import annotations

import polars as pl
import pytest

from include.nse.errors import ParseError
from include.nse.sources import _csv, cm_bhavcopy, fo_bhavcopy
from tests.helpers import csv_file, unzipped, zipped

REAL_FILES = [
    (cm_bhavcopy, "cm_bhavcopy_legacy/cm05JUL2024bhav.csv.zip"),
    (cm_bhavcopy, "cm_bhavcopy_legacy/cm01JAN2016bhav.csv.zip"),
    (cm_bhavcopy, "cm_bhavcopy_legacy/cm29FEB2016bhav.csv"),
    (fo_bhavcopy, "fo_bhavcopy/fo13JUN2022bhav.csv.zip"),
    (fo_bhavcopy, "fo_bhavcopy/BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"),
]


def _source(module, opened: _csv.CsvFile) -> dict[str, str]:
    if "TckrSymb" in opened.names:
        return module._UDIFF
    later = getattr(module, "_LEGACY_LATER", {})
    return module._LEGACY | {k: v for k, v in later.items() if v in opened.names}


def _both_ways(module, raw: bytes, name: str) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    opened = _csv.open_csv(raw, name)
    source = _source(module, opened)
    silver = {column.name: column for column in module.COLUMNS}
    fast = _csv._read_typed(opened, silver, source, [])
    slow = _csv.to_silver(_csv.read_csv(opened), name, module.COLUMNS, source)
    return fast, slow


@pytest.mark.parametrize(("module", "path"), REAL_FILES, ids=lambda v: getattr(v, "__name__", v))
def test_real_files_take_the_fast_way_and_read_the_same(samples_dir, module, path):
    """Every real bhavcopy is read the fast way, value for value as the slow way reads it."""
    file = samples_dir / path
    fast, slow = _both_ways(module, file.read_bytes(), file.name)
    assert fast is not None, "the fast way gave up on a real NSE file"
    assert fast.equals(slow)
    assert fast.height > 1000


def _legacy_fo(rows: list[str]) -> bytes:
    header = (
        "INSTRUMENT,SYMBOL,EXPIRY_DT,STRIKE_PR,OPTION_TYP,OPEN,HIGH,LOW,CLOSE,SETTLE_PR,"
        "CONTRACTS,VAL_INLAKH,OPEN_INT,CHG_IN_OI,TIMESTAMP,"
    )
    return zipped({"fo05JUL2024bhav.csv": csv_file(header, *rows)})


GOOD = (
    "FUTIDX,NIFTY,25-Jul-2024,0,XX,24300,24400,24250,24350,24350.5,1000,24350.5,1000000,5000,"
    "05-JUL-2024,"
)


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(GOOD.replace(",1000,", ",-,"), id="dash-for-nothing"),
        pytest.param(GOOD.replace(",24300,", ", 24300 ,"), id="padded-number"),
        pytest.param(GOOD.replace(",1000000,", ',"1,000,000",'), id="quoted-grouping"),
        pytest.param(GOOD.replace(",24400,", ",NaN,"), id="nan"),
        pytest.param(GOOD.replace(",NIFTY,", ",,"), id="blank-required"),
        pytest.param(GOOD.replace("25-Jul-2024", "31-Feb-2024"), id="impossible-date"),
    ],
)
def test_what_the_fast_way_cannot_take_reads_the_slow_way(row):
    """A file the fast reader does not take as is falls back, and the result (or the error,
    naming the line and column) is the slow way's."""
    raw = _legacy_fo([GOOD, row])
    opened = _csv.open_csv(raw, "fo05JUL2024bhav.csv.zip")
    silver = {column.name: column for column in fo_bhavcopy.COLUMNS}
    assert _csv._read_typed(opened, silver, fo_bhavcopy._LEGACY, []) is None
    try:
        slow = _csv.to_silver(
            _csv.read_csv(opened), opened.file_name, fo_bhavcopy.COLUMNS, fo_bhavcopy._LEGACY
        )
    except ParseError as expected:
        with pytest.raises(ParseError) as raised:
            _csv.read_columns(opened, fo_bhavcopy.COLUMNS, fo_bhavcopy._LEGACY)
        assert str(raised.value) == str(expected)
        assert expected.line == 3
    else:
        got = _csv.read_columns(opened, fo_bhavcopy.COLUMNS, fo_bhavcopy._LEGACY)
        assert got.equals(slow)


def test_a_blank_line_reads_the_slow_way_and_is_dropped():
    """Blank lines make the fast reader give up; the slow way drops them and keeps lines."""
    raw = _legacy_fo([GOOD, "", GOOD.replace("NIFTY", "BANKNIFTY")])
    opened = _csv.open_csv(raw, "fo05JUL2024bhav.csv.zip")
    got = _csv.read_columns(opened, fo_bhavcopy.COLUMNS, fo_bhavcopy._LEGACY)
    assert got[_csv.LINE].to_list() == [2, 4]
    assert got["symbol"].to_list() == ["NIFTY", "BANKNIFTY"]


def test_a_required_value_is_checked_before_any_number(samples_dir):
    """The segment a UDiFF file must hold is checked first, the fast way and the slow way
    alike: a CM file given to the F&O parser names the segment, not a parse failure."""
    path = samples_dir / "fo_bhavcopy" / "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"
    text = unzipped(path.read_bytes())[1].decode()
    as_cm = text.replace(",FO,", ",CM,", 1)
    with pytest.raises(ParseError, match=r"line 2, column 'Sgmt': expected 'FO', found 'CM'"):
        fo_bhavcopy.parse(as_cm.encode(), "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv")
    quoted = as_cm.replace("NIFTY", '"NIFTY"', 1)  # the slow way, for the quotes
    with pytest.raises(ParseError, match=r"line 2, column 'Sgmt': expected 'FO', found 'CM'"):
        fo_bhavcopy.parse(quoted.encode(), "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv")
