"""The F&O parser against the real NSE files in the samples folder (one per layout).

Expected counts and sums come from the file itself through Python's csv module, never through
the parser's own helpers, so a shared mistake cannot hide.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from decimal import Decimal

import pytest

from include.nse.errors import ParseError
from include.nse.sources import fo_bhavcopy
from tests.helpers import blank_field, check_blank_number, line_of, read_records

FOLDER = "fo_bhavcopy"
LEGACY = "fo13JUN2022bhav.csv.zip"
UDIFF = "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"

#: Per file: its trade date, and file column for each silver column checked against the file.
FILES = {
    LEGACY: {
        "date": dt.date(2022, 6, 13),
        "format": "legacy",
        "instrument": "INSTRUMENT",
        "futures": ("FUTIDX", "FUTSTK"),
        "contracts": "CONTRACTS",
        "open_interest": "OPEN_INT",
        "change_in_oi": "CHG_IN_OI",
        "close": "CLOSE",
        "open": "OPEN",
        "settle_price": "SETTLE_PR",
        "turnover": ("VAL_INLAKH", 100_000),
    },
    UDIFF: {
        "date": dt.date(2025, 2, 3),
        "format": "udiff",
        "instrument": "FinInstrmTp",
        "futures": ("IDF", "STF"),
        "contracts": "TtlTradgVol",
        "open_interest": "OpnIntrst",
        "change_in_oi": "ChngInOpnIntrst",
        "close": "ClsPric",
        "open": "OpnPric",
        "settle_price": "SttlmPric",
        "turnover": ("TtlTrfVal", 1),
    },
}

#: Rows read off the files by eye: key values -> silver values.
KNOWN = {
    LEGACY: [
        (
            {"instrument": "FUTIDX", "symbol": "BANKNIFTY", "expiry_date": dt.date(2022, 6, 30)},
            {
                "strike_price": None,
                "option_type": None,
                "close": 33431.4,
                "contracts": 145086,
                "turnover": 121274871000.0,
                "open_interest": 2836425,
                "change_in_oi": 212475,
            },
        ),
        (
            {
                "instrument": "OPTSTK",
                "symbol": "AARTIIND",
                "expiry_date": dt.date(2022, 6, 30),
                "strike_price": 640.0,
                "option_type": "CE",
            },
            {"open": 80.15, "settle_price": 68.65, "contracts": 2, "turnover": 1224000.0},
        ),
    ],
    UDIFF: [
        (
            {
                "instrument": "OPTSTK",
                "symbol": "ABCAPITAL",
                "expiry_date": dt.date(2025, 2, 27),
                "strike_price": 210.0,
                "option_type": "CE",
            },
            {
                "close": 0.25,
                "contracts": 210,
                "turnover": 119253735.0,
                "trades": 147,
                "open_interest": 577800,
                "lot_size": 2700,
                "underlying_price": 172.45,
            },
        ),
        (
            {"instrument": "FUTIDX", "symbol": "BANKNIFTY", "expiry_date": dt.date(2025, 2, 27)},
            {"strike_price": None, "option_type": None, "close": 49505.15, "contracts": 46971},
        ),
    ],
}


def load(samples_dir, name):
    raw = (samples_dir / FOLDER / name).read_bytes()
    return read_records(raw), fo_bhavcopy.parse(raw, name)


def is_zero(value: str) -> bool:
    return Decimal(value) == 0


@pytest.mark.parametrize("name", list(FILES))
class TestSamples:
    def test_rows_and_sums_match_the_file(self, samples_dir, name):
        """Row count, and totals of contracts, open interest, close and turnover, as in the file."""
        spec = FILES[name]
        records, frame = load(samples_dir, name)
        assert frame.height == len(records)
        for column in ("contracts", "open_interest", "change_in_oi"):
            assert frame[column].sum() == sum(int(r[spec[column]]) for r in records), column
        expected_close = float(sum(Decimal(r[spec["close"]]) for r in records))
        assert frame["close"].sum() == pytest.approx(expected_close, rel=1e-12)
        file_column, factor = spec["turnover"]
        expected_turnover = float(sum(Decimal(r[file_column]) for r in records) * factor)
        assert frame["turnover"].sum() == pytest.approx(expected_turnover, rel=1e-12)
        assert frame["source_format"].unique().to_list() == [spec["format"]]

    def test_nothing_stands_for_a_value(self, samples_dir, name):
        """Futures have no strike or option type; each 0 price NSE prints is a null."""
        spec = FILES[name]
        records, frame = load(samples_dir, name)
        futures = sum(r[spec["instrument"]] in spec["futures"] for r in records)
        assert 0 < futures < len(records)
        assert frame["strike_price"].null_count() == futures
        assert frame["option_type"].null_count() == futures
        assert set(frame["option_type"].drop_nulls()) == {"CE", "PE"}
        for column in ("open", "settle_price"):
            zeros = sum(is_zero(r[spec[column]]) for r in records)
            assert frame[column].null_count() == zeros, column
        expected_open = float(sum(Decimal(r[spec["open"]]) for r in records))
        assert frame["open"].sum() == pytest.approx(expected_open, rel=1e-12)

    def test_known_rows(self, samples_dir, name):
        """Rows read off the file by eye come out with the same values."""
        _, frame = load(samples_dir, name)
        for key, expected in KNOWN[name]:
            (row,) = frame.filter(**key).iter_rows(named=True)
            assert {column: row[column] for column in expected} == expected

    def test_key_unique_and_date_from_name(self, samples_dir, name):
        """One row per contract, all on the trade date the file's name carries."""
        _, frame = load(samples_dir, name)
        assert not frame.select(fo_bhavcopy.DATASET.key).is_duplicated().any()
        assert frame["trade_date"].unique().to_list() == [FILES[name]["date"]]

    def test_zip_parses_as_its_extracted_csv(self, samples_dir, name):
        """Zipped and extracted bytes give the same silver frame."""
        raw = (samples_dir / FOLDER / name).read_bytes()
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            (member,) = archive.namelist()
            plain = archive.read(member)
        assert fo_bhavcopy.parse(plain, member).equals(fo_bhavcopy.parse(raw, name))


