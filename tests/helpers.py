"""What several test files share: bytes in NSE's shapes, real samples edited byte by byte,
silver frames of known content, a chdb client, and the quality gate's verdicts by check."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import socket
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from include.nse.dates import IST
from tests.conftest import SAMPLES


# ---- bytes in NSE's shapes -------------------------------------------------------------------
def csv_file(header: str, *rows: str, newline: str = "\n") -> bytes:
    return (newline.join([header, *rows]) + newline).encode()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def replace_field(row: str, position: int, value: str, separator: str = ",") -> str:
    fields = row.split(separator)
    fields[position] = value
    return separator.join(fields)


def unzipped(raw: bytes) -> tuple[str | None, bytes]:
    """(the member's name, its bytes) of a ZIP holding one file; (None, raw) for other bytes."""
    if not raw.startswith(b"PK"):
        return None, raw
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        (name,) = archive.namelist()
        return name, archive.read(name)


def rewrite_csv(raw: bytes, change: Callable[[bytes], bytes], member: str | None = None) -> bytes:
    """`raw` with its CSV changed by `change`; in a ZIP, the member named `member` (default the
    only one) is changed and the others are kept, in their order and under their names."""
    if not raw.startswith(b"PK"):
        return change(raw)
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    (target,) = [member] if member else members
    return zipped(members | {target: change(members[target])})


def read_records(raw: bytes) -> list[dict[str, str]]:
    """The file's rows as dicts of stripped strings, read with the csv module (unzipped first)."""
    _, data = unzipped(raw)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    header = [name.strip() for name in rows[0]]
    return [dict(zip(header, (value.strip() for value in row), strict=True)) for row in rows[1:]]


def line_of(raw: bytes, **values: str) -> int:
    """The file line (the header is line 1) of the first row holding `values`."""
    for number, record in enumerate(read_records(raw), start=2):
        if all(record[column] == value for column, value in values.items()):
            return number
    raise LookupError(f"no row with {values}")


def blank_field(
    raw: bytes, line: int, column: str, *, member: str | None = None, header_line: int = 1
) -> bytes:
    """`raw` (a CSV, or a ZIP holding it as `member`) with `column` of file line `line` emptied;
    every other byte of the CSV as it was. Only for unquoted lines, as NSE's bhavcopies are."""

    def change(data: bytes) -> bytes:
        lines = data.split(b"\n")
        header = lines[header_line - 1].rstrip(b"\r").decode().split(",")
        target = lines[line - 1]
        assert b'"' not in target, "blank_field splits unquoted lines only"
        ending = b"\r" if target.endswith(b"\r") else b""
        fields = target.removesuffix(ending).split(b",")
        position = [name.strip() for name in header].index(column)
        assert fields[position].strip(), f"line {line} has no {column} to blank"
        fields[position] = b""
        lines[line - 1] = b",".join(fields) + ending
        return b"\n".join(lines)

    return rewrite_csv(raw, change, member)


# ---- the real samples ------------------------------------------------------------------------
def sample_names(folder: str, pattern: str) -> list[str]:
    """Sample file names, for parametrizing; an absent folder gives none, and the tests'
    `samples_dir` fixture says why they are skipped."""
    return sorted(path.name for path in (SAMPLES / folder).glob(pattern))


# ---- the stand-in --------------------------------------------------------------------------
def standin_settings(url: str, **changes):
    """Settings pointing both NSE hosts at a stand-in, retrying fast and unthrottled."""
    from include.nse.config import Settings

    defaults = {
        "archive_base_url": url,
        "api_base_url": url,
        "backoff_initial_seconds": 0.01,
        "backoff_max_seconds": 0.05,
        "archive_rate_per_second": 200,
        "api_rate_per_second": 200,
    }
    return Settings(**(defaults | changes))


# ---- the quality gate ------------------------------------------------------------------------
def failed(report, severity: str) -> set[tuple]:
    """(expectation, the columns it is about) of each failed expectation of a severity."""
    columns = ("column", "column_A", "column_B", "column_list")
    return {
        (o.expectation, *(str(o.kwargs[c]) for c in columns if c in o.kwargs))
        for o in report.failed
        if o.severity == severity
    }


def set_row(df: pl.DataFrame, column: str, value, row: int = 0) -> pl.DataFrame:
    """`df` with `column` of one row replaced by `value` (an unsigned column made signed to take
    a negative number)."""
    kind = pl.Int64 if isinstance(value, int) and df[column].dtype.is_unsigned_integer() else None
    values = df[column].cast(kind) if kind else df[column]
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row)
        .then(pl.lit(value, dtype=values.dtype if value is None else None))
        .otherwise(values)
        .alias(column)
    )


