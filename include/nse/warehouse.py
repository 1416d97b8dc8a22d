"""The ClickHouse warehouse: schema migrations, per-date partition loads, queries into polars.

Every function receives a connected `clickhouse_driver.Client`; where it comes from (an Airflow
hook, the command line, a test) is the caller's business. The SQL sticks to what ClickHouse 18.16
and current releases both accept, and rows always travel as query parameters, never as VALUES
text.

Loading a trade date is idempotent: the frame goes into a fresh staging table shaped like the
target, and `ALTER TABLE ... REPLACE PARTITION` swaps that date's partition in whole. A rerun
replaces the date instead of adding a copy, readers see either the old rows or the new ones, and
dates loading at the same time never touch each other's partitions. A worker killed between
creating and dropping its staging table leaves a `<table>__stage_<time>_<epoch>_<hex>` table
behind; such tables are dropped by the next load of that table once they are an hour old
(`STALE_STAGE_SECONDS`, which no live load comes near) or made before the server's last start,
which their epoch token tells (`drop_stale_stages`).

`Warehouse` is the database a pipeline run loads into: how to connect (an Airflow hook's
task-tagged client, or the command line's) and which database, migrated once per process.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from include.nse.dates import iso_date
from include.nse.names import identifier, qualified_name
from include.nse.payload import digest

if TYPE_CHECKING:
    from clickhouse_driver import Client

    from include.nse.sources.base import Dataset

log = logging.getLogger(__name__)

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
#: The column every dataset table is partitioned by.
PARTITION_COLUMN = "trade_date"
#: A staging table older than this was left by a load that died.
STALE_STAGE_SECONDS = 3600
#: `<table>__stage_<unix time>_<server epoch token>_<random>`; names made before the epoch
#: tokens lack the token and go by their age alone.
_STAGE = re.compile(r"__stage_(\d{10})_(?:([0-9a-f]{8})_)?[0-9a-f]{8}$")

# A statement ends with `;` at the end of a line; comment lines are dropped before splitting.
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)


class MigrationError(RuntimeError):
    """An applied migration file no longer matches what was applied."""


def connector(**settings: Any) -> Callable[[], AbstractContextManager[Client]]:
    """`connect` for a `Warehouse`: each session a new clickhouse-driver client made with
    `settings` (host, port, user, password, ...), disconnected when the session ends."""

    @contextmanager
    def connect() -> Iterator[Client]:
        from clickhouse_driver import Client

        client = Client(**settings)
        try:
            yield client
        finally:
            client.disconnect()

    return connect


class Warehouse:
    """A ClickHouse database and how to reach it: `connect()` gives a context manager yielding a
    connected client whose default database always exists (`default`), so the first session can
    create this one. The schema is migrated on the first session."""

    def __init__(
        self, connect: Callable[[], AbstractContextManager[Client]], database: str = "nse"
    ) -> None:
        self.connect = connect
        self.database = identifier(database)
        self._migrated = False

    @contextmanager
    def session(self) -> Iterator[Client]:
        with self.connect() as client:
            if not self._migrated:
                migrate(client, self.database)
                self._migrated = True
            yield client


# ---- migrations ----------------------------------------------------------------------------
def split_statements(sql: str) -> list[str]:
    """The statements in a migration file: `;` at line end separates, `--` lines are dropped."""
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [statement.strip() for statement in _STATEMENT_END.split(text) if statement.strip()]


def _file_sha256(path: Path) -> str:
    return digest(path.read_bytes())


def applied_migrations(client: Client, database: str = "nse") -> dict[str, str]:
    """Applied migration file name -> sha256 of its text; empty before the first migration."""
    db = identifier(database)
    exists = client.execute(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = 'schema_migrations'",
        {"db": db},
    )[0][0]
    if not exists:
        return {}
    return dict(client.execute(f"SELECT name, sha256 FROM {db}.schema_migrations"))  # noqa: S608 — names pass identifier(), values are parameters


def migrate(client: Client, database: str = "nse", sql_dir: str | Path = SQL_DIR) -> list[str]:
    """Apply the `.sql` files of `sql_dir` not yet applied to `database`, in name order.

    `{db}` in a file stands for the database. Each applied file is recorded with the sha256 of
    its text in `{db}.schema_migrations` (created by the first file), and nothing runs if an
    applied file has changed since: migrations are fixed forward with a new file. Returns the
    names of the files applied by this call.
    """
    db = identifier(database)
    files = sorted(Path(sql_dir).glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no .sql migration files in {sql_dir}")
    client.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    applied = applied_migrations(client, db)
    changed = [f.name for f in files if f.name in applied and applied[f.name] != _file_sha256(f)]
    if changed:
        raise MigrationError(
            f"migration file(s) {', '.join(changed)} changed after being applied to {db}; "
            "restore the applied text and add a new migration file instead"
        )
    done = []
    for path in files:
        if path.name in applied:
            continue
        text = path.read_text()
        for statement in split_statements(text.replace("{db}", db)):
            client.execute(statement)
        client.execute(
            f"INSERT INTO {db}.schema_migrations (name, sha256) VALUES",
            [{"name": path.name, "sha256": _file_sha256(path)}],
        )
        log.info("applied migration %s to %s", path.name, db)
        done.append(path.name)
    return done


def table_columns(client: Client, database: str, table: str) -> list[tuple[str, str]]:
    """(name, type) of each column of `database.table`, in definition order."""
    # 18.16's system.columns has no `position` column; rows come in definition order anyway.
    rows = client.execute(
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(table)s",
        {"db": identifier(database), "table": identifier(table)},
    )
    return [(name, type_) for name, type_ in rows]


# ---- loading -------------------------------------------------------------------------------
def to_columns(data: Any) -> dict[str, list]:
    """Column name -> python values, from a polars DataFrame, a pyarrow Table or a mapping.

    Dates become `datetime.date` and nulls `None`, which is what clickhouse-driver sends.
    """
    if isinstance(data, pl.DataFrame):
        columns = data.to_dict(as_series=False)
    elif isinstance(data, Mapping):
        columns = {name: list(values) for name, values in data.items()}
    elif hasattr(data, "to_pydict") and hasattr(data, "column_names"):  # pyarrow Table or batch
        columns = data.to_pydict()
    else:
        raise TypeError(
            f"expected a polars DataFrame, a pyarrow Table or a mapping, got {type(data)}"
        )
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns differ in length: {lengths}")
    return columns


def insert_columns(client: Client, table: str, data: Any) -> int:
    """Insert whole columns into `table` (`name` or `database.name`) in one batch; rows sent.

    A polars frame goes as ClickHouse's Native format (`include.nse.native`), several times
    faster than clickhouse-driver's value-by-value encoding; other data, and columns of a type
    the Native encoder does not cover, go through clickhouse-driver.
    """
    from include.nse import native

    target = qualified_name(table)
    if isinstance(data, pl.DataFrame):
        for name in data.columns:
            identifier(name)
        sent = native.insert(client, target, data)
        if sent is not None:
            return sent
    columns = to_columns(data)
    if not columns:
        raise ValueError(f"nothing to insert into {table}: no columns")
    rows = len(next(iter(columns.values())))
    if rows:
        client.execute(
            f"INSERT INTO {target} ({', '.join(map(identifier, columns))}) VALUES",
            list(columns.values()),
            columnar=True,
        )
    return rows


def conform_for_load(dataset: Dataset, trade_date: dt.date, df: pl.DataFrame) -> pl.DataFrame:
    """`df` as the silver schema, refused unless it has exactly the silver columns and one date."""
    expected = dataset.column_names
    missing = [c for c in expected if c not in df.columns]
    unexpected = [c for c in df.columns if c not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{dataset.name}: frame columns differ from the silver columns of {dataset.table}: "
            f"missing {missing}, unexpected {unexpected}"
        )
    if PARTITION_COLUMN not in expected:
        raise ValueError(f"{dataset.name}: silver schema has no {PARTITION_COLUMN} column")
    df = dataset.conform(df)
    other_dates = (
        df.get_column(PARTITION_COLUMN)
        .filter(df.get_column(PARTITION_COLUMN).ne_missing(trade_date))
        .unique()
        .sort(nulls_last=True)
        .to_list()
    )
    if other_dates:
        raise ValueError(
            f"{dataset.name}: frame for {trade_date} also holds {PARTITION_COLUMN} "
            f"{[str(d) for d in other_dates[:5]]}; load one trade date at a time"
        )
    null_counts = df.null_count().row(0, named=True)
    not_nullable = [c.name for c in dataset.columns if not c.nullable and null_counts[c.name]]
    if not_nullable:
        raise ValueError(
            f"{dataset.name}: nulls in non-nullable column(s) {not_nullable} for {trade_date}"
        )
    return df


def load(
    client: Client,
    dataset: Dataset,
    trade_date: dt.date | str,
    df: pl.DataFrame,
    database: str = "nse",
) -> dict:
    """Make `df`, the silver partition of `trade_date`, what the dataset's table holds for it.

    A table partitioned by trade date has that partition replaced whole (an empty frame empties
    it); one partitioned by year (`Dataset.warehouse_partition`) has each year the frame covers
    replaced. Returns `{table, trade_date, rows, partitions}`.
    """
    trade_date = iso_date(trade_date)
    table = f"{identifier(database)}.{identifier(dataset.table)}"
    if dataset.warehouse_partition == "year":
        df = dataset.conform(df)
        column = next(c.name for c in dataset.columns if c.dtype == pl.Date)
        by_year = df.with_columns(_year=pl.col(column).dt.year()).partition_by(
            "_year", as_dict=True
        )
        for (year,), rows in sorted(by_year.items()):
            replace_partition(client, table, year, rows.drop("_year"))
        partitions = [str(year) for (year,) in sorted(by_year)]
    else:
        df = conform_for_load(dataset, trade_date, df)
        replace_partition(client, table, trade_date, df)
        partitions = [trade_date.isoformat()]
    stats = {
        "table": table,
        "trade_date": trade_date.isoformat(),
        "rows": df.height,
        "partitions": partitions,
    }
    log.info("loaded %(rows)s rows into %(table)s for %(trade_date)s", stats)
    return stats


def replace_partition(client: Client, table: str, partition: Any, df: pl.DataFrame) -> None:
    """Make `df` the whole content of one partition of `table` (`database.name`).

    `partition` is the value of the table's partition key (a trade date, or a year for tables
    partitioned by `toYear(date)`); `df` must hold only rows of that partition.
    """
    replace_partitions(client, table, {partition: df})


def replace_partitions(client: Client, table: str, frames: Mapping[Any, pl.DataFrame]) -> None:
    """Make each frame the whole content of its partition of `table`, through one staging table
    filled by one insert: loading several days costs one round of inserting, not one per day.

    Each partition is swapped in with `REPLACE PARTITION ... FROM stage`, atomic per partition;
    an empty frame empties its partition (`DROP PARTITION`: current releases refuse to replace
    from an empty source, `allow_replace_partition_from_empty_source`).
    """
    table = qualified_name(table)
    for partition in frames:
        # Parameters would quote anything safely; a value that is not a partition is refused
        # before a staging table is filled for it.
        if isinstance(partition, bool | dt.datetime) or not isinstance(partition, dt.date | int):
            raise ValueError(f"{table}: a partition is a trade date or a year, not {partition!r}")
    filled = [df for df in frames.values() if not df.is_empty()]
    if filled:
        _, tokens = _drop_stale_stages(client, table)
        epoch = server_epoch(client, table.partition(".")[0], tokens)
        stage = f"{table}__stage_{int(time.time())}_{epoch}_{uuid.uuid4().hex[:8]}"
        client.execute(f"CREATE TABLE {stage} AS {table}")
        try:
            insert_columns(client, stage, pl.concat(filled) if len(filled) > 1 else filled[0])
            for partition, df in frames.items():
                if not df.is_empty():
                    client.execute(
                        f"ALTER TABLE {table} REPLACE PARTITION %(partition)s FROM {stage}",
                        {"partition": partition},
                    )
        except BaseException:
            _drop_stage_quietly(client, stage)
            raise
        client.execute(f"DROP TABLE IF EXISTS {stage}")
    for partition, df in frames.items():
        if df.is_empty():
            client.execute(
                f"ALTER TABLE {table} DROP PARTITION %(partition)s", {"partition": partition}
            )


def load_days(
    client: Client, dataset: Dataset, frames: Mapping[dt.date, pl.DataFrame], database: str = "nse"
) -> dict[dt.date, int]:
    """Make each frame, a silver partition, what the dataset's table holds for its trade date,
    all through one staging table; rows per date. For tables partitioned by trade date."""
    if dataset.warehouse_partition != "date":
        raise ValueError(f"{dataset.name} is not partitioned by trade date; load it with `load`")
    conformed = {
        iso_date(day): conform_for_load(dataset, iso_date(day), df) for day, df in frames.items()
    }
    table = f"{identifier(database)}.{identifier(dataset.table)}"
    replace_partitions(client, table, conformed)
    log.info("loaded %d days into %s", len(conformed), table)
    return {day: df.height for day, df in conformed.items()}


def insert_new(
    client: Client, table: str, frame: pl.DataFrame, key: list[str], database: str = "nse"
) -> int:
    """Insert the rows of `frame` whose `key` values `table` does not hold yet; rows inserted.

    For tables that grow by snapshots within a day (`option_chain`): a snapshot loaded twice
    stays one copy. The lookup is bounded to the frame's trade dates.
    """
    if frame.is_empty():
        return 0
    target = f"{identifier(database)}.{identifier(table)}"
    held = query_polars(
        client,
        f"SELECT DISTINCT {', '.join(map(identifier, key))} FROM {target} "  # noqa: S608 — names pass identifier(), values are parameters
        "WHERE trade_date IN %(dates)s",
        {"dates": tuple(frame["trade_date"].unique().to_list())},
    )
    new = frame.join(held.cast(frame.select(key).schema), on=key, how="anti")
    return insert_columns(client, target, new)


def server_epoch(client: Client, database: str, tokens: set[str] | None = None) -> str:
    """The token of the server's current start in `database.server_epoch`, made by the first
    call since the start. The table's Memory engine loses its rows when the server stops, so a
    token names one start; two first calls at once may each add one, and both name it.
    `tokens`: the table's rows, when the caller has just read them."""
    database = identifier(database)
    tokens = _epoch_tokens(client, database) if tokens is None else tokens
    if tokens:
        return min(tokens)
    token = uuid.uuid4().hex[:8]
    client.execute(f"INSERT INTO {database}.server_epoch (token) VALUES", [{"token": token}])
    return token


