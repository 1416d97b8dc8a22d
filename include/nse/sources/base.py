"""The face every dataset shows: what NSE publishes, how to read it, what silver holds.

Every dataset runs the same chain (`include/nse/pipeline.py`): fetch -> bronze -> parse ->
silver -> quality gate -> load. What differs is how NSE publishes it, and that is the dataset's
`Publication`:

- `DailyFile`: one archive file per trade date, named by the date (the bhavcopies);
- `LatestDayFile`: one archive file holding only NSE's latest day, with every past day from the
  API (bulk and block deals);
- `ApiDocument`: one API answer per fetch, filed under the day it was fetched (holidays);
- several files per date (`index_constituents.IndexLists`, one per index) and per-refresh lists
  of snapshots (`option_chain.Snapshots`, one run per few minutes for a list of underlyings)
  live next to their datasets.

A publication fetches by handing each response to `keep`, which puts its bytes in bronze before
anything reads them. What is truly particular to a dataset after the common chain (membership
history, the calendar file, chain analytics) is one of its `after` steps.

Adding a dataset means one module defining `DATASET = Dataset(...)`, its DDL in `include/sql/`,
and one line in a DAG file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import polars as pl

from include.nse.dates import http_date_ist
from include.nse.errors import InHistory, NotPublished, ParseError

if TYPE_CHECKING:
    from include.nse.client import Fetched, NSEClient
    from include.nse.lake import BronzeRecord
    from include.nse.sources.checks import Check

Host = Literal["archive", "api"]


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


class Keep(Protocol):
    """Puts a response's bytes in bronze (under `file_name`, default the URL's, and a part
    folder when given) and returns the record of where they went."""

    def __call__(
        self, response: Fetched, file_name: str | None = None, part: str | None = None
    ) -> BronzeRecord: ...


@contextmanager
def kept_if_refused(
    keep: Keep, response: Fetched, file_name: str | None = None, part: str | None = None
) -> Iterator[None]:
    """For a fetch that reads a response before it knows whether to keep it (which date a
    latest-day file holds): a response the parser refuses is kept in bronze all the same, then
    the error goes on, so the bytes NSE sent are there to inspect."""
    try:
        yield
    except ParseError:
        keep(response, file_name, part)
        raise


@dataclass(frozen=True)
class Request:
    """What one fetch is for: a date, and for per-refresh lists, the items (underlyings)."""

    trade_date: dt.date
    items: tuple[str, ...] = ()
    #: False: a latest-day file that has moved past the date raises InHistory instead of asking
    #: the API, for a caller that calls the API on its own terms (Airflow does, in its pool).
    history: bool = True


class Publication:
    """How NSE publishes a dataset: which requests fetch a request's files."""

    #: The host most requests go to, which decides the pool a fetch runs in.
    host: ClassVar[Host] = "archive"
    #: True when one run covers a list of items (snapshots) rather than a whole trade date.
    per_item: ClassVar[bool] = False
    #: The name of the list of items (indices, underlyings) a run may choose, when it takes one.
    items_param: ClassVar[str | None] = None

    def default_items(self, lake) -> list[str]:
        """The items a run covers when it names none."""
        return []

    def fetch(self, client: NSEClient, request: Request, keep: Keep) -> dict:
        """Fetch the request's files, `keep` each; raise NotPublished when there are none.
        Returns what the fetch found out beyond the files (e.g. which index came from where)."""
        raise NotImplementedError

    def fetch_history(self, client: NSEClient, request: Request, keep: Keep) -> dict:
        raise ValueError(f"{type(self).__name__} has no API request for past dates")

    def stamp(self, frame: pl.DataFrame, record: BronzeRecord, trade_date: dt.date) -> pl.DataFrame:
        """A parsed file's rows, completed with what only its fetch knows; as is by default."""
        return frame


@dataclass(frozen=True)
class DailyFile(Publication):
    """One archive file per trade date, named by the date; the first candidate published wins."""

    paths: Callable[[dt.date], list[str]]
    expect: tuple[str, ...] = ("zip", "csv")

    def fetch(self, client: NSEClient, request: Request, keep: Keep) -> dict:
        missing: list[NotPublished] = []
        for path in self.paths(request.trade_date):
            try:
                response = client.get_archive(path, expect=self.expect)
            except NotPublished as e:
                missing.append(e)
                continue
            keep(response)
            return {"url": response.url}
        # Blocked only when every candidate was: an old format's 404 beside a block page is not.
        raise NotPublished(
            "; ".join(f"{e.url} ({e.reason})" for e in missing),
            f"not published for {request.trade_date}",
            blocked=bool(missing) and all(e.blocked for e in missing),
        )


