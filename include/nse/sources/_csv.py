"""Reading NSE's CSV files: the quirks every NSE parser meets, handled once.

NSE serves CSVs plain or zipped, sometimes with a BOM, a trailing comma after the header, ", "
separators, Indian digit grouping ("1,08,000") and "-" for a missing value; a missing file can
come back as an HTML page with status 200. `read_csv` gives every column as stripped text plus
the line each row came from, so the typed parse that follows can name the line that fails.
"""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from include.nse.dates import month_code, parse_dates
from include.nse.errors import ParseError
from include.nse.payload import BOM, sniff, zip_members
from include.nse.sources.base import Column

log = logging.getLogger(__name__)

#: Column `read_csv` adds: the file's line a row came from (the header is line 1).
LINE = "_line"

#: Rupees in a lakh: NSE quotes some turnovers in lakhs; silver holds rupees.
LAKH = 100_000
#: What NSE writes for "no value" in a number or date column, once stripped (" -" -> "-").
_NOTHING = ["-"]

#: Last day of the legacy bhavcopies (CM and F&O). UDiFF ones followed from 2024-07-08, and NSE
#: back-filled them to UDIFF_FIRST_DAY.
LEGACY_LAST_DAY = dt.date(2024, 7, 5)
UDIFF_FIRST_DAY = dt.date(2024, 1, 1)
#: The UDiFF bhavcopy's header, the same in every segment (the segment is in Sgmt).
UDIFF_LAYOUT = (
    "TradDt,BizDt,Sgmt,Src,FinInstrmTp,FinInstrmId,ISIN,TckrSymb,SctySrs,XpryDt,"
    "FininstrmActlXpryDt,StrkPric,OptnTp,FinInstrmNm,OpnPric,HghPric,LwPric,ClsPric,LastPric,"
    "PrvsClsgPric,UndrlygPric,SttlmPric,OpnIntrst,ChngInOpnIntrst,TtlTradgVol,TtlTrfVal,"
    "TtlNbOfTxsExctd,SsnId,NewBrdLotQty,Rmks,Rsvd1,Rsvd2,Rsvd3,Rsvd4"
).split(",")


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
    kind = sniff(raw)
    if kind == "zip":
        members = zip_members(raw, file_name, lambda name: True)
        csvs = [name for name in members if name.lower().endswith(".csv")]
        if len(csvs) != 1:
            found = ", ".join(members) or "no files"
            raise ParseError(file_name, f"expected a ZIP holding one CSV, found {found}")
        raw = members[csvs[0]]
        kind = sniff(raw)
    if kind == "html" or raw.removeprefix(BOM).lstrip()[:1] == b"<":
        raise ParseError(file_name, "expected CSV, found an HTML page (NSE's 'not found' page?)")
    if kind == "empty":
        raise ParseError(file_name, "expected CSV with a header line, found an empty file")
    return raw.removeprefix(BOM)


@dataclass(frozen=True)
class CsvFile:
    """A CSV as NSE served it, checked once: its bytes (unzipped, without BOM), its header's
    stripped names, and every non-blank line holding as many fields as the header."""

    data: bytes
    file_name: str
    names: list[str]
    separator: str = ","


def open_csv(raw: bytes, file_name: str, *, separator: str = ",") -> CsvFile:
    """The CSV in `raw`, checked: UTF-8, a header without empty or repeated names (a trailing
    empty one, from a trailing comma, aside), every line with the header's number of fields.
    Line numbers assume one record per line, as in every NSE file; a quoted field that spans
    lines is refused by the field count."""
    data = csv_bytes(raw, file_name)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(file_name, f"expected UTF-8 text ({exc.reason})", line=line) from None
    header = data.split(b"\n", 1)[0].decode("utf-8")
    names = [name.strip() for name in next(csv.reader([header], delimiter=separator))]
    _check_header(names, file_name)
    _check_field_counts(data, separator, len(names), file_name)
    return CsvFile(data, file_name, names, separator)


def read_csv(raw: bytes | CsvFile, file_name: str = "", *, separator: str = ",") -> pl.DataFrame:
    """Every column as text, stripped, with blank and missing values null, plus `LINE`.

    Header names are stripped; a trailing empty name (from a trailing comma) is dropped with
    its column, which must be empty. Blank lines are dropped.
    """
    opened = raw if isinstance(raw, CsvFile) else open_csv(raw, file_name, separator=separator)
    names, file_name = opened.names, opened.file_name
    try:
        frame = pl.read_csv(
            opened.data,
            separator=opened.separator,
            infer_schema=False,
            empty_string_is_null=False,
            row_index_name=LINE,
            row_index_offset=2,
        )
    except pl.exceptions.PolarsError as exc:
        raise ParseError(file_name, f"unreadable CSV: {str(exc).splitlines()[0]}") from exc
    frame.columns = [LINE, *names]
    values = [name for name in names if name]
    stripped = pl.col(names).str.strip_chars()
    frame = frame.with_columns(pl.when(stripped != "").then(stripped)).filter(
        pl.any_horizontal(pl.col(values).is_not_null())
    )

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


