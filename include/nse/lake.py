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
different bytes keeps the earlier file under `_superseded/`. Silver partitions are written to a
temporary directory and renamed into place, so readers never see half a partition and a rerun
replaces the partition whole.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import uuid
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


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
        if "/" in file_name or file_name.startswith((".", "_")):
            raise ValueError(f"unsafe bronze file name {file_name!r}")
        fetched_at = fetched_at or dt.datetime.now(dt.UTC)
        directory = self.bronze_dir(dataset, trade_date, underlying)
        path = directory / file_name
        digest = sha256_bytes(content)
        if path.exists():
            old = path.read_bytes()
            old_digest = sha256_bytes(old)
            if old_digest != digest:
                keep = directory / "_superseded" / f"{old_digest[:16]}-{file_name}"
                _atomic_write_bytes(keep, old)
                _atomic_write_bytes(path, content)
        else:
            _atomic_write_bytes(path, content)
        record = BronzeRecord(
            dataset=dataset,
            trade_date=trade_date.isoformat(),
            file_name=file_name,
            path=str(path),
            url=url,
            status=status,
            content_type=content_type,
            size=len(content),
            sha256=digest,
            fetched_at=fetched_at.isoformat(),
        )
        manifest = self.bronze_manifest(dataset, trade_date, underlying)
        manifest.append(record.to_dict())
        _atomic_write_bytes(
            directory / "_manifest.json", json.dumps(manifest, indent=2).encode() + b"\n"
        )
        return record

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
