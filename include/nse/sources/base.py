"""The face every dataset module shows: where its file is, how to parse it, what silver holds.

Adding a dataset means one module defining `DATASET = Dataset(...)`, its DDL in `include/sql/`,
and one DAG file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import polars as pl

if TYPE_CHECKING:
    from include.nse.sources.checks import Check


@dataclass(frozen=True)
class Column:
    """One silver column: its polars type, its ClickHouse type, and what it means."""

    name: str
    dtype: pl.DataType
    ch_type: str
    doc: str = ""

    @property
    def nullable(self) -> bool:
        return self.ch_type.startswith("Nullable(")


@dataclass(frozen=True)
class Dataset:
    name: str
    #: ClickHouse table in the `nse` database; one partition per trade date.
    table: str
    columns: tuple[Column, ...]
    #: Natural key: at most one silver row per key value.
    key: tuple[str, ...]
    #: Candidate remote paths for a trade date, in the order to try them.
    remote_paths: Callable[[dt.date], list[str]]
    #: Raw bytes (as NSE served them) and the file's name -> silver DataFrame.
    parse: Callable[[bytes, str], pl.DataFrame]
    host: Literal["archive", "api"] = "archive"
    #: What NSE publishes: used to refuse an HTML page served with status 200.
    expected_kinds: tuple[str, ...] = ("zip", "csv")
    doc: str = ""
    extra: dict = field(default_factory=dict)
    #: For a file NSE overwrites daily at one path (today's `bulk.csv`): raw bytes and file name
    #: -> the trade date it holds, None when its rows do not say. None for files named by date.
    file_date: Callable[[bytes, str], dt.date | None] | None = None
    #: The API request (path, params) serving one past trade date, for a dataset whose archive
    #: file only holds the latest day.
    history: Callable[[dt.date], tuple[str, dict[str, str]]] | None = None
    #: Expectations on each silver partition (`include/nse/sources/checks.py`), run before the
    #: load; the key's not-null and uniqueness checks are always added.
    checks: tuple[Check, ...] = ()

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Select and cast `df` to exactly the silver schema, in order."""
        missing = [c for c in self.column_names if c not in df.columns]
        if missing:
            raise ValueError(f"{self.name}: parsed frame lacks silver columns {missing}")
        return df.select([pl.col(c.name).cast(c.dtype, strict=True) for c in self.columns])