def two_day_lake(lake_root: Path, name: str, days: dict[dt.date, pl.DataFrame]):
    """A lake holding `name`'s silver partitions of the given days."""
    from include.nse.lake import Lake

    lake = Lake(lake_root)
    for day, frame in days.items():
        lake.write_silver(name, day, frame)
    return lake


def check_blank_number(
    dataset, original: pl.DataFrame, frame: pl.DataFrame, row: int, column: str
) -> tuple:
    """`frame` is `original` parsed again from bytes with `column` of one row blank: that row
    must be kept with a null in `column` and every other value as in `original`. Returns the
    gate's reports of both frames (the unmodified rows as the previous day's count) and the
    failures only the blanked frame has, as (severity, expectation, column)."""
    from include.nse import quality

    assert original[column][row] is not None, f"row {row} has no {column} to blank"
    expected = original.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(None).otherwise(pl.col(column)).alias(column)
    )
    assert frame.equals(expected)

    day = original["trade_date"][0]
    checks = quality.suite(dataset)
    rows = original.height
    before, _ = quality.validate_frame(dataset.name, checks, original, day, previous_rows=rows)
    after, _ = quality.validate_frame(dataset.name, checks, frame, day, previous_rows=rows)
    new = {
        (severity, *found)
        for severity in ("critical", "warning")
        for found in failed(after, severity) - failed(before, severity)
    }
    return before, after, new


# ---- silver frames of known content ----------------------------------------------------------
DAY = dt.date(2024, 7, 5)
NEXT_DAY = dt.date(2024, 7, 8)


def stage_tables(client, database: str) -> list[str]:
    """The staging tables (`<table>__stage_...`) of `database`."""
    rows = client.execute(
        "SELECT name FROM system.tables WHERE database = %(db)s AND name LIKE '%%__stage_%%'",
        {"db": database},
    )
    return [name for (name,) in rows]


def create_stages(client, database: str, *names: str) -> None:
    """Tables named `names` in `database`, each shaped like the table its name begins with
    (`cm_bhavcopy__stage_...` like `cm_bhavcopy`), as a load's staging tables are."""
    for name in names:
        table = name.split("__", 1)[0]
        client.execute(f"CREATE TABLE {database}.{name} AS {database}.{table}")


def bhavcopy_frame(trade_date: dt.date, symbols: list[str], volume: int = 100) -> pl.DataFrame:
    """A silver cm_bhavcopy frame: one EQ row per symbol, volumes volume, volume+1, ..."""
    from include.nse import sources

    n = len(symbols)
    return sources.get("cm_bhavcopy").conform(
        pl.DataFrame(
            {
                "trade_date": [trade_date] * n,
                "symbol": symbols,
                "series": ["EQ"] * n,
                "isin": [f"INE{i:09d}" if i % 2 else None for i in range(n)],
                "open": [10.0] * n,
                "high": [12.5] * n,
                "low": [9.5] * n,
                "close": [11.0] * n,
                "last_price": [11.05] * n,
                "prev_close": [10.0] * n,
                "volume": [volume + i for i in range(n)],
                "turnover": [1_000_000.0] * n,
                "trades": [None if i % 3 == 0 else 7 for i in range(n)],
                "source_format": ["udiff"] * n,
            }
        )
    )


# ---- an option chain worked out by hand ---------------------------------------------------------
SNAPSHOT = dt.datetime(2024, 7, 5, 10, 15, tzinfo=IST)
EXPIRY = dt.date(2024, 7, 25)
SPOT = 102.0

#: strike -> (open interest, change in OI, volume, IV) per side; None where the leg is missing.
#: The deep in-the-money call (85) and put (115) are missing, as NSE lists them; the 115 call
#: has IV 0 (NSE's "none"), which silver holds as null.
CALLS = {
    90: (10, -2, 100, 18.0),
    95: (20, 5, 300, 17.0),
    100: (40, 12, 900, 15.0),
    105: (60, 25, 1200, 13.0),
    110: (30, 8, 500, 12.0),
    115: (10, 0, 50, None),
}
PUTS = {
    85: (30, 3, 20, 25.0),
    90: (50, 15, 200, 22.0),
    95: (70, 30, 800, 19.0),
    100: (40, -5, 1000, 16.0),
    105: (20, 4, 400, 15.0),
    110: (10, 2, 60, 14.0),
}