def test_udiff_volume_counts_contracts(samples_dir):
    """TtlTradgVol is contracts, not units: value / (volume x lot) is a traded price.

    For options NSE's value is notional, so the price is strike + premium. Two rows of the file
    break the rule (a stock future traded outside its own high and low), hence "nearly all".
    """
    records, _ = load(samples_dir, UDIFF)
    traded = [r for r in records if int(r["TtlTradgVol"])]
    inside = 0
    for r in traded:
        per_unit = Decimal(r["TtlTrfVal"]) / (int(r["TtlTradgVol"]) * int(r["NewBrdLotQty"]))
        price = per_unit - Decimal(r["StrkPric"] or 0)
        inside += (
            Decimal(r["LwPric"]) - Decimal("0.01")
            <= price
            <= Decimal(r["HghPric"]) + Decimal("0.01")
        )
    assert inside >= len(traded) - 2


def test_legacy_volume_counts_contracts(samples_dir):
    """CONTRACTS is contracts as well: value / (contracts x price) is a lot size (> 1) that
    divides the open interest, which is counted in units.

    VAL_INLAKH is cut, not rounded, to hundredths of a lakh (CHAMBLFERT: 1 lot of 1,500 at
    321.70 is Rs 4,82,550 and prints 4.82), so the value is somewhere in [printed, +Rs 1,000).
    A few rows miss (lot sizes changed while old positions stayed open), hence "nearly all".
    """
    records, _ = load(samples_dir, LEGACY)
    traded = [r for r in records if int(r["CONTRACTS"])]
    fits = 0
    for r in traded:
        value, contracts = Decimal(r["VAL_INLAKH"]) * 100_000, int(r["CONTRACTS"])
        strike = Decimal(r["STRIKE_PR"])
        smallest = value / (contracts * (strike + Decimal(r["HIGH"])))
        largest = (value + 1000) / (contracts * (strike + Decimal(r["LOW"])))
        lots = range(max(2, int(smallest)), int(largest) + 1)
        fits += any(smallest <= lot and int(r["OPEN_INT"]) % lot == 0 for lot in lots)
    assert fits >= 0.995 * len(traded)


