"""The lake: bronze keeps NSE's bytes as served, silver keeps typed Parquet, gold keeps analytics.

Layout under one root (a local path):

    bronze/<dataset>/trade_date=YYYY-MM-DD/<NSE's file name>
    bronze/<dataset>/trade_date=YYYY-MM-DD/_manifest.json     one entry per fetch
    silver/<dataset>/trade_date=YYYY-MM-DD/part-0.parquet
    gold/<dataset>/...

Datasets fetched many times a day per underlying (option chains) add an `underlying=X` level
below the date, each with its own manifest, and grow their silver partitions file by file
(`write_part`) instead of replacing them.

Bronze is append-only: a re-fetch with identical bytes only adds a manifest entry; one with
different bytes keeps the earlier file under `_superseded/`. A fetch cycle of many responses
writes through a `BronzeBatch`, which rewrites each manifest once per cycle, not once per
response. Silver partitions are written to a temporary directory and renamed into place, so
readers never see half a partition and a rerun replaces the partition whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl


@dataclass(frozen=True)
class BronzeRecord:
    """What we know about one raw file: where it came from and what it was."""

    dataset: str
    trade_date: str
    file_name: str
    path: str
    url: str
    status: int
    content_type: str
    size: int
    sha256: str
    fetched_at: str

    def to_dict(self) -> dict:
        return asdict(self)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _keep_bronze(path: Path, content: bytes, digest: str) -> None:
    """Write `content` at `path`; bytes already there that differ go to `_superseded/` first."""
    if path.exists():
        old = path.read_bytes()
        old_digest = sha256_bytes(old)
        if old_digest != digest:
            keep = path.parent / "_superseded" / f"{old_digest[:16]}-{path.name}"
            _atomic_write_bytes(keep, old)
            _atomic_write_bytes(path, content)
    else:
        _atomic_write_bytes(path, content)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_directory(path: Path) -> None:
    """Make the renames into a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lake:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    # ---- paths -------------------------------------------------------------------------------
    def partition(
        self, layer: str, dataset: str, trade_date: dt.date, underlying: str | None = None
    ) -> Path:
        path = self.root / layer / dataset / f"trade_date={trade_date.isoformat()}"
        if underlying is None:
            return path
        if "/" in underlying or underlying.startswith((".", "_")) or not underlying:
            raise ValueError(f"unsafe underlying {underlying!r} for a lake path")
        return path / f"underlying={underlying}"

    def bronze_dir(self, dataset: str, trade_date: dt.date, underlying: str | None = None) -> Path:
        return self.partition("bronze", dataset, trade_date, underlying)

    def silver_dir(self, dataset: str, trade_date: dt.date) -> Path:
        return self.partition("silver", dataset, trade_date)

    def silver_path(self, dataset: str, trade_date: dt.date) -> Path:
        return self.silver_dir(dataset, trade_date) / "part-0.parquet"

    # ---- bronze ------------------------------------------------------------------------------
    def write_bronze(
        self,
        dataset: str,
        trade_date: dt.date,
        file_name: str,
        content: bytes,
        *,
        url: str,
        status: int = 200,
        content_type: str = "",
        fetched_at: dt.datetime | None = None,
        underlying: str | None = None,
    ) -> BronzeRecord:
        """Keep raw bytes exactly as served and record the fetch in the partition's manifest."""
        record = self._bronze_record(
            dataset,
            trade_date,
            file_name,
            content,
            url=url,
            status=status,
            content_type=content_type,
            fetched_at=fetched_at,
            underlying=underlying,
        )
        _keep_bronze(Path(record.path), content, record.sha256)
        self._append_manifest(Path(record.path).parent, [record])
        return record

    def bronze_batch(self, workers: int = 8) -> BronzeBatch:
        """Bronze writes of many responses, each manifest rewritten once: `with lake.bronze_batch()
        as batch: batch.write(...)`."""
        return BronzeBatch(self, workers)

    def _bronze_record(
        self,
        dataset: str,
        trade_date: dt.date,
        file_name: str,
        content: bytes,
        *,
        url: str,
        status: int,
        content_type: str,
        fetched_at: dt.datetime | None,
        underlying: str | None,
    ) -> BronzeRecord:
        if "/" in file_name or file_name.startswith((".", "_")):
            raise ValueError(f"unsafe bronze file name {file_name!r}")
        fetched_at = fetched_at or dt.datetime.now(dt.UTC)
        path = self.bronze_dir(dataset, trade_date, underlying) / file_name
        return BronzeRecord(
            dataset=dataset,
            trade_date=trade_date.isoformat(),
            file_name=file_name,
            path=str(path),
            url=url,
            status=status,
            content_type=content_type,
            size=len(content),
            sha256=sha256_bytes(content),
            fetched_at=fetched_at.isoformat(),
        )

    @staticmethod
    def _append_manifest(directory: Path, records: list[BronzeRecord]) -> None:
        path = directory / "_manifest.json"
        manifest = json.loads(path.read_text()) if path.exists() else []
        manifest.extend(record.to_dict() for record in records)
        _atomic_write_bytes(path, json.dumps(manifest, indent=2).encode() + b"\n")

    def bronze_manifest(
        self, dataset: str, trade_date: dt.date, underlying: str | None = None
    ) -> list[dict]:
        path = self.bronze_dir(dataset, trade_date, underlying) / "_manifest.json"
        return json.loads(path.read_text()) if path.exists() else []

    def latest_bronze(self, dataset: str, trade_date: dt.date) -> BronzeRecord:
        """The most recent fetch of a partition; its file holds exactly those bytes."""
        manifest = self.bronze_manifest(dataset, trade_date)
        if not manifest:
            raise FileNotFoundError(
                f"no bronze file for {dataset} on {trade_date}: "
                f"{self.bronze_dir(dataset, trade_date)} has no manifest"
            )
        return BronzeRecord(**manifest[-1])

    # ---- silver ------------------------------------------------------------------------------
    def write_silver(self, dataset: str, trade_date: dt.date, df: pl.DataFrame) -> Path:
        """Replace a silver partition whole and atomically."""
        target = self.silver_dir(dataset, trade_date)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{target.name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            df.write_parquet(tmp / "part-0.parquet", compression="zstd", statistics=True)
            if target.exists():
                old = target.parent / f".old-{target.name}-{uuid.uuid4().hex}"
                os.rename(target, old)
                os.rename(tmp, target)
                shutil.rmtree(old)
            else:
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target / "part-0.parquet"

    def write_part(
        self,
        layer: str,
        dataset: str,
        trade_date: dt.date,
        underlying: str,
        name: str,
        df: pl.DataFrame,
    ) -> Path:
        """Add (or replace) one named Parquet file of a partition that grows over the day."""
        if "/" in name or name.startswith((".", "_")) or not name.endswith(".parquet"):
            raise ValueError(f"unsafe part name {name!r}")
        path = self.partition(layer, dataset, trade_date, underlying) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{uuid.uuid4().hex}.tmp")
        try:
            df.write_parquet(tmp, compression="zstd", statistics=True)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def read_silver(self, dataset: str, trade_date: dt.date) -> pl.DataFrame:
        return pl.read_parquet(self.silver_path(dataset, trade_date))

    def silver_dates(self, dataset: str) -> list[dt.date]:
        base = self.root / "silver" / dataset
        if not base.exists():
            return []
        return sorted(
            dt.date.fromisoformat(p.name.split("=", 1)[1])
            for p in base.glob("trade_date=*")
            if p.is_dir()
        )


class BronzeBatch:
    """Bronze writes of one fetch cycle with the guarantees of `Lake.write_bronze`, cheaper.

    Each file still goes to a temporary name, is fsynced and renamed into place, but on worker
    threads, so that the file system commits many fsyncs at once instead of one per response;
    each partition's manifest is rewritten once, when the batch closes, with every record of
    the batch whose file was written, and the partitions' directories are then fsynced so the
    renames are durable too. `write` returns at once; `written` waits for one file (before
    parsing it). Closing waits for every file and raises the first write that failed.
    """

    def __init__(self, lake: Lake, workers: int = 8) -> None:
        self._lake = lake
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="bronze")
        self._writes: dict[str, Future] = {}
        self._records: list[BronzeRecord] = []

    def __enter__(self) -> BronzeBatch:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(
        self,
        dataset: str,
        trade_date: dt.date,
        file_name: str,
        content: bytes,
        *,
        url: str,
        status: int = 200,
        content_type: str = "",
        fetched_at: dt.datetime | None = None,
        underlying: str | None = None,
    ) -> BronzeRecord:
        """Queue raw bytes for bronze; the record names where they go."""
        record = self._lake._bronze_record(
            dataset,
            trade_date,
            file_name,
            content,
            url=url,
            status=status,
            content_type=content_type,
            fetched_at=fetched_at,
            underlying=underlying,
        )
        earlier = self._writes.get(record.path)
        if earlier is not None:
            earlier.exception()
        self._writes[record.path] = self._pool.submit(
            _keep_bronze, Path(record.path), content, record.sha256
        )
        self._records.append(record)
        return record

    def written(self, path: str | os.PathLike) -> Path:
        """Wait until the bytes queued for `path` are on disk under that name."""
        self._writes[str(path)].result()
        return Path(path)

    def close(self) -> None:
        try:
            failed = {path: f.exception() for path, f in self._writes.items() if f.exception()}
            by_directory: dict[Path, list[BronzeRecord]] = {}
            for record in self._records:
                if record.path not in failed:
                    by_directory.setdefault(Path(record.path).parent, []).append(record)
            for done in [
                self._pool.submit(self._lake._append_manifest, directory, records)
                for directory, records in by_directory.items()
            ]:
                done.result()
            for done in [self._pool.submit(_fsync_directory, d) for d in by_directory]:
                done.result()
        finally:
            self._pool.shutdown()
            self._writes, self._records = {}, []
        if failed:
            raise next(iter(failed.values()))
