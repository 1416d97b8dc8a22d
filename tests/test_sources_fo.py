"""F&O bhavcopy parser, its generator and its DDL, on files in NSE's bytes."""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile

import polars as pl
import pytest

from include.nse import sources
from include.nse.errors import ParseError
from include.nse.sources import _csv, cm_bhavcopy, fo_bhavcopy
from include.nse_standin.generate import generate
from tests.helpers import ChdbClient, csv_file, replace_field, zipped

LEGACY_HEADER = (
    "INSTRUMENT,SYMBOL,EXPIRY_DT,STRIKE_PR,OPTION_TYP,OPEN,HIGH,LOW,CLOSE,SETTLE_PR,CONTRACTS,"
    "VAL_INLAKH,OPEN_INT,CHG_IN_OI,TIMESTAMP,"
)
LEGACY_ROWS = (
    "FUTIDX,BANKNIFTY,30-Jun-2022,0,XX,33850,33888.65,33234,33431.4,33431.4,145086,1212748.71,"
    "2836425,212475,13-JUN-2022,",
    "OPTIDX,FINNIFTY,14-Jun-2022,17100,CE,0,0,0,1203.05,0,0,0,0,0,13-JUN-2022,",
    "OPTSTK,AARTIIND,30-Jun-2022,640,CE,80.15,80.15,80.15,80.15,68.65,2,12.24,1700,1700,"
    "13-JUN-2022,",
    "OPTSTK,ABCAPITAL,30-Jun-2022,72.5,PE,0.05,0.1,0.05,0.1,0.1,3,17.38,8400,-5600,13-JUN-2022,",
)
UDIFF_HEADER = (
    "TradDt,BizDt,Sgmt,Src,FinInstrmTp,FinInstrmId,ISIN,TckrSymb,SctySrs,XpryDt,"
    "FininstrmActlXpryDt,StrkPric,OptnTp,FinInstrmNm,OpnPric,HghPric,LwPric,ClsPric,LastPric,"
    "PrvsClsgPric,UndrlygPric,SttlmPric,OpnIntrst,ChngInOpnIntrst,TtlTradgVol,TtlTrfVal,"
    "TtlNbOfTxsExctd,SsnId,NewBrdLotQty,Rmks,Rsvd1,Rsvd2,Rsvd3,Rsvd4"
)
UDIFF_ROWS = (
    "2025-02-03,2025-02-03,FO,NSE,STO,58736,,ABCAPITAL,,2025-02-27,2025-02-27,210.00,CE,"
    "ABCAPITAL25FEB210CE,0.45,0.45,0.20,0.25,0.20,0.45,172.45,0.25,577800,102600,210,"
    "119253735.00,147,F1,2700,,,,,",
    "2025-02-03,2025-02-03,FO,NSE,IDF,35117,,BANKNIFTY,,2025-02-27,2025-02-27,,,BANKNIFTY25FEBFUT,"
    "49294.70,49645.00,49200.00,49505.15,49505.05,49768.60,49210.55,49505.15,3088260,-65430,46971,"
    "69651132892.50,28796,F1,30,,,,,",
    "2025-02-03,2025-02-03,FO,NSE,IDO,53972,,BANKNIFTY,,2025-02-27,2025-02-27,53100.00,PE,"
    "BANKNIFTY25FEB53100PE,0.00,0.00,0.00,3319.80,3319.80,3319.80,49210.55,3698.65,3660,0,0,0.00,0,"
    "F1,30,,,,,",
)
LEGACY_NAME = "fo13JUN2022bhav.csv.zip"
UDIFF_NAME = "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"


def parse(header: str, *rows: str, name: str = "f.csv") -> pl.DataFrame:
    return fo_bhavcopy.parse(csv_file(header, *rows), name)