def test_cm_bhavcopy_is_not_taken_for_fo(samples_dir):
    """The real CM legacy zip is refused at its header, which names no INSTRUMENT."""
    path = samples_dir / "cm_bhavcopy_legacy" / "cm05JUL2024bhav.csv.zip"
    with pytest.raises(ParseError, match=r"line 1: expected a legacy \(INSTRUMENT"):
        fo_bhavcopy.parse(path.read_bytes(), path.name)


# ---- a blank number in a real file: null in silver, judged by the gate ------------------------
NOT_NULL = "expect_column_values_to_not_be_null"
#: Per file: the BANKNIFTY future's row, and (file column, silver column, the gate's verdict on
#: a blank). A blank close stops the load; open interest, contracts and turnover may be blank
#: (a warning); open and settlement price are null wherever NSE prints 0, and trades, the
#: underlying's price and the lot size are absent from legacy files, so none has a not-null check.
BLANKS = {
    LEGACY: (
        {"INSTRUMENT": "FUTIDX", "SYMBOL": "BANKNIFTY", "EXPIRY_DT": "30-Jun-2022"},
        [
            ("CLOSE", "close", "critical"),
            ("OPEN_INT", "open_interest", "warning"),
            ("CHG_IN_OI", "change_in_oi", "warning"),
            ("CONTRACTS", "contracts", "warning"),
            ("VAL_INLAKH", "turnover", "warning"),
            ("OPEN", "open", None),
            ("SETTLE_PR", "settle_price", None),
        ],
    ),
    UDIFF: (
        {"FinInstrmTp": "IDF", "TckrSymb": "BANKNIFTY", "XpryDt": "2025-02-27"},
        [
            ("ClsPric", "close", "critical"),
            ("OpnIntrst", "open_interest", "warning"),
            ("ChngInOpnIntrst", "change_in_oi", "warning"),
            ("TtlTradgVol", "contracts", "warning"),
            ("TtlTrfVal", "turnover", "warning"),
            ("HghPric", "high", None),
            ("TtlNbOfTxsExctd", "trades", None),
            ("UndrlygPric", "underlying_price", None),
            ("NewBrdLotQty", "lot_size", None),
        ],
    ),
}


@pytest.fixture(scope="module")
def unmodified(samples_dir):
    """name -> (raw bytes, the BANKNIFTY future's line, the parsed frame), read once each."""
    found = {}

    def get(name: str) -> tuple[bytes, int, object]:
        if name not in found:
            raw = (samples_dir / FOLDER / name).read_bytes()
            found[name] = raw, line_of(raw, **BLANKS[name][0]), fo_bhavcopy.parse(raw, name)
        return found[name]

    return get


@pytest.mark.parametrize(
    ("name", "file_column", "column", "severity"),
    [(name, *blank) for name, (_, blanks) in BLANKS.items() for blank in blanks],
)
def test_blank_number_is_null_and_judged_by_the_gate(
    unmodified, name, file_column, column, severity
):
    """A blank number of a real F&O bhavcopy (either era) is null, the rest unchanged; a blank
    close stops the load, a blank open interest, volume or turnover is a warning."""
    raw, line, original = unmodified(name)
    frame = fo_bhavcopy.parse(blank_field(raw, line, file_column), name)
    before, after, new = check_blank_number(fo_bhavcopy.DATASET, original, frame, line - 2, column)
    assert before.passed
    assert new == ({(severity, NOT_NULL, column)} if severity else set())
    assert after.passed is (severity != "critical")


@pytest.mark.parametrize(("name", "file_column"), [(LEGACY, "SYMBOL"), (UDIFF, "XpryDt")])
def test_blank_key_in_a_real_file_is_refused(unmodified, name, file_column):
    """A blank key column (the symbol, the expiry) is refused, naming the line and column."""
    raw, line, _ = unmodified(name)
    with pytest.raises(ParseError) as caught:
        fo_bhavcopy.parse(blank_field(raw, line, file_column), name)
    assert (caught.value.line, caught.value.column) == (line, file_column)
