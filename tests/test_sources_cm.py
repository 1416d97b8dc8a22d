"""CM bhavcopy and delivery parsers, and their shared CSV helpers, on files in NSE's bytes."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from include.nse import dates, quality, sources
from include.nse.errors import ParseError
from include.nse.sources import _csv, cm_bhavcopy, cm_delivery
from include.nse.sources.base import Column
from tests.helpers import csv_file, failed, replace_field, zipped

LEGACY_HEADER = (
    "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
    "TOTALTRADES,ISIN,"
)
LEGACY_ROWS = (
    "20MICRONS,EQ,86.4,86.4,82.25,83.1,82.95,85.4,154919,13098901.9,24-MAY-2022,2705,INE144J01027,",
    "RELIANCE,EQ,2607,2638,2597.7,2615.85,2615.05,2606.9,6243086,16353268081.5,24-MAY-2022,238049,"
    "INE002A01018,",
    "ZYLOG,BE,3.75,4.05,3.75,4,4,3.9,22221,88811.15,24-MAY-2022,69,INE225I01026,",
)
OLD_LEGACY_HEADER = (
    "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
)
OLD_LEGACY_ROWS = (
    "RELIANCE,EQ,1060,1075.5,1055.1,1070.25,1071,1058.45,3218710,3436552137.55,05-JAN-2009,",
    "TATASTEEL,EQ,228,236.9,226.05,234.8,235,226.6,6712345,1570212345.5,05-JAN-2009,",
)
UDIFF_HEADER = (
    "TradDt,BizDt,Sgmt,Src,FinInstrmTp,FinInstrmId,ISIN,TckrSymb,SctySrs,XpryDt,"
    "FininstrmActlXpryDt,StrkPric,OptnTp,FinInstrmNm,OpnPric,HghPric,LwPric,ClsPric,LastPric,"
    "PrvsClsgPric,UndrlygPric,SttlmPric,OpnIntrst,ChngInOpnIntrst,TtlTradgVol,TtlTrfVal,"
    "TtlNbOfTxsExctd,SsnId,NewBrdLotQty,Rmks,Rsvd1,Rsvd2,Rsvd3,Rsvd4"
)
UDIFF_ROWS = (
    "2024-07-08,2024-07-08,CM,NSE,STK,2885,INE002A01018,RELIANCE,EQ,,,,,RELIANCE INDUSTRIES LTD,"
    "3178.00,3193.90,3146.00,3155.95,3152.00,3177.25,,3155.95,,,5112741,16185329383.70,206321,"
    "F1,1,,,,,",
    "2024-07-08,2024-07-08,CM,NSE,STK,1594,INE009A01021,INFY,EQ,,,,,INFOSYS LIMITED,1649.00,"
    "1662.00,1640.10,1652.85,1651.00,1647.45,,1652.85,,,4961839,8204565713.05,142007,F1,1,,,,,",
)
DELIVERY_HEADER = (
    "SYMBOL, SERIES, DATE1, PREV_CLOSE, OPEN_PRICE, HIGH_PRICE, LOW_PRICE, LAST_PRICE, "
    "CLOSE_PRICE, AVG_PRICE, TTL_TRD_QNTY, TURNOVER_LACS, NO_OF_TRADES, DELIV_QTY, DELIV_PER"
)
DELIVERY_ROWS = (
    "20MICRONS, EQ, 01-Jan-2018, 58.30, 58.95, 60.70, 57.90, 58.70, 58.75, 59.53, 156506, 93.17, "
    "1527, 77974, 49.82",
    "ABGSHIP, BZ, 01-Jan-2018, 13.30, 13.85, 13.85, 13.00, 13.70, 13.70, 13.71, 27903, 3.83, 99, "
    "-, -",
)


class TestCsvBytes:
    def test_zip_with_one_csv_gives_its_bytes(self):
        """A ZIP's single CSV member is what gets parsed, whatever else the ZIP holds."""
        data = csv_file(LEGACY_HEADER, *LEGACY_ROWS)
        raw = zipped({"cm24MAY2022bhav.csv": data, "readme.txt": b"notes"})
        assert _csv.csv_bytes(raw, "f.zip") == data

    def test_plain_csv_loses_its_bom(self):
        """A UTF-8 BOM is stripped so it does not stick to the first header name."""
        assert _csv.csv_bytes(b"\xef\xbb\xbfA,B\n1,2\n", "f.csv") == b"A,B\n1,2\n"

    @pytest.mark.parametrize(
        "members",
        [{}, {"readme.txt": b"x"}, {"a.csv": b"A\n1\n", "b.csv": b"A\n2\n"}],
        ids=["empty", "no-csv", "two-csvs"],
    )
    def test_zip_without_exactly_one_csv_is_refused(self, members):
        """A ZIP must hold exactly one CSV; the error lists what it holds."""
        with pytest.raises(ParseError, match=r"f\.zip: expected a ZIP holding one CSV"):
            _csv.csv_bytes(zipped(members), "f.zip")

    def test_broken_zip_is_refused(self):
        """A ZIP cut short is a ParseError, not a zipfile exception."""
        raw = zipped({"a.csv": b"A\n1\n" * 100})
        with pytest.raises(ParseError, match="readable ZIP"):
            _csv.csv_bytes(raw[: len(raw) // 2], "f.zip")

    @pytest.mark.parametrize(
        "body",
        [b"<!DOCTYPE html><html><body>404</body></html>", b"\r\n  <html><head></head></html>"],
    )
    def test_html_page_is_refused(self, body):
        """NSE's soft 404 (an HTML page, possibly with status 200) never reaches the CSV reader."""
        with pytest.raises(ParseError, match="HTML page"):
            _csv.csv_bytes(body, "cm05JUL2024bhav.csv.zip")

    def test_empty_body_is_refused(self):
        """An empty body (NSE's throttling answer) is refused."""
        with pytest.raises(ParseError, match="empty file"):
            _csv.csv_bytes(b"\n", "f.csv")


class TestReadCsv:
    def test_trailing_comma_column_is_dropped(self):
        """The legacy header's trailing comma leaves no column behind."""
        frame = _csv.read_csv(csv_file(LEGACY_HEADER, *LEGACY_ROWS), "f.csv")
        assert frame.columns == [_csv.LINE, *LEGACY_HEADER.rstrip(",").split(",")]

    def test_values_under_the_trailing_comma_are_refused(self):
        """Data under the unnamed last column means the header is short of a name."""
        row = LEGACY_ROWS[1] + "X"
        with pytest.raises(ParseError, match=r"f\.csv, line 3: .*found 'X'"):
            _csv.read_csv(csv_file(LEGACY_HEADER, LEGACY_ROWS[0], row), "f.csv")

    def test_spaces_stripped_and_blanks_null(self):
        """ ", " separators and padded names leave no spaces; a blank value is null."""
        frame = _csv.read_csv(b" A , B ,C\r\n x , ,\r\n", "f.csv")
        assert frame.columns == [_csv.LINE, "A", "B", "C"]
        assert frame.row(0) == (2, "x", None, None)

    def test_line_numbers_count_blank_lines(self):
        """Blank lines are dropped but still counted, so reported lines match an editor's."""
        frame = _csv.read_csv(b"A,B\n1,2\n\n3,4\n\n", "f.csv")
        assert frame[_csv.LINE].to_list() == [2, 4]

    @pytest.mark.parametrize("row", ["1", "1,2,3"])
    def test_line_with_wrong_field_count_is_refused(self, row):
        """A short or long line (e.g. a file cut off mid-line) names its line."""
        with pytest.raises(ParseError, match=r"f\.csv, line 3: expected 2 fields"):
            _csv.read_csv(csv_file("A,B", "1,2", row), "f.csv")

    def test_quoted_commas_are_one_field(self):
        """A quoted "1,08,000" is one field, not three."""
        frame = _csv.read_csv(b'QTY,PRICE\n"1,08,000",1.5\n', "f.csv")
        assert frame["QTY"].to_list() == ["1,08,000"]

    @pytest.mark.parametrize("header", ["", "A,,B", "A,B,A", "A, B,B "])
    def test_bad_header_names_are_refused(self, header):
        """A blank header, or an unnamed or repeated name in it, is refused at line 1."""
        with pytest.raises(ParseError, match=r"f\.csv, line 1"):
            _csv.read_csv(csv_file(header, "1,2,3"), "f.csv")

    def test_non_utf8_is_refused_with_line(self):
        """Bytes that are not UTF-8 name the line they are on."""
        with pytest.raises(ParseError, match=r"f\.csv, line 3: expected UTF-8"):
            _csv.read_csv(b"A,B\n1,2\n3,\xff\n", "f.csv")


class TestParseColumn:
    def frame(self, *values: str) -> pl.DataFrame:
        return _csv.read_csv(
            csv_file("ROW,V", *(f'{n},"{v}"' for n, v in enumerate(values))), "f.csv"
        )

    def test_indian_grouping_and_dashes(self):
        """Digit-grouping commas go; "-" and blanks are null."""
        frame = self.frame("1,08,000", "-", "", "2500")
        parsed = _csv.parse_column(frame, "f.csv", "V", pl.UInt64, required=False)
        assert parsed.dtype == pl.UInt64
        assert parsed.to_list() == [108000, None, None, 2500]

    def test_dates_in_every_nse_form(self):
        """Upper-case and title-case month names and ISO dates all parse."""
        frame = self.frame("05-JUL-2024", "01-Jan-2018", "2024-07-08")
        parsed = _csv.parse_column(frame, "f.csv", "V", pl.Date, required=True)
        assert parsed.to_list() == [dt.date(2024, 7, 5), dt.date(2018, 1, 1), dt.date(2024, 7, 8)]

    @pytest.mark.parametrize(
        ("value", "dtype", "expected"),
        [
            ("31-FEB-2024", pl.Date, "a date like 05-JUL-2024 or 2024-07-08"),
            ("12.5", pl.UInt64, "a whole number >= 0"),
            ("-3", pl.UInt64, "a whole number >= 0"),
            ("abc", pl.Float64, "a number"),
            ("inf", pl.Float64, "a number"),
        ],
    )
    def test_bad_value_names_line_and_column(self, value, dtype, expected):
        """The first value that does not parse is reported with its line and column."""
        frame = self.frame("", value)
        with pytest.raises(ParseError) as caught:
            _csv.parse_column(frame, "f.csv", "V", dtype, required=False)
        assert (
            str(caught.value) == f"f.csv, line 3, column 'V': expected {expected}, found {value!r}"
        )

    def test_first_bad_row_of_the_file_is_reported(self):
        """Of several bad values the earliest line is named, then the first column there."""
        columns = [Column(name, pl.UInt64, "Nullable(UInt64)") for name in ("a", "b")]
        source = {"a": "A", "b": "B"}
        later_in_a = _csv.read_csv(b"A,B\n1,x\ny,2\n", "f.csv")
        with pytest.raises(ParseError, match=r"line 2, column 'B': .*found 'x'"):
            _csv.to_silver(later_in_a, "f.csv", columns, source)
        both = _csv.read_csv(b"A,B\n1,2\nz,x\n", "f.csv")
        with pytest.raises(ParseError, match=r"line 3, column 'A': .*found 'z'"):
            _csv.to_silver(both, "f.csv", columns, source)

    def test_required_value_missing(self):
        """A required column refuses "-" as well as a blank."""
        with pytest.raises(ParseError, match=r"line 2, column 'V': expected a number, found '-'"):
            _csv.parse_column(self.frame("-"), "f.csv", "V", pl.Float64, required=True)


class TestMonthCode:
    def test_upper_case_english_month(self):
        """Archive paths use JAN..DEC whatever the process locale."""
        assert [dates.month_code(dt.date(2024, m, 1)) for m in (1, 7, 12)] == ["JAN", "JUL", "DEC"]


class TestLegacyBhavcopy:
    def test_zipped_file_values_and_types(self):
        """A served .csv.zip gives typed silver rows with the file's values."""
        raw = zipped({"cm24MAY2022bhav.csv": csv_file(LEGACY_HEADER, *LEGACY_ROWS)})
        frame = cm_bhavcopy.parse(raw, "cm24MAY2022bhav.csv.zip")
        assert frame.schema == cm_bhavcopy.DATASET.schema
        assert frame.row(1, named=True) == {
            "trade_date": dt.date(2022, 5, 24),
            "symbol": "RELIANCE",
            "series": "EQ",
            "isin": "INE002A01018",
            "open": 2607.0,
            "high": 2638.0,
            "low": 2597.7,
            "close": 2615.85,
            "last_price": 2615.05,
            "prev_close": 2606.9,
            "volume": 6243086,
            "turnover": 16353268081.5,
            "trades": 238049,
            "source_format": "legacy",
        }

    def test_plain_csv_with_crlf(self):
        """The extracted CSV parses the same, with either line ending."""
        plain = cm_bhavcopy.parse(csv_file(LEGACY_HEADER, *LEGACY_ROWS), "cm24MAY2022bhav.csv")
        crlf = csv_file(LEGACY_HEADER, *LEGACY_ROWS, newline="\r\n")
        assert cm_bhavcopy.parse(crlf, "cm24MAY2022bhav.csv").equals(plain)
        assert plain.height == 3

    def test_old_file_without_trades_and_isin(self):
        """Files before about 2011 lack TOTALTRADES and ISIN: those silver columns are null."""
        raw = zipped({"cm05JAN2009bhav.csv": csv_file(OLD_LEGACY_HEADER, *OLD_LEGACY_ROWS)})
        frame = cm_bhavcopy.parse(raw, "cm05JAN2009bhav.csv.zip")
        assert frame.schema == cm_bhavcopy.DATASET.schema
        assert frame["isin"].null_count() == frame["trades"].null_count() == 2
        assert frame["volume"].to_list() == [3218710, 6712345]
        assert frame["trade_date"].unique().to_list() == [dt.date(2009, 1, 5)]


class TestUdiffBhavcopy:
    def test_zipped_file_values_and_types(self):
        """UDiFF's columns map to the same silver columns as legacy."""
        raw = zipped(
            {"BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv": csv_file(UDIFF_HEADER, *UDIFF_ROWS)}
        )
        frame = cm_bhavcopy.parse(raw, "BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv.zip")
        assert frame.schema == cm_bhavcopy.DATASET.schema
        assert frame.row(0, named=True) == {
            "trade_date": dt.date(2024, 7, 8),
            "symbol": "RELIANCE",
            "series": "EQ",
            "isin": "INE002A01018",
            "open": 3178.0,
            "high": 3193.9,
            "low": 3146.0,
            "close": 3155.95,
            "last_price": 3152.0,
            "prev_close": 3177.25,
            "volume": 5112741,
            "turnover": 16185329383.7,
            "trades": 206321,
            "source_format": "udiff",
        }

    def test_layout_is_chosen_by_content_not_name(self):
        """A UDiFF file under a legacy-looking name is still read as UDiFF, and vice versa."""
        udiff = cm_bhavcopy.parse(csv_file(UDIFF_HEADER, *UDIFF_ROWS), "cm08JUL2024bhav.csv")
        legacy = cm_bhavcopy.parse(
            csv_file(LEGACY_HEADER, *LEGACY_ROWS), "BhavCopy_NSE_CM_0_0_0_20220524_F_0000.csv"
        )
        assert udiff["source_format"].unique().to_list() == ["udiff"]
        assert legacy["source_format"].unique().to_list() == ["legacy"]

    def test_fo_segment_is_refused(self):
        """The F&O UDiFF file shares the header; its segment gives it away."""
        row = replace_field(UDIFF_ROWS[1], 2, "FO")
        with pytest.raises(ParseError, match=r"f\.csv, line 3, column 'Sgmt': expected 'CM'"):
            cm_bhavcopy.parse(csv_file(UDIFF_HEADER, UDIFF_ROWS[0], row), "f.csv")


class TestBhavcopyBadInput:
    def test_html_body(self):
        """An HTML page served for the file is a ParseError naming the file."""
        with pytest.raises(ParseError, match=r"^cm05JUL2024bhav\.csv\.zip: expected CSV"):
            cm_bhavcopy.parse(b"<html><body>Not Found</body></html>", "cm05JUL2024bhav.csv.zip")

    def test_wrong_header(self):
        """A header of neither layout is refused at line 1, showing what was found."""
        with pytest.raises(ParseError, match=r"f\.csv, line 1: .*found Symbol,Series,Close"):
            cm_bhavcopy.parse(csv_file("Symbol,Series,Close", "INFY,EQ,1"), "f.csv")

    def test_header_lacking_a_column(self):
        """A legacy header missing a column the silver table needs names that column."""
        header = LEGACY_HEADER.replace("PREVCLOSE,", "")
        row = ",".join(f for i, f in enumerate(LEGACY_ROWS[0].split(",")) if i != 7)
        with pytest.raises(ParseError, match=r"f\.csv, line 1: header lacks PREVCLOSE"):
            cm_bhavcopy.parse(csv_file(header, row), "f.csv")

    @pytest.mark.parametrize(
        ("header", "rows", "position", "column"),
        [
            (LEGACY_HEADER, LEGACY_ROWS, 5, "CLOSE"),
            (UDIFF_HEADER, UDIFF_ROWS, 17, "ClsPric"),
        ],
        ids=["legacy", "udiff"],
    )
    def test_non_numeric_price_names_file_line_and_column(self, header, rows, position, column):
        """A price that is not a number is reported with the file, its line and its column."""
        bad = replace_field(rows[1], position, "N.A.")
        raw = zipped({"x.csv": csv_file(header, rows[0], bad)})
        with pytest.raises(ParseError) as caught:
            cm_bhavcopy.parse(raw, "bhav.csv.zip")
        message = str(caught.value)
        assert "bhav.csv.zip" in message
        assert "line 3" in message
        assert repr(column) in message
        assert "'N.A.'" in message

    def test_blank_price_is_null_and_stops_the_gate(self):
        """A blank close is kept as a null, which the gate's critical `close not null` stops."""
        bad = replace_field(LEGACY_ROWS[2], 5, "")
        frame = cm_bhavcopy.parse(csv_file(LEGACY_HEADER, *LEGACY_ROWS[:2], bad), "f.csv")
        assert frame["close"].to_list() == [83.1, 2615.85, None]
        assert frame["symbol"].to_list() == ["20MICRONS", "RELIANCE", "ZYLOG"]
        report, _ = quality.validate_frame(
            "cm_bhavcopy", quality.suite(cm_bhavcopy.DATASET), frame, dt.date(2022, 5, 24)
        )
        assert not report.passed
        assert failed(report, "critical") == {("expect_column_values_to_not_be_null", "close")}

    def test_dash_price_is_null_too(self):
        """NSE's "-" reads as a blank: an open of "-" is null, and only a warning."""
        bad = replace_field(LEGACY_ROWS[2], 2, "-")
        frame = cm_bhavcopy.parse(csv_file(LEGACY_HEADER, *LEGACY_ROWS[:2], bad), "f.csv")
        assert frame["open"].to_list() == [86.4, 2607.0, None]
        report, _ = quality.validate_frame(
            "cm_bhavcopy", quality.suite(cm_bhavcopy.DATASET), frame, dt.date(2022, 5, 24)
        )
        assert report.passed
        assert failed(report, "warning") == {("expect_column_values_to_not_be_null", "open")}

    @pytest.mark.parametrize(("position", "column"), [(0, "SYMBOL"), (1, "SERIES")])
    def test_blank_key_is_refused(self, position, column):
        """A blank key column is refused by the parser, naming its line and column."""
        bad = replace_field(LEGACY_ROWS[2], position, "")
        with pytest.raises(ParseError, match=rf"line 4, column '{column}': .*found nothing"):
            cm_bhavcopy.parse(csv_file(LEGACY_HEADER, *LEGACY_ROWS[:2], bad), "f.csv")

    @pytest.mark.parametrize(
        ("header", "rows", "position", "other", "column"),
        [
            (LEGACY_HEADER, LEGACY_ROWS, 10, "25-MAY-2022", "TIMESTAMP"),
            (UDIFF_HEADER, UDIFF_ROWS, 0, "2024-07-09", "TradDt"),
        ],
        ids=["legacy", "udiff"],
    )
    def test_mixed_trade_dates(self, header, rows, position, other, column):
        """A file carrying two trade dates is refused at the first row that differs."""
        bad = replace_field(rows[1], position, other)
        with pytest.raises(ParseError, match=rf"f\.csv, line 3, column '{column}': .*one date"):
            cm_bhavcopy.parse(csv_file(header, rows[0], bad), "f.csv")

    def test_header_only(self):
        """A file with no rows cannot fill a trade date and is refused."""
        with pytest.raises(ParseError, match="only the header"):
            cm_bhavcopy.parse(csv_file(LEGACY_HEADER), "f.csv")

    def test_zip_without_csv(self):
        """A ZIP holding no CSV is refused with what it holds."""
        with pytest.raises(ParseError, match=r"found cm24MAY2022bhav\.txt"):
            cm_bhavcopy.parse(zipped({"cm24MAY2022bhav.txt": b"x"}), "cm24MAY2022bhav.csv.zip")

    @pytest.mark.parametrize(
        ("header", "rows"), [(LEGACY_HEADER, LEGACY_ROWS), (UDIFF_HEADER, UDIFF_ROWS)]
    )
    def test_a_row_twice_is_refused(self, header, rows):
        """Two rows of one symbol and series are refused by the parser, naming both lines."""
        raw = csv_file(header, *rows, rows[0])
        with pytest.raises(ParseError, match=rf"line {len(rows) + 2}: .*key of line 2 again"):
            cm_bhavcopy.parse(raw, "f.csv")


def _drop(header: str, rows: tuple[str, ...], column: str) -> tuple[str, list[str]]:
    """The header and rows without `column`."""
    position = header.split(",").index(column)

    def without(line: str) -> str:
        return ",".join(f for i, f in enumerate(line.split(",")) if i != position)

    return without(header), [without(row) for row in rows]


class TestSchemaDrift:
    def test_an_added_column_is_read_past_with_a_warning(self, caplog):
        """A column the layout does not have is not read, and is named in a warning; every
        row and value is as without it."""
        header = LEGACY_HEADER + "MARKET_CAP,"
        rows = [row + "123," for row in LEGACY_ROWS]
        frame = cm_bhavcopy.parse(csv_file(header, *rows), "f.csv")
        assert frame.equals(cm_bhavcopy.parse(csv_file(LEGACY_HEADER, *LEGACY_ROWS), "f.csv"))
        assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
            "f.csv: column(s) MARKET_CAP are not in NSE's legacy CM layout and are not read; "
            "bronze keeps them"
        ]

    @pytest.mark.parametrize(
        ("header", "rows", "column"),
        [(LEGACY_HEADER, LEGACY_ROWS, "CLOSE"), (UDIFF_HEADER, UDIFF_ROWS, "ClsPric")],
    )
    def test_a_missing_column_we_read_is_refused(self, header, rows, column):
        header, rows = _drop(header, rows, column)
        with pytest.raises(ParseError, match=rf"f\.csv, line 1: header lacks {column}; found"):
            cm_bhavcopy.parse(csv_file(header, *rows), "f.csv")

    @pytest.mark.parametrize(
        ("old", "new"), [("CLOSE", "CLOSE_PRICE"), ("ISIN", "ISIN_CODE"), ("TOTALTRADES", "TRADES")]
    )
    def test_a_renamed_column_is_refused(self, old, new):
        """A renamed column is refused, naming both names, even one old files lack (ISIN):
        reading on would leave it null in every row."""
        header = LEGACY_HEADER.replace(f",{old},", f",{new},")
        with pytest.raises(ParseError, match=rf"header lacks {old} and has {new} instead"):
            cm_bhavcopy.parse(csv_file(header, *LEGACY_ROWS), "f.csv")

    def test_a_missing_column_we_do_not_read_is_a_warning(self, caplog):
        """UDiFF's reserved columns are not read: one missing is only logged."""
        header, rows = _drop(UDIFF_HEADER, UDIFF_ROWS, "Rsvd4")
        frame = cm_bhavcopy.parse(csv_file(header, *rows), "f.csv")
        assert frame.equals(cm_bhavcopy.parse(csv_file(UDIFF_HEADER, *UDIFF_ROWS), "f.csv"))
        assert "column(s) Rsvd4 of NSE's UDiFF layout are missing" in caplog.text

    @pytest.mark.parametrize(("old", "new"), [("DELIV_QTY", "DELIVERY_QTY"), ("DATE1", "DATE")])
    def test_delivery_renamed_column_is_refused(self, old, new):
        header = DELIVERY_HEADER.replace(old, new)
        with pytest.raises(ParseError, match=rf"header lacks {old} and has {new} instead"):
            cm_delivery.parse(csv_file(header, *DELIVERY_ROWS), "f.csv")


class TestDelivery:
    def test_values_types_and_missing_delivery(self):
        """ ", " separators are read; " -" delivery is null, never 0; turnover is in rupees."""
        frame = cm_delivery.parse(csv_file(DELIVERY_HEADER, *DELIVERY_ROWS), "f.csv")
        assert frame.schema == cm_delivery.DATASET.schema
        assert frame.row(0, named=True) == {
            "trade_date": dt.date(2018, 1, 1),
            "symbol": "20MICRONS",
            "series": "EQ",
            "prev_close": 58.3,
            "open": 58.95,
            "high": 60.7,
            "low": 57.9,
            "last_price": 58.7,
            "close": 58.75,
            "avg_price": 59.53,
            "volume": 156506,
            "turnover": 9317000.0,
            "trades": 1527,
            "delivery_qty": 77974,
            "delivery_pct": 49.82,
        }
        assert frame.row(1, named=True)["delivery_qty"] is None
        assert frame.row(1, named=True)["delivery_pct"] is None
        assert frame["turnover"][1] == 383000.0

    def test_non_numeric_delivery_names_line_and_column(self):
        """A delivery quantity that is neither a number nor "-" is refused with its place."""
        bad = replace_field(DELIVERY_ROWS[1], 13, " n/a", separator=",")
        with pytest.raises(ParseError, match=r"f\.csv, line 3, column 'DELIV_QTY': .*'n/a'"):
            cm_delivery.parse(csv_file(DELIVERY_HEADER, DELIVERY_ROWS[0], bad), "f.csv")

    def test_mixed_dates(self):
        """One file, one trade date."""
        bad = replace_field(DELIVERY_ROWS[1], 2, " 02-Jan-2018", separator=",")
        with pytest.raises(ParseError, match=r"line 3, column 'DATE1'"):
            cm_delivery.parse(csv_file(DELIVERY_HEADER, DELIVERY_ROWS[0], bad), "f.csv")

    def test_a_row_twice_is_refused(self):
        """Two rows of one symbol and series are refused by the parser, naming both lines."""
        raw = csv_file(DELIVERY_HEADER, *DELIVERY_ROWS, DELIVERY_ROWS[1])
        with pytest.raises(ParseError, match=r"f\.csv, line 4: .*key of line 3 again"):
            cm_delivery.parse(raw, "f.csv")

    def test_html_body(self):
        """The delivery file is plain CSV; an HTML page in its place is refused."""
        with pytest.raises(ParseError, match="HTML page"):
            cm_delivery.parse(b"<!DOCTYPE html>\n<html></html>", "sec_bhavdata_full_01012018.csv")


class TestRemotePaths:
    @pytest.mark.parametrize(
        ("day", "expected"),
        [
            (
                dt.date(2023, 12, 29),
                ["/content/historical/EQUITIES/2023/DEC/cm29DEC2023bhav.csv.zip"],
            ),
            (
                dt.date(2024, 1, 1),
                [
                    "/content/historical/EQUITIES/2024/JAN/cm01JAN2024bhav.csv.zip",
                    "/content/cm/BhavCopy_NSE_CM_0_0_0_20240101_F_0000.csv.zip",
                ],
            ),
            (
                dt.date(2024, 7, 5),
                [
                    "/content/historical/EQUITIES/2024/JUL/cm05JUL2024bhav.csv.zip",
                    "/content/cm/BhavCopy_NSE_CM_0_0_0_20240705_F_0000.csv.zip",
                ],
            ),
            (dt.date(2024, 7, 8), ["/content/cm/BhavCopy_NSE_CM_0_0_0_20240708_F_0000.csv.zip"]),
            (
                dt.date(2016, 2, 29),
                ["/content/historical/EQUITIES/2016/FEB/cm29FEB2016bhav.csv.zip"],
            ),
        ],
    )
    def test_bhavcopy_around_the_udiff_cutover(self, day, expected):
        """Legacy alone before 2024, both (legacy first) until 2024-07-05, then UDiFF alone."""
        assert cm_bhavcopy.DATASET.publication.paths(day) == expected

    def test_delivery(self):
        """The delivery file's name carries DDMMYYYY, as the real sample's name does."""
        assert cm_delivery.DATASET.publication.paths(dt.date(2018, 1, 1)) == [
            "/products/content/sec_bhavdata_full_01012018.csv"
        ]


class TestRegistry:
    @pytest.mark.parametrize("name", ["cm_bhavcopy", "cm_delivery"])
    def test_registered_with_key_in_schema(self, name):
        """Each dataset is found by name and its key columns are non-nullable silver columns."""
        dataset = sources.get(name)
        assert dataset.name == dataset.table == name
        by_name = {column.name: column for column in dataset.columns}
        assert all(not by_name[key].nullable for key in dataset.key)