class TestLegacy:
    def test_future_values_and_types(self):
        """A zipped legacy file gives typed rows; a future has no strike and no option type."""
        raw = zipped({"fo13JUN2022bhav.csv": csv_file(LEGACY_HEADER, *LEGACY_ROWS)})
        frame = fo_bhavcopy.parse(raw, LEGACY_NAME)
        assert frame.schema == fo_bhavcopy.DATASET.schema
        assert frame.row(0, named=True) == {
            "trade_date": dt.date(2022, 6, 13),
            "instrument": "FUTIDX",
            "symbol": "BANKNIFTY",
            "expiry_date": dt.date(2022, 6, 30),
            "strike_price": None,
            "option_type": None,
            "open": 33850.0,
            "high": 33888.65,
            "low": 33234.0,
            "close": 33431.4,
            "settle_price": 33431.4,
            "open_interest": 2836425,
            "change_in_oi": 212475,
            "contracts": 145086,
            "turnover": 121274871000.0,
            "trades": None,
            "underlying_price": None,
            "lot_size": None,
            "source_format": "legacy",
        }

    def test_options_and_what_zero_means(self):
        """Strikes keep their decimals; 0 for open/high/low/settle of an untraded option is null."""
        frame = parse(LEGACY_HEADER, *LEGACY_ROWS)
        untraded, traded, half_strike = frame.rows(named=True)[1:]
        assert (untraded["strike_price"], untraded["option_type"]) == (17100.0, "CE")
        assert [untraded[c] for c in ("open", "high", "low", "settle_price")] == [None] * 4
        assert (untraded["close"], untraded["contracts"], untraded["turnover"]) == (1203.05, 0, 0)
        assert traded["turnover"] == 1224000.0
        assert (half_strike["strike_price"], half_strike["change_in_oi"]) == (72.5, -5600)

    def test_crlf_and_plain_csv(self):
        """The extracted CSV, with either line ending, parses the same as the ZIP."""
        plain = parse(LEGACY_HEADER, *LEGACY_ROWS)
        crlf = fo_bhavcopy.parse(csv_file(LEGACY_HEADER, *LEGACY_ROWS, newline="\r\n"), "f.csv")
        assert crlf.equals(plain)


class TestUdiff:
    def test_values_and_types(self):
        """UDiFF maps to the same silver columns, plus trades, underlying price and lot size."""
        frame = fo_bhavcopy.parse(zipped({"x.csv": csv_file(UDIFF_HEADER, *UDIFF_ROWS)}), "f.zip")
        assert frame.schema == fo_bhavcopy.DATASET.schema
        assert frame.row(0, named=True) == {
            "trade_date": dt.date(2025, 2, 3),
            "instrument": "OPTSTK",
            "symbol": "ABCAPITAL",
            "expiry_date": dt.date(2025, 2, 27),
            "strike_price": 210.0,
            "option_type": "CE",
            "open": 0.45,
            "high": 0.45,
            "low": 0.2,
            "close": 0.25,
            "settle_price": 0.25,
            "open_interest": 577800,
            "change_in_oi": 102600,
            "contracts": 210,
            "turnover": 119253735.0,
            "trades": 147,
            "underlying_price": 172.45,
            "lot_size": 2700,
            "source_format": "udiff",
        }

    def test_instrument_codes_and_blank_terms_on_futures(self):
        """IDF/IDO become FUTIDX/OPTIDX; a future's blank strike and type are null."""
        frame = parse(UDIFF_HEADER, *UDIFF_ROWS)
        assert frame["instrument"].to_list() == ["OPTSTK", "FUTIDX", "OPTIDX"]
        assert frame["strike_price"].to_list() == [210.0, None, 53100.0]
        assert frame["option_type"].to_list() == ["CE", None, "PE"]
        assert frame.row(2, named=True)["open"] is None
        assert frame["change_in_oi"][1] == -65430

    def test_layout_is_chosen_by_content_not_name(self):
        """A UDiFF file under a legacy name is read as UDiFF, and the other way round."""
        udiff = parse(UDIFF_HEADER, *UDIFF_ROWS, name=LEGACY_NAME)
        legacy = parse(LEGACY_HEADER, *LEGACY_ROWS, name=UDIFF_NAME)
        assert udiff["source_format"].unique().to_list() == ["udiff"]
        assert legacy["source_format"].unique().to_list() == ["legacy"]

    def test_cm_segment_is_refused(self):
        """The CM UDiFF file shares the header; its segment gives it away."""
        row = replace_field(UDIFF_ROWS[1], 2, "CM")
        with pytest.raises(ParseError, match=r"f\.csv, line 3, column 'Sgmt': expected 'FO'"):
            parse(UDIFF_HEADER, UDIFF_ROWS[0], row)


