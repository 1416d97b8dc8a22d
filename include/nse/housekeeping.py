"""Keeping years of lake tidy: intraday snapshots compacted after the close, their bronze pruned.

A day of the intraday option chain leaves one small Parquet file per underlying and cycle
(about 200 x 75 a day), in silver and again in gold (the cycle's analytics). Once the day is
over nothing adds to it, so `compact` folds each finished day's files into the one file every
other dataset keeps per day (`trade_date=D/part-0.parquet`), rows in the order they were stored,
and then removes the small files and the day's `_latest.json` bookkeeping. It never changes
what a day holds: the rows written are checked against the files they came from before any file
is removed, and a compaction cut short (killed between the write and the removals) is finished
by the next one, which finds the remaining files' rows already in the day's file.

`prune_bronze` removes the raw responses of intraday days older than a retention, and only of
days whose silver is compacted: ClickHouse and silver keep the data, bronze keeps NSE's bytes
for as long as the retention says. It is off unless a retention is given.

Both return what they did, so a scheduled task can report its effect.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from include.nse import catalog
from include.nse.lake import SILVER_FILE, Lake, write_parquet

#: For each intraday dataset, where it keeps per-cycle files (layer, folder) and the key that
#: identifies one row there.
INTRADAY = {
    "option_chain": (
        (
            "silver",
            "option_chain",
            ("underlying", "snapshot_ts", "expiry_date", "strike_price", "option_type"),
        ),
        ("gold", "option_chain_analytics", ("underlying", "snapshot_ts", "expiry_date")),
    ),
}


class CompactionError(RuntimeError):
    """A day whose files cannot be folded into one without changing what it holds."""


@dataclass
class Compacted:
    layer: str
    dataset: str
    trade_date: str
    files: int
    rows: int
    bytes_before: int
    bytes_after: int


@dataclass
class Pruned:
    dataset: str
    trade_date: str
    files: int
    bytes: int


def intraday_datasets() -> list[str]:
    """Datasets whose runs are snapshots through the day rather than one file per day."""
    return [name for name in catalog.names() if catalog.shape(name).per_item]


def _days(lake: Lake, layer: str, dataset: str) -> list[dt.date]:
    base = lake.root / layer / dataset
    if not base.is_dir():
        return []
    return sorted(
        dt.date.fromisoformat(p.name.split("=", 1)[1])
        for p in base.glob("trade_date=*")
        if p.is_dir()
    )


def _small_files(day: Path) -> list[Path]:
    """The day's per-cycle files: `<part>/<time>.parquet`, in the order they were written."""
    return sorted(day.glob("*=*/*.parquet"))


def compact_day(
    lake: Lake, layer: str, dataset: str, trade_date: dt.date, key: tuple[str, ...]
) -> Compacted | None:
    """Fold one finished day's per-cycle files into `part-0.parquet`; None when there are none."""
    day = lake.partition(layer, dataset, trade_date)
    files = _small_files(day)
    if not files:
        return None
    target = day / SILVER_FILE
    before = sum(f.stat().st_size for f in files)
    scanned = pl.scan_parquet(files)
    if target.exists():
        # A compaction cut short after its write: every remaining file's rows must already be
        # in the day's file, or something wrote to a day that was over.
        missing = scanned.join(pl.scan_parquet(target), on=list(key), how="anti")
        left = missing.select(pl.len()).collect().item()
        if left:
            raise CompactionError(
                f"{day}: {left} rows of {len(files)} per-cycle files are not in {target.name}; "
                "the day changed after it was compacted"
            )
        rows = pl.scan_parquet(target).select(pl.len()).collect().item()
    else:
        frame = scanned.collect()
        duplicated = frame.select(pl.struct(list(key)).is_duplicated().sum()).item()
        if duplicated:
            raise CompactionError(
                f"{day}: {duplicated} rows share a key ({', '.join(key)}) across its files; "
                "refusing to fold them into one"
            )
        write_parquet(target, frame)
        rows = pl.scan_parquet(target).select(pl.len()).collect().item()
        if rows != frame.height:
            raise CompactionError(f"{target}: wrote {rows} rows of {frame.height}")
    for f in files:
        f.unlink()
    for folder in sorted({f.parent for f in files}):
        for state in folder.glob("_*.json"):
            state.unlink()
        if not any(folder.iterdir()):
            folder.rmdir()
    return Compacted(
        layer, dataset, trade_date.isoformat(), len(files), rows, before, target.stat().st_size
    )


def compact(lake: Lake, before: dt.date) -> list[Compacted]:
    """Compact every intraday day earlier than `before` (the first day still open) that has
    per-cycle files, silver and gold alike."""
    done = []
    for name in intraday_datasets():
        for layer, folder, key in INTRADAY[name]:
            for day in _days(lake, layer, folder):
                if day < before and (result := compact_day(lake, layer, folder, day, key)):
                    done.append(result)
    return done


def prune_bronze(lake: Lake, today: dt.date, keep_days: int | None) -> list[Pruned]:
    """Remove the bronze of intraday days more than `keep_days` before `today` whose silver is
    compacted. None keeps everything (the default)."""
    if keep_days is None:
        return []
    if keep_days < 0:
        raise ValueError(f"keep_days must be zero or more, not {keep_days}")
    cutoff = today - dt.timedelta(days=keep_days)
    pruned = []
    for dataset in intraday_datasets():
        for day in _days(lake, "bronze", dataset):
            silver = lake.partition("silver", dataset, day)
            if day >= cutoff or not (silver / SILVER_FILE).exists() or _small_files(silver):
                continue
            folder = lake.partition("bronze", dataset, day)
            files = [p for p in folder.rglob("*") if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            shutil.rmtree(folder)
            pruned.append(Pruned(dataset, day.isoformat(), len(files), size))
    return pruned


def summary(compacted: list[Compacted], pruned: list[Pruned]) -> dict:
    """What housekeeping did, for a task's return value and log."""
    return {
        "compacted_days": len(compacted),
        "compacted_files": sum(c.files for c in compacted),
        "compacted_rows": sum(c.rows for c in compacted),
        "bytes_before": sum(c.bytes_before for c in compacted),
        "bytes_after": sum(c.bytes_after for c in compacted),
        "pruned_days": len(pruned),
        "pruned_files": sum(p.files for p in pruned),
        "pruned_bytes": sum(p.bytes for p in pruned),
        "details": [asdict(c) for c in compacted] + [asdict(p) for p in pruned],
    }
