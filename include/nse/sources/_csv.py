"""Reading NSE's CSV files: the quirks every NSE parser meets, handled once.

NSE serves CSVs plain or zipped, sometimes with a BOM, a trailing comma after the header, ", "
separators, Indian digit grouping ("1,08,000") and "-" for a missing value; a missing file can
come back as an HTML page with status 200. `read_csv` gives every column as stripped text plus
the line each row came from, so the typed parse that follows can name the line that fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
import zlib
from collections.abc import Iterable, Mapping

import polars as pl

from include.nse.errors import ParseError
from include.nse.sources.base import Column

#: Column `read_csv` adds: the file's line a row came from (the header is line 1).
LINE = "_line"

_BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: What NSE writes for "no value" in a number or date column, once stripped (" -" -> "-").
_NOTHING = ["-"]
#: "05-JUL-2024" and "01-Jan-2018" (the month's case does not matter), and "2024-07-08".
_DATE_FORMATS = ("%d-%b-%Y", "%Y-%m-%d")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def month_code(day: dt.date) -> str:
    """NSE's upper-case month in archive paths ("JUL"); strftime's %b would follow the locale."""
    return _MONTHS[day.month - 1]


#: Last day of the legacy bhavcopies (CM and F&O). UDiFF ones followed from 2024-07-08, and NSE
#: back-filled them to UDIFF_FIRST_DAY.
LEGACY_LAST_DAY = dt.date(2024, 7, 5)
UDIFF_FIRST_DAY = dt.date(2024, 1, 1)


def bhavcopy_paths(trade_date: dt.date, segment: str, legacy_folder: str) -> list[str]:
    """Archive paths of a segment's bhavcopy ("CM" under EQUITIES, "FO" under DERIVATIVES).

    Legacy first where both exist (2024-01-01 to 2024-07-05): it is what NSE published on the
    day, like every earlier date; the UDiFF file for those dates is a later back-fill.
    """
    code = segment.lower()
    paths = []
    if trade_date <= LEGACY_LAST_DAY:
        month = month_code(trade_date)
        paths.append(
            f"/content/historical/{legacy_folder}/{trade_date:%Y}/{month}/"
            f"{code}{trade_date:%d}{month}{trade_date:%Y}bhav.csv.zip"
        )
    if trade_date >= UDIFF_FIRST_DAY:
        paths.append(
            f"/content/{code}/BhavCopy_NSE_{segment}_0_0_0_{trade_date:%Y%m%d}_F_0000.csv.zip"
        )
    return paths


def csv_bytes(raw: bytes, file_name: str) -> bytes:
    """The CSV in `raw`: the one CSV member of a ZIP, or `raw` itself; without a BOM.

    Refuses an HTML page: NSE answers a missing file with one, sometimes with status 200.
    """
    data = _only_csv_member(raw, file_name) if raw.startswith(_ZIP_MAGIC) else raw
    data = data.removeprefix(_BOM)
    if data[:256].lstrip().startswith(b"<"):
        raise ParseError(file_name, "expected CSV, found an HTML page (NSE's 'not found' page?)")
    if not data.strip():
        raise ParseError(file_name, "expected CSV with a header line, found an empty file")
    return data


def _only_csv_member(raw: bytes, file_name: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            names = [info.filename for info in archive.infolist() if not info.is_dir()]
            csvs = [name for name in names if name.lower().endswith(".csv")]
            if len(csvs) != 1:
                found = ", ".join(names) or "no files"
                raise ParseError(file_name, f"expected a ZIP holding one CSV, found {found}")
            return archive.read(csvs[0])
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise ParseError(file_name, f"expected a readable ZIP: {exc}") from exc


def read_csv(raw: bytes, file_name: str, *, separator: str = ",") -> pl.DataFrame:
    """Every column as text, stripped, with blank and missing values null, plus `LINE`.

    Header names are stripped; a trailing empty name (from a trailing comma) is dropped with
    its column, which must be empty. Every line must have as many fields as the header: polars
    alone fills a short line with nulls, which is also how a cut-off file looks. Blank lines are
    dropped. Line numbers assume one record per line, as in every NSE file; a quoted field that
    spans lines is refused by the field count.
    """
    data = csv_bytes(raw, file_name)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(file_name, f"expected UTF-8 text ({exc.reason})", line=line) from None
    lines = text.split("\n")
    names = [name.strip() for name in next(csv.reader([lines[0]], delimiter=separator))]
    _check_header(names, file_name)
    for number, line in enumerate(lines[1:], start=2):
        if line.strip() and (count := _field_count(line, separator)) != len(names):
            raise ParseError(
                file_name,
                f"expected {len(names)} fields as in the header, found {count}",
                line=number,
            )

    try:
        frame = pl.read_csv(
            data,
            separator=separator,
            infer_schema=False,
            empty_string_is_null=False,
            row_index_name=LINE,
            row_index_offset=2,
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(file_name, f"unreadable CSV: {str(exc).splitlines()[0]}") from exc
    frame.columns = [LINE, *names]
    values = [name for name in names if name]
    frame = frame.with_columns(
        pl.when(pl.col(names).str.strip_chars() != "").then(pl.col(names).str.strip_chars())
    ).filter(pl.any_horizontal(pl.col(values).is_not_null()))

    if names[-1] == "":
        stray = frame.filter(pl.col("").is_not_null())
        if stray.height:
            raise ParseError(
                file_name,
                f"expected nothing after the last named column, found {stray[''][0]!r}",
                line=stray[LINE][0],
            )
        frame = frame.drop("")
    return frame


def _check_header(names: list[str], file_name: str) -> None:
    if not any(names):
        raise ParseError(file_name, "expected a header line, found a blank one", line=1)
    for position, name in enumerate(names[:-1], start=1):
        if not name:
            raise ParseError(file_name, f"header field {position} has no name", line=1)
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ParseError(file_name, "header names this column twice", line=1, column=name)
        seen.add(name)


def _field_count(line: str, separator: str) -> int:
    if '"' not in line:
        return line.count(separator) + 1
    return len(next(csv.reader([line], delimiter=separator)))


def require_columns(frame: pl.DataFrame, file_name: str, columns: Iterable[str]) -> None:
    """Refuse a header that lacks any of `columns`, listing what it has instead."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        found = ", ".join(name for name in frame.columns if name != LINE)
        raise ParseError(file_name, f"header lacks {', '.join(missing)}; found {found}", line=1)