def read_columns(
    opened: CsvFile,
    columns: Iterable[Column],
    source: Mapping[str, str],
    *,
    require: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """`to_silver(read_csv(...))` for the columns `source` names, without reading every column
    as text first; each file column in `require` must hold its value on every row (checked
    before any value is parsed, as `require_value` would).

    Numbers are read by polars' CSV reader as numbers, only the columns needed; a file that
    reader does not take as is (grouping commas, "-" for nothing, padded values, blank lines,
    quotes, NaN, a blank where a value is required) is read the slow way instead, which says
    where and why it fails or reads it right. Both ways give the same frame for every file.
    """
    require = dict(require or {})
    silver = {column.name: column for column in columns}
    require_columns(opened.names, opened.file_name, [*source.values(), *require])
    fast = _read_typed(opened, silver, source, list(require))
    if fast is not None:
        for column, expected in require.items():
            require_value(fast, opened.file_name, column, expected)
        return fast.drop([c for c in require if c not in source.values()])
    frame = read_csv(opened)
    for column, expected in require.items():
        require_value(frame, opened.file_name, column, expected)
    return to_silver(frame, opened.file_name, columns, source)


def _read_typed(
    opened: CsvFile, silver: dict[str, Column], source: Mapping[str, str], text: list[str]
) -> pl.DataFrame | None:
    """The fast way of `read_columns`, or None where only the slow way is sure to be right."""
    data = opened.data
    if b"\n\n" in data or b"\n\r\n" in data or b'"' in data:
        return None
    names = opened.names
    wanted = list(dict.fromkeys([*source.values(), *text, *([""] if names[-1] == "" else [])]))
    numbers = {
        file_column: silver[name].dtype
        for name, file_column in source.items()
        if silver[name].dtype.is_numeric()
    }
    try:
        frame = pl.read_csv(
            data,
            separator=opened.separator,
            has_header=False,
            skip_rows=1,
            new_columns=names,
            columns=[names.index(name) for name in wanted],
            schema_overrides={name: numbers.get(name, pl.String) for name in wanted},
            row_index_name=LINE,
            row_index_offset=2,
        )
    except pl.exceptions.PolarsError:
        return None
    strings = [name for name in wanted if name not in numbers]
    stripped = pl.col(strings).str.strip_chars()
    typed = []
    for name, file_column in source.items():
        column = silver[name]
        if column.dtype == pl.Date:
            value = parse_dates(pl.col(file_column).str.replace("^-$", ""))
        else:
            value = pl.col(file_column)
        typed.append(value.alias(name))
    frame = frame.with_columns(pl.when(stripped != "").then(stripped))
    checks = [
        *(
            pl.col(file_column).is_null()
            for name, file_column in source.items()
            if not silver[name].nullable
        ),
        *(
            pl.col(file_column).is_nan() | pl.col(file_column).is_infinite()
            for name, file_column in source.items()
            if silver[name].dtype.is_float()
        ),
        *(
            pl.col(file_column).is_not_null() & parse_dates(pl.col(file_column)).is_null()
            for name, file_column in source.items()
            if silver[name].dtype == pl.Date
        ),
    ]
    if "" in wanted:
        checks.append(pl.col("").is_not_null())
    if checks and frame.select(pl.any_horizontal(checks).fill_null(False).any()).item():
        return None
    extra = [name for name in text if name not in source.values()]
    return frame.select(pl.col(LINE), *typed, *extra)


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


def _check_field_counts(data: bytes, separator: str, expected: int, file_name: str) -> None:
    """Every non-blank line has the header's number of fields: polars alone would fill a short
    line with nulls, which is also how a cut-off file looks. Separators are counted per line on
    the bytes with numpy; a line that looks wrong is looked at again as text (a blank line is
    fine; in a line with quotes a separator may sit inside a field, so the csv module counts)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    separators = np.flatnonzero(raw == ord(separator))
    # Separators before each line's end, line by line: the counts per line.
    before = np.searchsorted(separators, np.concatenate((newlines, [raw.size])))
    counts = np.diff(before, prepend=0) + 1
    suspects = np.flatnonzero(counts != expected)
    if b'"' in data:
        quoted = np.unique(np.searchsorted(newlines, np.flatnonzero(raw == ord('"'))))
        suspects = np.union1d(suspects, quoted)
    starts = np.concatenate(([0], newlines + 1))
    for index in suspects[suspects > 0]:  # the header is line 1, checked on its own
        end = newlines[index] if index < newlines.size else raw.size
        line = data[starts[index] : end].decode("utf-8", "replace")
        if not line.strip():
            continue
        count = (
            len(next(csv.reader([line], delimiter=separator)))
            if '"' in line
            else line.count(separator) + 1
        )
        if count != expected:
            raise ParseError(
                file_name,
                f"expected {expected} fields as in the header, found {count}",
                line=int(index) + 1,
            )


def require_columns(
    frame: pl.DataFrame | list[str], file_name: str, columns: Iterable[str]
) -> None:
    """Refuse a header (a frame's, or a list of names) that lacks any of `columns`, listing
    what it has instead."""
    names = frame.columns if isinstance(frame, pl.DataFrame) else frame
    missing = [name for name in columns if name not in names]
    if missing:
        found = ", ".join(name for name in names if name not in (LINE, ""))
        raise ParseError(file_name, f"header lacks {', '.join(missing)}; found {found}", line=1)


def check_layout(
    names: Iterable[str],
    file_name: str,
    layout: str,
    known: Iterable[str],
    read: Iterable[str],
    *,
    optional: Iterable[str] = (),
) -> list[str]:
    """Hold a header to its layout: `known`, every column NSE's files of the layout have, of
    which we `read` some; the columns the layout's early files lack are `optional`.

    Schema drift is judged by what it does to the rows we load. A column we read that is
    missing is refused. A column the layout does not have is not read and only logged as a
    warning (NSE adds columns now and then; bronze keeps the file as served), and so is a
    missing column we do not read, unless the new column stands where one we read is missing:
    that is a renamed column, and reading on would leave that column null in every row, so it
    is refused. Returns the columns the layout does not have.
    """
    names = [name for name in names if name]
    known, read, optional = list(known), list(read), set(optional)
    unknown = [name for name in names if name not in known]
    missing = [name for name in read if name not in names]
    required = [name for name in missing if name not in optional]
    if required or (missing and unknown):
        renamed = (
            f" and has {', '.join(unknown)} instead, which the {layout} layout does not have "
            "(a renamed column?)"
            if unknown
            else ""
        )
        raise ParseError(
            file_name,
            f"header lacks {', '.join(required or missing)}{renamed}; found {', '.join(names)}",
            line=1,
        )
    unread = [name for name in known if name not in names and name not in read]
    if unknown:
        log.warning(
            "%s: column(s) %s are not in NSE's %s layout and are not read; bronze keeps them",
            file_name,
            ", ".join(unknown),
            layout,
        )
    if unread:
        log.warning(
            "%s: column(s) %s of NSE's %s layout are missing; none of them is read",
            file_name,
            ", ".join(unread),
            layout,
        )
    return unknown


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


def _typed(column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr, str]:
    """(the text that counts as a value, the value as `dtype`, what was expected) of a column
    of `read_csv` text: a date, a number (digit-grouping commas dropped), or text as it is; "-"
    means no value in numbers and dates."""
    text = pl.col(column)
    if dtype == pl.Date:
        text = text.replace(_NOTHING, None)
        return text, parse_dates(text), "a date like 05-JUL-2024 or 2024-07-08"
    if dtype.is_numeric():
        text = text.str.replace_all(",", "", literal=True).replace(_NOTHING, None)
        return text, text.cast(dtype, strict=False), _number_kind(dtype)
    return text, text, "a value"


def parse_column(
    frame: pl.DataFrame, file_name: str, column: str, dtype: pl.DataType, *, required: bool
) -> pl.Series:
    """`column` (text from `read_csv`) as `dtype`; raises at the first row whose value does not
    parse, or has no value while `required`."""
    return to_silver(
        frame,
        file_name,
        [Column(column, dtype, "" if required else "Nullable()")],
        {column: column},
    )[column]


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

    Each takes its silver column's type; a blank value is null where the column is nullable and
    refused where it is not, as is a value that does not parse (or a NaN or infinite number).
    Silver columns not in `source` are left for the caller to derive. Keeps `LINE`.
    """
    require_columns(frame, file_name, source.values())
    silver = {column.name: column for column in columns}
    typed, bad, expected = [], [], {}
    for name, file_column in source.items():
        column = silver[name]
        text, parsed, expected[name] = _typed(file_column, column.dtype)
        wrong = text.is_not_null() & parsed.is_null()
        if column.dtype.is_float():
            wrong = wrong | (parsed.is_nan() | parsed.is_infinite()).fill_null(False)
        if not column.nullable:
            wrong = wrong | parsed.is_null()
        typed.append(parsed.alias(name))
        bad.append(wrong.alias(name))
    # One lazy pass: each column is parsed once, for its value and its check alike.
    parsed = frame.lazy().select(
        pl.col(LINE), *typed, *(b.alias(f"bad:{b.meta.output_name()}") for b in bad)
    )
    parsed = parsed.collect()
    flags = parsed.select(pl.selectors.starts_with("bad:"))
    flags.columns = [c.removeprefix("bad:") for c in flags.columns]
    hits = flags.select(pl.all().any()).row(0, named=True) if flags.width else {}
    failing = [name for name, hit in hits.items() if hit]
    if failing:
        # The first bad row of the file, and its first bad column in the source's order.
        rows = {name: flags[name].arg_true()[0] for name in failing}
        row = min(rows.values())
        name = next(n for n in failing if rows[n] == row)
        value = frame[source[name]][row]
        found = "nothing" if value is None else repr(value)
        raise ParseError(
            file_name,
            f"expected {expected[name]}, found {found}",
            line=frame[LINE][row],
            column=source[name],
        )
    return parsed.select(pl.col(LINE), *(t.meta.output_name() for t in typed))


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