class TestBadInput:
    def test_cm_legacy_header_is_refused(self):
        """A CM bhavcopy given as F&O is refused at line 1, showing its header."""
        with pytest.raises(ParseError, match=r"f\.csv, line 1: .*found SYMBOL,SERIES,OPEN"):
            parse("SYMBOL,SERIES,OPEN,TIMESTAMP", "INFY,EQ,1,05-JUL-2024")

    @pytest.mark.parametrize(
        ("header", "row", "position", "value", "message"),
        [
            (UDIFF_HEADER, UDIFF_ROWS[0], 4, "IVF", "'FinInstrmTp': expected one of IDF, STF"),
            (LEGACY_HEADER, LEGACY_ROWS[2], 0, "FUTIVX", "'INSTRUMENT': expected one of FUTIDX"),
            (LEGACY_HEADER, LEGACY_ROWS[0], 4, "CE", "'OPTION_TYP': expected 'XX' on a future"),
            (LEGACY_HEADER, LEGACY_ROWS[0], 3, "100", "'STRIKE_PR': expected 0.0 on a future"),
            (
                LEGACY_HEADER,
                LEGACY_ROWS[2],
                4,
                "XX",
                "'OPTION_TYP': expected CE or PE on an option",
            ),
            (UDIFF_HEADER, UDIFF_ROWS[1], 12, "CE", "'OptnTp': expected nothing on a future"),
            (UDIFF_HEADER, UDIFF_ROWS[0], 11, "", "'StrkPric': expected a strike on an option"),
            (UDIFF_HEADER, UDIFF_ROWS[0], 12, "", "'OptnTp': expected CE or PE on an option"),
            (LEGACY_HEADER, LEGACY_ROWS[2], 10, "2.5", "'CONTRACTS': expected a whole number"),
            (UDIFF_HEADER, UDIFF_ROWS[0], 17, "N.A.", "'ClsPric': expected a number"),
        ],
    )
    def test_bad_value_names_file_line_and_column(self, header, row, position, value, message):
        """Each way a contract's row can be wrong is reported at its line and column."""
        first = LEGACY_ROWS[1] if header == LEGACY_HEADER else UDIFF_ROWS[2]
        bad = replace_field(row, position, value)
        with pytest.raises(ParseError, match=rf"^f\.csv, line 3, column {message}"):
            parse(header, first, bad)

    def test_repeated_contract_is_refused(self):
        """Two rows for one contract would double-count; the error names both lines."""
        with pytest.raises(ParseError, match=r"line 4: .*found the key of line 2 again"):
            parse(LEGACY_HEADER, LEGACY_ROWS[0], LEGACY_ROWS[1], LEGACY_ROWS[0])

    def test_mixed_trade_dates(self):
        """A file carrying two trade dates is refused at the first row that differs."""
        bad = replace_field(LEGACY_ROWS[2], 14, "14-JUN-2022")
        with pytest.raises(ParseError, match=r"line 3, column 'TIMESTAMP': .*one date"):
            parse(LEGACY_HEADER, LEGACY_ROWS[0], bad)

    def test_header_only_and_html(self):
        """No rows, or NSE's HTML 'not found' page, is refused with the file's name."""
        with pytest.raises(ParseError, match="only the header"):
            parse(UDIFF_HEADER)
        with pytest.raises(ParseError, match=rf"^{LEGACY_NAME}: expected CSV, found an HTML"):
            fo_bhavcopy.parse(b"<!DOCTYPE html><html>404</html>", LEGACY_NAME)


