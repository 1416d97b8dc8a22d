"""Years of history: trading days in chunks, every day through the gated chain, stages overlapped.

A user's first act is loading years of history. `plan` cuts a range into chunks (months, weeks or
single days) of each dataset's trading days; `load_days` loads one dataset's days the way a DAG
run or `ingest` loads one: fetched into bronze, parsed into silver, checked by the quality gate,
loaded into ClickHouse. Each day's outcome goes to ClickHouse's `backfill_days`: loaded, skipped
(already loaded), not_published, or failed with the error; a bad day is recorded and the others
go on.

Resuming: a day whose latest outcome is loaded (or skipped), whose bronze files still have the
digests recorded then, and whose rows in ClickHouse still number what was recorded, is skipped
without a request, unless `reload`. So a rerun after a failure fetches only what failed.

Speed comes from overlap, not from a shorter chain: three stages run at once on their own
threads, joined by small queues so that memory stays bounded by a few days whatever the range:
fetching (network-bound, within NSE's rate limit, one session for the whole run), parsing with
silver and the gate (CPU: polars releases the GIL), and loading, which takes the days that
passed in batches: one staging table per batch, one Native insert of all its days' rows, each
day's partition replaced from it (so a rerun never duplicates), one insert of the batch's
outcomes and validations.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import polars as pl

from include.nse import pipeline, quality, warehouse
from include.nse.errors import NotPublished, NSEError
from include.nse.sources.base import Dataset, Request

log = logging.getLogger(__name__)

CHUNKS = ("month", "week", "day")
STATUSES = ("loaded", "skipped", "not_published", "failed")
#: Days fetched ahead of parsing, and days parsed ahead of loading: what bounds memory.
FETCH_AHEAD = 4
PARSE_AHEAD = 12
#: A batch is loaded when it holds this many days or rows, or when no day is left.
BATCH_DAYS = 10
BATCH_ROWS = 500_000
LEDGER = "backfill_days"


@dataclass(frozen=True)
class Chunk:
    """A stretch of the range, and each dataset's trading days in it."""

    label: str
    first: dt.date
    last: dt.date
    days: dict[str, list[dt.date]]

    def to_dict(self) -> dict:
        return {
            "label": self.label,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
            "days": {name: [d.isoformat() for d in days] for name, days in self.days.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Chunk:
        return cls(
            data["label"],
            dt.date.fromisoformat(data["first"]),
            dt.date.fromisoformat(data["last"]),
            {n: [dt.date.fromisoformat(d) for d in days] for n, days in data["days"].items()},
        )


@dataclass
class Outcome:
    """What happened to one dataset's day."""

    dataset: str
    trade_date: dt.date
    status: str
    rows: int | None = None
    seconds: float = 0.0
    error: str | None = None
    bronze: str = ""
    chunk: str = ""
    #: Where a loaded day's files are: bronze and silver paths.
    files: dict = field(default_factory=dict)
    attempt: int = field(default_factory=lambda: time.time_ns() // 1000)

    def to_dict(self) -> dict:
        return asdict(self) | {"trade_date": self.trade_date.isoformat()}


def _chunk_key(day: dt.date, chunk: str) -> str:
    if chunk == "month":
        return f"{day:%Y-%m}"
    if chunk == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def plan(
    start: dt.date, end: dt.date, datasets: Iterable[str], chunk: str = "month", calendar=None
) -> list[Chunk]:
    """The range cut into chunks of the calendar (`month`, `week` or `day`), each listing every
    dataset's trading days (its segment's) in it; chunks with no trading day are left out."""
    from include.nse import catalog
    from include.nse.calendar import default_calendar

    if chunk not in CHUNKS:
        raise ValueError(f"chunk must be one of {', '.join(CHUNKS)}, not {chunk!r}")
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    calendar = calendar or default_calendar()
    by_key: dict[str, dict[str, list[dt.date]]] = {}
    for name in datasets:
        segment = catalog.shape(name).segment
        if segment is None or catalog.shape(name).per_item:
            raise ValueError(f"{name} is not published per trading day; it has no history to load")
        for day in calendar.trading_days(start, end, segment):
            by_key.setdefault(_chunk_key(day, chunk), {}).setdefault(name, []).append(day)
    return [
        Chunk(
            key,
            min(d for ds in days.values() for d in ds),
            max(d for ds in days.values() for d in ds),
            days,
        )
        for key, days in sorted(by_key.items())
    ]


# ---- the ledger --------------------------------------------------------------------------------
def _bronze_digests(ctx: pipeline.Context, dataset: Dataset, day: dt.date) -> str:
    """The date's current bronze files, as `part:sha256` pairs: what a load was made from."""
    return ",".join(
        sorted(f"{r.part or ''}:{r.sha256}" for r in ctx.lake.current_bronze(dataset.name, day))
    )


def loaded_before(client, database: str, dataset: Dataset, days: list[dt.date]) -> dict:
    """Day -> (bronze digests, rows) of the days whose latest outcome is loaded or skipped and
    whose rows in the table still number what was recorded."""
    if not days:
        return {}
    db = warehouse.identifier(database)
    latest = client.execute(
        f"SELECT trade_date, argMax(status, attempt), argMax(bronze, attempt), "  # noqa: S608 — names pass identifier(), values are parameters
        f"argMax(rows, attempt) FROM {db}.{LEDGER} "
        "WHERE dataset = %(dataset)s AND trade_date IN %(days)s GROUP BY trade_date",
        {"dataset": dataset.name, "days": tuple(days)},
    )
    counts = dict(
        client.execute(
            f"SELECT trade_date, count() FROM {db}.{warehouse.identifier(dataset.table)} "  # noqa: S608 — names pass identifier(), values are parameters
            "WHERE trade_date IN %(days)s GROUP BY trade_date",
            {"days": tuple(days)},
        )
    )
    return {
        day: (bronze, rows)
        for day, status, bronze, rows in latest
        if status in ("loaded", "skipped") and counts.get(day, 0) == rows
    }


def record(client, database: str, outcomes: list[Outcome], run_id: str) -> None:
    """Add the outcomes to the ledger in one insert."""
    if not outcomes:
        return
    rows = pl.DataFrame(
        {
            "dataset": [o.dataset for o in outcomes],
            "trade_date": [o.trade_date for o in outcomes],
            "status": [o.status for o in outcomes],
            "rows": [o.rows for o in outcomes],
            "seconds": [float(o.seconds) for o in outcomes],
            "error": [o.error for o in outcomes],
            "bronze": [o.bronze for o in outcomes],
            "run_id": [run_id] * len(outcomes),
            "chunk": [o.chunk for o in outcomes],
            "attempt": [o.attempt for o in outcomes],
        },
        schema_overrides={"rows": pl.UInt64, "attempt": pl.UInt64, "error": pl.String},
    )
    warehouse.insert_columns(client, f"{warehouse.identifier(database)}.{LEDGER}", rows)


# ---- loading -----------------------------------------------------------------------------------
_DONE = object()


class _Stop(Exception):
    """Another stage failed: this one stops."""


def load_days(
    ctx: pipeline.Context,
    dataset: Dataset,
    days: list[dt.date],
    *,
    items: tuple[str, ...] = (),
    reload: bool = False,
    chunk: str = "",
    on_outcome: Callable[[Outcome], None] | None = None,
    batch_days: int = BATCH_DAYS,
    batch_rows: int = BATCH_ROWS,
) -> list[Outcome]:
    """Load `days` of `dataset` through the gated chain, stages overlapped; every day's outcome,
    in day order. A day's own failure (not published, unreadable, failing the gate, the network
    giving up) is its outcome; a failure of the warehouse stops the run and is raised, after
    recording what was done."""
    run = _Run(ctx, dataset, chunk, on_outcome, items)
    with ctx.database() as (client, database):
        already = {} if reload else loaded_before(client, database, dataset, days)
        skipped = []
        for day in days:
            prior = already.get(day)
            if prior is not None and prior[0] == _bronze_digests(ctx, dataset, day):
                skipped.append(
                    Outcome(
                        dataset.name, day, "skipped", rows=prior[1], bronze=prior[0], chunk=chunk
                    )
                )
        record(client, database, skipped, ctx.run_id)
    for outcome in skipped:
        run.done(outcome)
    todo = [day for day in days if day not in {o.trade_date for o in skipped}]
    if todo:
        run.overlapped(todo, batch_days, batch_rows)
    return sorted(run.outcomes, key=lambda o: o.trade_date)


class _Run:
    """One `load_days` call: its three stages and what they found."""

    def __init__(self, ctx, dataset: Dataset, chunk: str, on_outcome, items=()) -> None:
        self.ctx, self.dataset, self.chunk, self.items = ctx, dataset, chunk, tuple(items)
        self.on_outcome = on_outcome
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._failure: BaseException | None = None

    def done(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _put(self, channel: queue.Queue, item) -> None:
        while True:
            if self._failure is not None:
                raise _Stop
            try:
                channel.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _stage(self, work: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                work()
            except _Stop:
                pass
            except BaseException as e:  # the warehouse or the lake failing: stop every stage
                with self._lock:
                    self._failure = self._failure or e

        thread = threading.Thread(target=guarded, name=f"history-{self.dataset.name}", daemon=True)
        thread.start()
        return thread

    def overlapped(self, days: list[dt.date], batch_days: int, batch_rows: int) -> None:
        fetched: queue.Queue = queue.Queue(FETCH_AHEAD)
        parsed: queue.Queue = queue.Queue(PARSE_AHEAD)
        threads = [
            self._stage(lambda: self._fetch(days, fetched)),
            self._stage(lambda: self._parse(fetched, parsed)),
            self._stage(lambda: self._load(parsed, batch_days, batch_rows)),
        ]
        for thread in threads:
            thread.join()
        if self._failure is not None:
            raise self._failure

    def _files(self, day: dt.date) -> dict:
        return _files_of(self.ctx, self.dataset, day)

    def _failed(self, day: dt.date, started: float, error: BaseException) -> Outcome:
        status = "not_published" if isinstance(error, NotPublished) else "failed"
        return Outcome(
            self.dataset.name,
            day,
            status,
            seconds=round(time.monotonic() - started, 3),
            error=str(error),
            chunk=self.chunk,
        )

    def _fetch(self, days: list[dt.date], fetched: queue.Queue) -> None:
        try:
            with self.ctx.client() as client:
                for day in days:
                    started = time.monotonic()
                    try:
                        pipeline.fetch(
                            self.ctx, self.dataset, Request(day, self.items), client=client
                        )
                        self._put(fetched, (day, started, None))
                    except NSEError as e:
                        self._put(fetched, (day, started, e))
        finally:
            self._put(fetched, _DONE)

    def _parse(self, fetched: queue.Queue, parsed: queue.Queue) -> None:
        try:
            while (item := fetched.get()) is not _DONE:
                day, started, error = item
                if error is None:
                    try:
                        frame, _ = pipeline.to_silver(self.ctx, self.dataset, day)
                        report = quality.validate_partition(self.ctx.lake, self.dataset, day, frame)
                    except NSEError as e:
                        error = e
                if error is not None:
                    self._put(parsed, (day, started, None, None, error))
                elif not report.passed:
                    self._put(parsed, (day, started, None, report, report.error()))
                else:
                    self._put(parsed, (day, started, frame, report, None))
        finally:
            self._put(parsed, _DONE)

    def _load(self, parsed: queue.Queue, batch_days: int, batch_rows: int) -> None:
        batch: list[tuple] = []
        with self.ctx.database() as (client, database):
            while True:
                item = parsed.get()
                if item is not _DONE:
                    batch.append(item)
                rows = sum(entry[2].height for entry in batch if entry[2] is not None)
                if item is _DONE or len(batch) >= batch_days or rows >= batch_rows:
                    self._load_batch(client, database, batch)
                    batch = []
                if item is _DONE:
                    return

    def _load_batch(self, client, database: str, batch: list[tuple]) -> None:
        if not batch:
            return
        frames = {day: frame for day, _, frame, _, error in batch if error is None}
        loaded = warehouse.load_days(client, self.dataset, frames, database) if frames else {}
        reports = [report for _, _, _, report, _ in batch if report is not None]
        quality.record(client, reports, database, run_id=self.ctx.run_id)
        outcomes = [
            self._failed(day, started, error)
            if error is not None
            else Outcome(
                self.dataset.name,
                day,
                "loaded",
                rows=loaded[day],
                seconds=round(time.monotonic() - started, 3),
                bronze=_bronze_digests(self.ctx, self.dataset, day),
                chunk=self.chunk,
                files=self._files(day),
            )
            for day, started, _, _, error in batch
        ]
        record(client, database, outcomes, self.ctx.run_id)
        for outcome in outcomes:
            self.done(outcome)


def _files_of(ctx, dataset: Dataset, day: dt.date) -> dict:
    return {
        "bronze": [r.path for r in ctx.lake.current_bronze(dataset.name, day)],
        "silver": [str(ctx.lake.silver_path(dataset.name, day))],
    }


def load_chunk(
    ctx: pipeline.Context,
    chunk: Chunk,
    *,
    reload: bool = False,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Every dataset's days of the chunk, one dataset after another."""
    from include.nse import sources

    outcomes = []
    for name, days in chunk.days.items():
        outcomes += load_days(
            ctx, sources.get(name), days, reload=reload, chunk=chunk.label, on_outcome=on_outcome
        )
    return outcomes


def summarize(outcomes: Iterable[Outcome | dict]) -> dict:
    """Counts by status, rows loaded, and the days that failed with their errors."""
    outcomes = [o if isinstance(o, dict) else o.to_dict() for o in outcomes]
    by_status = {status: 0 for status in STATUSES}
    for outcome in outcomes:
        by_status[outcome["status"]] += 1
    return {
        "days": len(outcomes),
        **by_status,
        "rows": sum(o["rows"] or 0 for o in outcomes if o["status"] == "loaded"),
        "failed_days": [
            {"dataset": o["dataset"], "trade_date": o["trade_date"], "error": o["error"]}
            for o in outcomes
            if o["status"] == "failed"
        ],
    }