def _epoch_tokens(client: Client, database: str) -> set[str]:
    sql = f"SELECT token FROM {identifier(database)}.server_epoch"  # noqa: S608 — a checked name
    return {token for (token,) in client.execute(sql)}


def drop_stale_stages(client: Client, where: str, older_than: float | None = None) -> list[str]:
    """Drop the staging tables that loads which died left behind, of one table (`where` is
    `database.name`) or of every table of a database (`where` is `database`); their names.

    A stage is stale once its name's time is `older_than` seconds old (`STALE_STAGE_SECONDS`
    by default), or when its name's epoch token is not the server's current one
    (`server_epoch`): it was made before the server last started, a restart cuts every
    connection, so the load that made it has failed, however recent it is. No clock is
    compared for that. Every load of a table calls this for its table; housekeeping may call
    it for a database.
    """
    return _drop_stale_stages(client, where, older_than)[0]


def _drop_stale_stages(
    client: Client, where: str, older_than: float | None = None
) -> tuple[list[str], set[str]]:
    """`drop_stale_stages`, and the epoch tokens it read. They are read after the tables are
    listed: a stage is made after its token is written, so every listed stage's live token is
    among them."""
    database, _, table = qualified_name(where).partition(".")
    older_than = STALE_STAGE_SECONDS if older_than is None else older_than
    names = client.execute(
        "SELECT name FROM system.tables WHERE database = %(db)s AND startsWith(name, %(prefix)s)",
        {"db": database, "prefix": f"{table}__stage_" if table else ""},
    )
    current = _epoch_tokens(client, database)
    cutoff = time.time() - older_than
    stale = [
        name
        for (name,) in names
        if (m := _STAGE.search(name))
        and (int(m.group(1)) < cutoff or (m.group(2) is not None and m.group(2) not in current))
    ]
    for stage in stale:
        log.warning("dropping staging table %s.%s left by a load that died", database, stage)
        client.execute(f"DROP TABLE IF EXISTS {database}.{identifier(stage)}")
    return stale, current


