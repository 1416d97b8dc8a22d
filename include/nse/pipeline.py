"""The one chain every dataset runs: fetch -> bronze -> parse -> silver -> quality gate -> load.

The command line, the DAGs, the history backfill and the benchmarks all call these functions,
so "every silver partition is checked before it reaches ClickHouse" holds wherever data is
loaded from. Each step takes a `Context` (settings, lake, warehouse, run id), the `Dataset` and
what the step before it returned, and returns a small dict of stats: paths in the lake, never
frames, so the steps can run in separate processes (Airflow tasks) or one after another
(`run`). How a dataset's files are fetched and what is particular after the load are the
dataset's own (`Dataset.publication`, `Dataset.after`); the sequence is this module's.

Outcomes a caller tells apart: `NotPublished` (nothing to load yet), `InHistory` (a latest-day
file has moved past the date; ask the API), `QualityError` (a critical expectation failed:
nothing was loaded, bronze and silver stay for inspection, the validation is recorded),
`ParseError` (the bytes are not what NSE publishes), `FetchError` (the network kept failing).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import polars as pl

from include.nse import quality, warehouse
from include.nse.config import Settings
from include.nse.errors import ParseError
from include.nse.lake import Lake, read_parquet
from include.nse.sources.base import Dataset, Request

log = logging.getLogger(__name__)


@dataclass
class Context:
    """What the steps need from outside the dataset: where NSE and the lake are, the warehouse
    (None for steps that do not touch it), and the run the work belongs to."""

    settings: Settings
    warehouse: warehouse.Warehouse | None = None
    run_id: str = ""
    #: The run's choices (an Airflow run's params): which underlyings to chart, for one.
    options: dict = field(default_factory=dict)

    @property
    def lake(self) -> Lake:
        return Lake(self.settings.lake_root)

    @contextmanager
    def client(self) -> Iterator:
        from include.nse.client import NSEClient

        with NSEClient(self.settings) as client:
            yield client

    @contextmanager
    def database(self) -> Iterator[tuple[object, str]]:
        """A ClickHouse client and the database name, the schema migrated first."""
        if self.warehouse is None:
            raise RuntimeError("this step needs a warehouse; the context has none")
        with self.warehouse.session() as client:
            yield client, self.warehouse.database


def _seconds(started: float) -> float:
    return round(time.monotonic() - started, 3)


# ---- fetch -> bronze -------------------------------------------------------------------------
def fetch(
    ctx: Context, dataset: Dataset, request: Request, *, history: bool = False, client=None
) -> dict:
    """Fetch the request's files into bronze (from NSE's API for a past date when `history`),
    with `client` when given (a run of many days keeps one session), else a new one.

    Raises NotPublished when NSE has nothing for the request yet, and InHistory when
    `request.history` is False and a latest-day file has moved past the date.
    """
    if client is None:
        with ctx.client() as client:
            return fetch(ctx, dataset, request, history=history, client=client)
    started = time.monotonic()
    kept = []
    with ctx.lake.bronze_batch() as bronze:

        def keep(response, file_name=None, part=None):
            record = bronze.write(
                dataset.name,
                request.trade_date,
                file_name or response.file_name,
                response.content,
                url=response.url,
                status=response.status,
                content_type=response.content_type,
                headers=response.headers,
                fetched_at=response.fetched_at,
                part=part,
            )
            kept.append(record)
            return bronze.written(record)

        publication = dataset.publication
        bounded = client.for_dataset(dataset.name)
        found = (publication.fetch_history if history else publication.fetch)(
            bounded, request, keep
        )
    return {
        "dataset": dataset.name,
        "trade_date": request.trade_date.isoformat(),
        "files": [
            {"path": r.path, "url": r.url, "sha256": r.sha256, "bytes": r.size, "part": r.part}
            for r in kept
        ],
        "bytes": sum(r.size for r in kept),
        "seconds": _seconds(started),
        **found,
    }


# ---- bronze -> silver ------------------------------------------------------------------------
def parse_file(
    dataset: Dataset, raw: bytes, file_name: str, trade_date: dt.date | None = None
) -> pl.DataFrame:
    """Parse one raw file into silver form, checking it holds only the expected trade date."""
    df = dataset.parse(raw, file_name)
    if trade_date is not None:
        check_dates(dataset, df, trade_date, file_name)
    return df


def check_dates(dataset: Dataset, df: pl.DataFrame, trade_date: dt.date, file_name: str) -> None:
    column = dataset.date_column
    if column is None or column not in df.columns or df.is_empty():
        return
    found = df[column].unique().sort(nulls_last=True).to_list()
    if found != [trade_date]:
        raise ParseError(
            file_name,
            f"holds trade dates {[str(d) for d in found]}, expected {trade_date}",
            column=column,
        )


def parse(ctx: Context, dataset: Dataset, trade_date: dt.date, fetched: dict | None = None) -> dict:
    """The date's bronze files (the latest fetch of each) into its silver partition, replaced
    whole; a per-refresh dataset parses the files `fetched` names into new silver parts."""
    if dataset.publication.per_item:
        return dataset.publication.to_silver(ctx, dataset, fetched or {})
    return to_silver(ctx, dataset, trade_date)[1]


def to_silver(ctx: Context, dataset: Dataset, trade_date: dt.date) -> tuple[pl.DataFrame, dict]:
    """`parse` for a date partition: the silver frame written, and the step's stats."""
    started = time.monotonic()
    records = ctx.lake.current_bronze(dataset.name, trade_date)
    if not records:
        raise FileNotFoundError(
            f"no bronze file for {dataset.name} on {trade_date} in "
            f"{ctx.lake.bronze_dir(dataset.name, trade_date)}; fetch it first"
        )
    frames = [
        dataset.publication.stamp(
            parse_file(dataset, record.read(), record.file_name), record, trade_date
        )
        for record in records
    ]
    frame = dataset.conform(pl.concat(frames) if len(frames) > 1 else frames[0])
    check_dates(dataset, frame, trade_date, ", ".join(r.file_name for r in records))
    if len(frames) > 1:
        _require_one_row_per_key(dataset, frame, records)
    path = ctx.lake.write_silver(dataset.name, trade_date, frame)
    return frame, {
        "dataset": dataset.name,
        "trade_date": trade_date.isoformat(),
        "silver": [str(path)],
        "rows": frame.height,
        "bytes": path.stat().st_size,
        "seconds": _seconds(started),
    }