def require_value(frame: pl.DataFrame, file_name: str, column: str, expected: str) -> None:
    """Refuse a file where any row's `column` is not `expected` (e.g. a segment code)."""
    require_columns(frame, file_name, [column])
    other = frame.filter(pl.col(column).ne_missing(expected))
    if other.height:
        raise ParseError(
            file_name,
            f"expected {expected!r}, found {other[column][0]!r}",
            line=other[LINE][0],
            column=column,
        )


def parse_column(
    frame: pl.DataFrame, file_name: str, column: str, dtype: pl.DataType, *, required: bool
) -> pl.Series:
    """`column` (text from `read_csv`) as `dtype`: a date, a number, or text as it is.

    Numbers lose their digit-grouping commas; "-" means no value in numbers and dates. Raises at
    the first row whose value does not parse, or has no value while `required`.
    """
    text = frame[column]
    if dtype == pl.Date:
        expected = "a date like 05-JUL-2024 or 2024-07-08"
        text = text.replace(_NOTHING, None)
        parsed = text.str.strptime(pl.Date, _DATE_FORMATS[0], strict=False)
        for form in _DATE_FORMATS[1:]:
            parsed = parsed.fill_null(text.str.strptime(pl.Date, form, strict=False))
    elif dtype.is_numeric():
        expected = _number_kind(dtype)
        text = text.str.replace_all(",", "", literal=True).replace(_NOTHING, None)
        parsed = text.cast(dtype, strict=False)
    else:
        expected = "a value"
        parsed = text
    bad = text.is_not_null() & parsed.is_null()
    if dtype.is_float():
        bad = bad | (parsed.is_nan() | parsed.is_infinite()).fill_null(False)
    if required:
        bad = bad | parsed.is_null()
    if bad.any():
        row = bad.arg_true()[0]
        value = frame[column][row]
        found = "nothing" if value is None else repr(value)
        raise ParseError(
            file_name, f"expected {expected}, found {found}", line=frame[LINE][row], column=column
        )
    return parsed


def _number_kind(dtype: pl.DataType) -> str:
    if dtype.is_unsigned_integer():
        return "a whole number >= 0"
    if dtype.is_integer():
        return "a whole number"
    return "a number"


def to_silver(
    frame: pl.DataFrame, file_name: str, columns: Iterable[Column], source: Mapping[str, str]
) -> pl.DataFrame:
    """Parse file columns into silver ones: `source` maps a silver name to its file column.

    Each takes its silver column's type; a non-nullable one refuses empty values. Silver columns
    not in `source` are left for the caller to derive. Keeps `LINE` for later checks.
    """
    require_columns(frame, file_name, source.values())
    silver = {column.name: column for column in columns}
    return pl.DataFrame(
        [frame[LINE]]
        + [
            parse_column(
                frame,
                file_name,
                file_column,
                silver[name].dtype,
                required=not silver[name].nullable,
            ).alias(name)
            for name, file_column in source.items()
        ]
    )


def single_date(frame: pl.DataFrame, file_name: str, column: str, *, file_column: str) -> dt.date:
    """The one date every row of a daily file carries in `column` (parsed from `file_column`).

    A file with no rows or with two dates is refused: it cannot fill one trade date's partition.
    """
    if frame.is_empty():
        raise ParseError(file_name, "expected rows for a trade date, found only the header")
    dates = frame[column]
    first = dates[0]
    other = frame.filter(pl.col(column).ne_missing(first))
    if other.height:
        raise ParseError(
            file_name,
            f"expected one date per file, found {other[column][0]} "
            f"and {first} (line {frame[LINE][0]})",
            line=other[LINE][0],
            column=file_column,
        )
    return first


def refuse_rows(
    frame: pl.DataFrame, file_name: str, bad: pl.Series, *, column: str, shown: str, expected: str
) -> None:
    """Raise at the first row where `bad` is true, naming its line, the file's `column`, and
    the row's value in the frame's `shown` column."""
    if bad.any():
        row = bad.arg_true()[0]
        raise ParseError(
            file_name,
            f"expected {expected}, found {frame[shown][row]!r}",
            line=frame[LINE][row],
            column=column,
        )


def require_unique(frame: pl.DataFrame, file_name: str, key: Iterable[str]) -> None:
    """Refuse two rows with one key value (nulls equal): loading both would double-count."""
    key = list(key)
    repeated = (
        frame.filter(pl.struct(key).is_duplicated())
        .group_by(key, maintain_order=True)
        .agg(pl.col(LINE).sort())
    )
    if repeated.height:
        first, again = repeated[LINE][0][:2]
        raise ParseError(
            file_name,
            f"expected one row per ({', '.join(key)}), found the key of line {first} again",
            line=again,
        )