def _drop_stage_quietly(client: Client, stage: str) -> None:
    """Drop a staging table while another error is on its way up; never hide that error."""
    try:
        client.execute(f"DROP TABLE IF EXISTS {stage}")
    except Exception:
        log.warning("could not drop staging table %s; drop it by hand", stage, exc_info=True)


# ---- queries -------------------------------------------------------------------------------
_POLARS_TYPES: dict[str, pl.DataType] = {
    "UInt8": pl.UInt8(),
    "UInt16": pl.UInt16(),
    "UInt32": pl.UInt32(),
    "UInt64": pl.UInt64(),
    "Int8": pl.Int8(),
    "Int16": pl.Int16(),
    "Int32": pl.Int32(),
    "Int64": pl.Int64(),
    "Float32": pl.Float32(),
    "Float64": pl.Float64(),
    "String": pl.String(),
    "Date": pl.Date(),
    "DateTime": pl.Datetime("us"),
    "Bool": pl.Boolean(),
}


def polars_type(ch_type: str) -> pl.DataType | None:
    """The polars type for a ClickHouse column type; None lets polars infer it from the values."""
    for wrapper in ("Nullable(", "LowCardinality("):
        if ch_type.startswith(wrapper):
            return polars_type(ch_type[len(wrapper) : -1])
    if ch_type.startswith(("FixedString(", "Enum8(", "Enum16(")):
        return pl.String()
    if ch_type.startswith("DateTime("):
        return pl.Datetime("us", ch_type[len("DateTime(") : -1].strip("'") or None)
    if ch_type.startswith("Array("):
        inner = polars_type(ch_type[len("Array(") : -1])
        return pl.List(inner) if inner is not None else None
    return _POLARS_TYPES.get(ch_type)


def query_polars(client: Client, sql: str, params: dict | None = None) -> pl.DataFrame:
    """Run a SELECT and return its result as a polars DataFrame typed from ClickHouse's types."""
    data, types = client.execute(sql, params, with_column_types=True, columnar=True)
    if not data:
        data = [[] for _ in types]
    return pl.DataFrame(
        [
            pl.Series(name, values, dtype=polars_type(ch_type))
            for values, (name, ch_type) in zip(data, types, strict=True)
        ]
    )