def _require_one_row_per_key(dataset: Dataset, frame: pl.DataFrame, records) -> None:
    """Files of one date must not repeat each other's rows (each is unique on its own)."""
    repeated = frame.filter(pl.struct(list(dataset.key)).is_duplicated())
    if repeated.height:
        key = {k: repeated[k][0] for k in dataset.key}
        raise ParseError(
            ", ".join(r.file_name for r in records), f"two files hold the row with key {key}"
        )


# ---- the gate --------------------------------------------------------------------------------
def validate(ctx: Context, dataset: Dataset, parsed: dict) -> dict:
    """Check what `parse` wrote against the dataset's expectations; record the result in the lake
    and the warehouse; raise QualityError when a critical expectation failed."""
    started = time.monotonic()
    if dataset.publication.per_item:
        reports = dataset.publication.validate_parts(ctx, dataset, parsed["silver"])
    else:
        day = dt.date.fromisoformat(parsed["trade_date"])
        reports = [quality.validate_partition(ctx.lake, dataset, day)]
    if ctx.warehouse is not None:
        with ctx.database() as (client, database):
            quality.record(client, reports, database, run_id=ctx.run_id)
    failed = [report for report in reports if not report.passed]
    if failed:
        raise failed[0].error()
    rows = sum(report.rows for report in reports)
    return {
        "dataset": dataset.name,
        "trade_date": parsed.get("trade_date"),
        "silver": parsed["silver"],
        "rows": rows,
        "expectations": sum(len(r.outcomes) for r in reports),
        "warnings": [w.describe() for r in reports for w in r.warnings],
        "pass_rate": min((r.pass_rate for r in reports), default=1.0),
        "artifacts": [r.path for r in reports if r.path],
        "seconds": _seconds(started),
    }


# ---- silver -> warehouse ---------------------------------------------------------------------
def load(ctx: Context, dataset: Dataset, validated: dict) -> dict:
    """Make the warehouse hold what the gate passed: the date's partition (or years) replaced
    whole, or a per-refresh dataset's new snapshots added."""
    started = time.monotonic()
    with ctx.database() as (client, database):
        if dataset.publication.per_item:
            stats = dataset.publication.load_parts(client, database, dataset, validated["silver"])
        else:
            frame = read_parquet(validated["silver"][0])
            day = dt.date.fromisoformat(validated["trade_date"])
            stats = warehouse.load(client, dataset, day, frame, database=database)
    return {"dataset": dataset.name, **stats, "seconds": _seconds(started)}


def after_step(ctx: Context, dataset: Dataset, name: str, loaded: dict) -> dict:
    """One of the dataset's own steps after the load."""
    step = next((s for s in dataset.after if s.name == name), None)
    if step is None:
        raise KeyError(f"{dataset.name} has no step {name!r}")
    return step.run(ctx, dataset, loaded)


def after(ctx: Context, dataset: Dataset, loaded: dict) -> dict[str, dict]:
    """The dataset's own steps after the load, in order; their results by step name."""
    return {step.name: after_step(ctx, dataset, step.name, loaded) for step in dataset.after}


def run(ctx: Context, dataset: Dataset, request: Request) -> dict:
    """The whole chain for one request; raises as the steps do, having loaded nothing unless
    the gate passed."""
    fetched = fetch(ctx, dataset, request)
    parsed = parse(ctx, dataset, request.trade_date, fetched)
    validated = validate(ctx, dataset, parsed)
    loaded = load(ctx, dataset, validated)
    return {
        "fetch": fetched,
        "parse": parsed,
        "validate": validated,
        "load": loaded,
        "after": after(ctx, dataset, loaded),
    }