def small_chain() -> pl.DataFrame:
    """A seven-strike chain of one snapshot and expiry of TOY, the legs above."""
    from include.nse.sources.option_chain import COLUMNS

    rows = [
        {
            "trade_date": SNAPSHOT.date(),
            "snapshot_ts": SNAPSHOT,
            "fetched_at": None,
            "underlying": "TOY",
            "underlying_value": SPOT,
            "expiry_date": EXPIRY,
            "strike_price": float(strike),
            "option_type": side,
            "open_interest": float(oi),
            "change_in_oi": float(change),
            "volume": volume,
            "implied_volatility": iv,
            "last_price": 1.0,
            "change": 0.0,
            "bid_qty": 0,
            "bid_price": None,
            "ask_price": None,
            "ask_qty": 0,
            "source_format": "v3",
        }
        for side, legs in (("CE", CALLS), ("PE", PUTS))
        for strike, (oi, change, volume, iv) in legs.items()
    ]
    return pl.DataFrame(rows, schema={c.name: c.dtype for c in COLUMNS})


# ---- a current ClickHouse in process ---------------------------------------------------------
class ChdbClient:
    """The slice of `clickhouse_driver.Client.execute` the warehouse uses, run on chdb.

    Parameters are rendered with clickhouse-driver's own escaping, so the SQL that reaches chdb
    is the SQL the driver would send. Rows passed for an INSERT become VALUES text here; that is
    fine in process, unlike on the 18.16 server where the warehouse always sends them as data.
    """

    def __init__(self, session):
        self.session = session
        self.queries: list[str] = []

    def execute(self, query, params=None, *, columnar=False, **kwargs):
        import pyarrow as pa
        from clickhouse_driver.util.escape import escape_param, escape_params

        if query.rstrip().upper().endswith("VALUES"):
            rows = zip(*params, strict=True) if columnar else (row.values() for row in params)
            query += " " + ", ".join(
                "(" + ", ".join(str(escape_param(v, None)) for v in row) + ")" for row in rows
            )
        elif params:
            query %= escape_params(params, None)
        self.queries.append(query)
        result = self.session.query(query, "Arrow").bytes()
        if not result:
            return []
        table = pa.ipc.open_file(pa.py_buffer(result)).read_all()
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


# ---- DAG runs under dag.test() ---------------------------------------------------------------
def state(thing) -> str:
    """The state of a DAG run or a task instance, as text."""
    return str(getattr(thing.state, "value", thing.state))


def task_instances(dag_id: str, run_id: str) -> list:
    """A DAG run's task instances from the metadata database, in task and map index order."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        ).all()
        session.expunge_all()
        return list(tis)


def task_states(dag_id: str, run_id: str) -> dict[str, str]:
    """Task id -> state of a DAG run's tasks; a mapped task's instances must all agree."""
    found: dict[str, set[str]] = {}
    for ti in task_instances(dag_id, run_id):
        found.setdefault(ti.task_id, set()).add(state(ti))
    disagree = {task: states for task, states in found.items() if len(states) > 1}
    assert not disagree, f"mapped instances in different states: {disagree}"
    return {task: states.pop() for task, states in found.items()}


def map_labels(dag_id: str, run_id: str, task_id: str) -> list[str]:
    """The names a mapped task's instances were given, in map index order."""
    return [ti.rendered_map_index for ti in task_instances(dag_id, run_id) if ti.task_id == task_id]


def task_result(dag_id: str, run_id: str, task_id: str, map_index: int = -1):
    """What a task instance returned (its `return_value` XCom); None when it returned nothing."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(
            XComModel.get_many(
                run_id=run_id,
                dag_ids=dag_id,
                task_ids=task_id,
                map_indexes=map_index,
                key="return_value",
            )
        ).all()
        return XComModel.deserialize_value(rows[0]) if rows else None


@contextmanager
def task_log(logger: str = "include.nse_airflow.tasks") -> Iterator[list[str]]:
    """The messages (INFO and up) a logger of the DAG tasks writes while the block runs.

    The handler sits on the logger itself: the task runner reconfigures the root logger."""
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    target, handler = logging.getLogger(logger), Keep(logging.INFO)
    level = target.level
    target.addHandler(handler)
    target.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        target.removeHandler(handler)
        target.setLevel(level)


def free_port() -> int:
    """A loopback port nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