@dataclass(frozen=True)
class LatestDayFile(Publication):
    """One archive file holding NSE's latest day only (today's `bulk.csv`), and an API request
    for any past day.

    The file must hold the trade date: an earlier day means the date is not published yet, a
    later one that it is history now. A file whose rows carry no date (a day without deals) is
    dated by its Last-Modified day in Mumbai, and taken for history when it has none.
    """

    path: str
    #: Raw bytes and file name -> the trade date the file holds; None when its rows do not say.
    holds: Callable[[bytes, str], dt.date | None]
    #: A past trade date -> the API request (path, params) serving it.
    history_request: Callable[[dt.date], tuple[str, dict[str, str]]]
    expect: tuple[str, ...] = ("csv",)

    def fetch(self, client: NSEClient, request: Request, keep: Keep) -> dict:
        response = client.get_archive(self.path, expect=self.expect)
        with kept_if_refused(keep, response):
            held = self.holds(response.content, response.file_name)
        held = held or http_date_ist(response.headers.get("last-modified"))
        day = request.trade_date
        if held is not None and held < day:
            raise NotPublished(response.url, f"it still holds {held}")
        if held != day:
            moved = InHistory(response.url, f"it holds {held or 'a day it does not name'}")
            if not request.history:
                raise moved
            return {"in_history": str(moved)} | self.fetch_history(client, request, keep)
        keep(response)
        return {"url": response.url}

    def fetch_history(self, client: NSEClient, request: Request, keep: Keep) -> dict:
        path, params = self.history_request(request.trade_date)
        response = client.get_api(path, params)
        keep(response, f"{response.file_name}.json")
        return {"url": response.url, "source": "api"}


@dataclass(frozen=True)
class ApiDocument(Publication):
    """One API answer per fetch, filed under the day it was fetched (a list NSE keeps current)."""

    host: ClassVar[Host] = "api"
    path: str
    params: dict[str, str]
    file_name: str

    def fetch(self, client: NSEClient, request: Request, keep: Keep) -> dict:
        response = client.get_api(self.path, self.params)
        keep(response, self.file_name)
        return {"url": response.url}


@dataclass(frozen=True)
class Step:
    """Something particular to a dataset that runs after the common chain: a name (its task's
    id) and a function of the pipeline's context and the load's result."""

    name: str
    run: Callable[..., dict]
    doc: str = ""


@dataclass(frozen=True)
class Dataset:
    name: str
    #: ClickHouse table in the `nse` database.
    table: str
    columns: tuple[Column, ...]
    #: Natural key: at most one silver row per key value.
    key: tuple[str, ...]
    #: Raw bytes (as NSE served them) and the file's name -> silver DataFrame.
    parse: Callable[[bytes, str], pl.DataFrame]
    publication: Publication
    doc: str = ""
    #: Expectations on each silver partition (`include/nse/sources/checks.py`), run before the
    #: load; the key's not-null and uniqueness checks are always added.
    checks: tuple[Check, ...] = ()
    #: The trading-calendar segment whose trading days the dataset is published on; None for
    #: data that is not per trading day (holidays).
    segment: str | None = "CM"
    #: The column a silver partition's rows must all hold its date in; None when the partition
    #: is dated otherwise (the day a list was fetched).
    date_column: str | None = "trade_date"
    #: The warehouse partition of each row: the trade date (`PARTITION BY trade_date`), or the
    #: year of a date column (`PARTITION BY toYear(date)`).
    warehouse_partition: Literal["date", "year"] = "date"
    after: Sequence[Step] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def host(self) -> Host:
        return self.publication.host

    def conform(self, df: pl.DataFrame) -> pl.DataFrame:
        """Select and cast `df` to exactly the silver schema, in order."""
        missing = [c for c in self.column_names if c not in df.columns]
        if missing:
            raise ValueError(f"{self.name}: parsed frame lacks silver columns {missing}")
        return df.select([pl.col(c.name).cast(c.dtype, strict=True) for c in self.columns])