class TestSharedHelpers:
    def test_refuse_rows_names_the_first_bad_row(self):
        """The first true row is reported with its line, the file's column and its value."""
        frame = _csv.read_csv(b"A\nx\ny\nz\n", "f.csv")
        bad = pl.Series([False, True, True])
        with pytest.raises(ParseError, match=r"f\.csv, line 3, column 'A': expected x, found 'y'"):
            _csv.refuse_rows(frame, "f.csv", bad, column="A", shown="A", expected="x")
        _csv.refuse_rows(frame, "f.csv", bad & False, column="A", shown="A", expected="x")

    def test_require_unique_treats_nulls_as_equal(self):
        """Two futures (null strike) of one expiry are one key, as the table sees them."""
        frame = _csv.read_csv(b"K,S\nF,\nF,1\nF,\n", "f.csv")
        with pytest.raises(ParseError, match=r"line 4: .*\(K, S\).*line 2 again"):
            _csv.require_unique(frame, "f.csv", ["K", "S"])
        _csv.require_unique(frame.head(2), "f.csv", ["K", "S"])


class TestRemotePaths:
    @pytest.mark.parametrize(
        ("day", "expected"),
        [
            (
                dt.date(2022, 6, 13),
                ["/content/historical/DERIVATIVES/2022/JUN/fo13JUN2022bhav.csv.zip"],
            ),
            (
                dt.date(2024, 1, 1),
                [
                    "/content/historical/DERIVATIVES/2024/JAN/fo01JAN2024bhav.csv.zip",
                    "/content/fo/BhavCopy_NSE_FO_0_0_0_20240101_F_0000.csv.zip",
                ],
            ),
            (
                dt.date(2024, 7, 5),
                [
                    "/content/historical/DERIVATIVES/2024/JUL/fo05JUL2024bhav.csv.zip",
                    "/content/fo/BhavCopy_NSE_FO_0_0_0_20240705_F_0000.csv.zip",
                ],
            ),
            (dt.date(2024, 7, 8), ["/content/fo/BhavCopy_NSE_FO_0_0_0_20240708_F_0000.csv.zip"]),
        ],
    )
    def test_around_the_udiff_cutover(self, day, expected):
        """Legacy alone before 2024, both (legacy first) until 2024-07-05, then UDiFF alone."""
        assert fo_bhavcopy.DATASET.publication.paths(day) == expected

    def test_registered(self):
        """The registry finds the dataset; its key is the contract and the day."""
        dataset = sources.get("fo_bhavcopy")
        assert dataset.name == dataset.table == "fo_bhavcopy"
        assert set(dataset.key) <= set(dataset.column_names)


# ---- the generator ----------------------------------------------------------------------------
DAY = dt.date(2024, 7, 5)
#: Where the generator writes the day's two files: where the dataset fetches them from.
LEGACY_PATH, UDIFF_PATH = (p.lstrip("/") for p in fo_bhavcopy.DATASET.publication.paths(DAY))


def unzip(path) -> bytes:
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        assert path.name == f"{member}.zip"
        return archive.read(member)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One day at the default size, in both layouts, with the CM files beside it."""
    root = tmp_path_factory.mktemp("nse")
    report = generate(DAY, DAY, root, datasets=["cm_bhavcopy", "fo_bhavcopy"])
    return root, report


class TestGenerated:
    def test_both_layouts_parse_to_the_same_contracts(self, generated):
        """Legacy and UDiFF of one day hold the same contracts and numbers."""
        root, report = generated
        legacy = fo_bhavcopy.parse((root / LEGACY_PATH).read_bytes(), "legacy.zip")
        udiff = fo_bhavcopy.parse((root / UDIFF_PATH).read_bytes(), "udiff.zip")
        assert 30_000 <= legacy.height == udiff.height <= 60_000
        assert report.rows["fo_bhavcopy"] == 2 * legacy.height
        key = list(fo_bhavcopy.KEY)
        legacy, udiff = legacy.sort(key, nulls_last=True), udiff.sort(key, nulls_last=True)
        same = ["open", "high", "low", "close", "open_interest", "change_in_oi", "contracts"]
        assert legacy.select(key + same).equals(udiff.select(key + same))
        # Legacy cuts turnover to hundredths of a lakh (1,000 rupees).
        assert (udiff["turnover"] - legacy["turnover"]).is_between(0, 1000, closed="left").all()
        assert set(legacy["instrument"]) == {"FUTIDX", "FUTSTK", "OPTIDX", "OPTSTK"}
        assert legacy["settle_price"].null_count() > 0
        assert udiff["settle_price"].null_count() == 0

    def test_bytes_look_like_nse(self, generated):
        """Headers byte for byte as NSE's, and the fields NSE writes on futures."""
        root, _ = generated
        legacy = unzip(root / LEGACY_PATH).decode()
        udiff = unzip(root / UDIFF_PATH).decode()
        assert legacy.startswith(LEGACY_HEADER + "\n")
        assert udiff.startswith(UDIFF_HEADER + "\n")
        first_future = legacy.splitlines()[1].split(",")
        assert first_future[0] == "FUTIDX"
        assert first_future[3:5] == ["0", "XX"]
        assert first_future[14:] == ["05-JUL-2024", ""]
        future = next(line for line in udiff.splitlines() if ",IDF," in line).split(",")
        assert future[11:13] == ["", ""]
        assert future[13].endswith("FUT")

    def test_contract_turnover_is_lots_times_lot_size_times_price(self, generated):
        """As in NSE's UDiFF files: value = contracts x lot x (strike + premium) for options."""
        root, _ = generated
        rows = list(csv.DictReader(io.StringIO(unzip(root / UDIFF_PATH).decode())))
        for row in rows[:2000]:
            contracts = int(row["TtlTradgVol"])
            if not contracts:
                continue
            per_unit = float(row["TtlTrfVal"]) / (contracts * int(row["NewBrdLotQty"]))
            premium = per_unit - float(row["StrkPric"] or 0)
            assert float(row["LwPric"]) - 0.01 <= premium <= float(row["HghPric"]) + 0.01, row

    def test_stock_underlyings_follow_the_cm_close(self, generated):
        """A stock future's underlying price is the share's close in the CM bhavcopy."""
        root, _ = generated
        cm = root / cm_bhavcopy.DATASET.publication.paths(DAY)[-1].lstrip("/")
        closes = {
            r["TckrSymb"]: r["ClsPric"]
            for r in csv.DictReader(io.StringIO(unzip(cm).decode()))
            if r["SctySrs"] == "EQ"
        }
        rows = csv.DictReader(io.StringIO(unzip(root / UDIFF_PATH).decode()))
        stocks = {r["TckrSymb"]: r["UndrlygPric"] for r in rows if r["FinInstrmTp"] == "STF"}
        assert 150 <= len(stocks) <= 250
        assert all(closes[symbol] == price for symbol, price in stocks.items())

    def test_same_day_same_bytes(self, generated, tmp_path):
        """The writer draws from the day's own seed: a rerun writes identical files."""
        root, _ = generated
        generate(DAY, DAY, tmp_path, datasets=["fo_bhavcopy"])
        for path in (LEGACY_PATH, UDIFF_PATH):
            assert (tmp_path / path).read_bytes() == (root / path).read_bytes()


# ---- the table on a current ClickHouse --------------------------------------------------------
def test_ddl_and_load_on_chdb(tmp_path):
    """The migration creates the silver columns on a current ClickHouse; a day loads once."""
    chdb_session = pytest.importorskip("chdb.session")

    from include.nse.warehouse import load, migrate, table_columns

    session = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        client = ChdbClient(session)
        migrate(client, "nse")
        dataset = fo_bhavcopy.DATASET
        expected = [(c.name, c.ch_type) for c in dataset.columns] + [("loaded_at", "DateTime")]
        assert table_columns(client, "nse", dataset.table) == expected
        frame = parse(LEGACY_HEADER, *LEGACY_ROWS)
        for _ in range(2):
            load(client, dataset, dt.date(2022, 6, 13), frame, "nse")
        assert client.execute(
            "SELECT count(), sum(contracts), countIf(strike_price IS NULL) FROM nse.fo_bhavcopy"
        ) == [(4, 145091, 1)]
    finally:
        session.close()
