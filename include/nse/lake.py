"""The lake: bronze keeps NSE's bytes as served, silver keeps typed Parquet, gold keeps analytics.

Layout under one root (a local path):

    bronze/<dataset>/trade_date=YYYY-MM-DD/[<part>/]<NSE's file name>
    bronze/<dataset>/trade_date=YYYY-MM-DD/[<part>/]_manifest.json     one entry per fetch
    silver/<dataset>/trade_date=YYYY-MM-DD/part-0.parquet
    silver/<dataset>/trade_date=YYYY-MM-DD/<part>/<HHMMSS_micros>.parquet   (intraday snapshots)
    quality/<dataset>/trade_date=YYYY-MM-DD/validation.json
    gold/<dataset>/...

A `<part>` folder (`index=nifty50`, `underlying=NIFTY`) splits a date that NSE publishes as
several files, so each keeps its own manifest. Bronze is append-only: a re-fetch with identical
bytes only adds a manifest entry; one with different bytes keeps the earlier file under
`_superseded/`. Manifests are read, changed and rewritten under a lock on their folder, so two
processes fetching one date never lose each other's entries.

Every file is written to a temporary name in its folder and renamed into place, so a reader sees
the old file or the new one, never half of one; a silver partition is one file replaced whole,
so a rerun replaces it and concurrent rewrites of one date leave one complete partition. Silver
is read through one open handle (`read_parquet`), so a reader never mixes the footer of one
version with the data of the next.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import io
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import polars as pl

from include.nse.errors import ParseError
from include.nse.payload import digest

SILVER_FILE = "part-0.parquet"
MANIFEST = "_manifest.json"
_LOCK = "_manifest.lock"
#: A part folder: `name=value`, the value a single path component.
_PART = re.compile(r"[a-z_]+=[^/\\\x00]+")
#: Longest file name kept: 255 bytes (most file systems), less what a temporary name adds.
MAX_FILE_NAME_BYTES = 200
#: Temporary files older than this were left by a writer that died; the next write removes them.
STALE_TEMP_SECONDS = 3600


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
    part: str | None = None
    #: Response headers worth keeping (Last-Modified dates some files).
    headers: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, entry: dict) -> BronzeRecord:
        """A manifest entry, also one written before `part` and `headers` were recorded."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in entry.items() if k in known})

    def read(self) -> bytes:
        """The file's bytes, refused unless they are the ones the manifest recorded; those of
        an earlier fetch come from `_superseded/` once a re-fetch brought different bytes."""
        path = Path(self.path)
        data = path.read_bytes()
        if digest(data) != self.sha256:
            earlier = _superseded(path, self.sha256)
            data = earlier.read_bytes() if earlier.exists() else data
        if digest(data) != self.sha256:
            raise ParseError(
                self.file_name, "bronze file does not match the sha256 in its manifest"
            )
        return data


def check_part(part: str | None) -> str | None:
    if part is not None and (
        not _PART.fullmatch(part) or part.split("=", 1)[1].startswith((".", "_"))
    ):
        raise ValueError(f"unsafe part {part!r} for a lake path; expected name=value")
    return part


def check_file_name(name: str) -> str:
    """A file name from a URL or a caller, refused unless it stays in its folder and fits the
    file system with the temporary name's additions."""
    if (
        not name
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith((".", "_"))
        or len(name.encode()) > MAX_FILE_NAME_BYTES
    ):
        raise ValueError(f"unsafe file name {name!r} for the lake")
    return name


class LakeWriteError(OSError):
    """A lake file that could not be written (a full disk, a lost mount): the error names the
    file, and the file is as it was before; nothing half-written is left under its name."""


def _os_error(exc: BaseException) -> int | None:
    """The OS error number behind a failed write: OSError's own, or the one polars' Parquet
    writer prints ("... (os error 28)")."""
    if isinstance(exc, OSError):
        return exc.errno
    found = (
        re.search(r"\(os error (\d+)\)", str(exc))
        if isinstance(exc, pl.exceptions.PolarsError)
        else None
    )
    return int(found.group(1)) if found else None


@contextmanager
def _written_whole(path: Path, tmp: Path) -> Iterator[None]:
    """Around writing `tmp` and renaming it to `path`: on any failure the temporary file goes,
    and an OS error (ENOSPC, EIO...) becomes a LakeWriteError naming `path`."""
    try:
        yield
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        code = _os_error(exc)
        if code is None:
            raise
        raise LakeWriteError(
            code, f"{os.strerror(code)} (nothing written: the file is as it was)", str(path)
        ) from exc


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` at `path` through a temporary name in the same folder, fsynced, renamed."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with _written_whole(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return path


def write_json(path: Path, document: object, *, indent: int | None = 2) -> Path:
    return atomic_write_bytes(
        path, json.dumps(document, indent=indent, default=str).encode() + b"\n"
    )


def write_png(path: Path, figure) -> Path:
    """A matplotlib figure as a PNG at `path`, through a temporary name: a reader never sees
    half a chart."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def write_parquet(path: Path, df: pl.DataFrame) -> Path:
    """`df` at `path` through a temporary name, fsynced, renamed; a failed write leaves `path`
    as it was."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with _written_whole(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(path.parent)
        df.write_parquet(tmp, compression="zstd", statistics=True)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return path


def read_parquet(path: str | os.PathLike) -> pl.DataFrame:
    """A Parquet file, read through one open handle. Given a path, polars opens the file once
    for its footer and again for its data: a rewrite renamed into place between the two would
    mix two files (a reader's panic, or rows of one with the footer of the other). An open
    handle keeps the file it opened, whatever is renamed over its name meanwhile."""
    with open(path, "rb") as f:
        return pl.read_parquet(f)


def parquet_rows(path: str | os.PathLike) -> int:
    """The rows a Parquet file holds, from its footer, through one open handle."""
    import pyarrow.parquet as pq

    with open(path, "rb") as f:
        return pq.ParquetFile(f).metadata.num_rows


def _remove_stale_temps(directory: Path) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    for tmp in directory.glob(".*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except FileNotFoundError:
            pass


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on a bronze folder, between threads and processes alike."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / _LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _superseded(path: Path, sha256: str) -> Path:
    """Where the bytes `sha256` once at `path` are kept after a re-fetch replaced them."""
    return path.parent / "_superseded" / f"{sha256[:16]}-{path.name}"


def _keep_bronze(path: Path, content: bytes, sha256: str) -> None:
    """Write `content` at `path`; bytes already there that differ go to `_superseded/` first."""
    with _locked(path.parent):
        if path.exists():
            old = path.read_bytes()
            old_digest = digest(old)
            if old_digest == sha256:
                return
            atomic_write_bytes(_superseded(path, old_digest), old)
        atomic_write_bytes(path, content)


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
        self, layer: str, dataset: str, trade_date: dt.date, part: str | None = None
    ) -> Path:
        path = self.root / layer / dataset / f"trade_date={trade_date.isoformat()}"
        return path if check_part(part) is None else path / part

    def bronze_dir(self, dataset: str, trade_date: dt.date, part: str | None = None) -> Path:
        return self.partition("bronze", dataset, trade_date, part)

    def silver_path(self, dataset: str, trade_date: dt.date) -> Path:
        return self.partition("silver", dataset, trade_date) / SILVER_FILE

    # ---- bronze ------------------------------------------------------------------------------
    def bronze_record(
        self,
        dataset: str,
        trade_date: dt.date,
        file_name: str,
        content: bytes,
        *,
        url: str,
        status: int = 200,
        content_type: str = "",
        headers: dict | None = None,
        fetched_at: dt.datetime | None = None,
        part: str | None = None,
    ) -> BronzeRecord:
        """The record of bytes about to be kept, their lake path validated first."""
        path = self.bronze_dir(dataset, trade_date, part) / check_file_name(file_name)
        return BronzeRecord(
            dataset=dataset,
            trade_date=trade_date.isoformat(),
            file_name=file_name,
            path=str(path),
            url=url,
            status=status,
            content_type=content_type,
            size=len(content),
            sha256=digest(content),
            fetched_at=(fetched_at or dt.datetime.now(dt.UTC)).isoformat(),
            part=part,
            headers=dict(headers or {}),
        )

    def write_bronze(
        self, dataset: str, trade_date: dt.date, file_name: str, content: bytes, **meta
    ) -> BronzeRecord:
        """Keep raw bytes exactly as served and record the fetch in the folder's manifest."""
        record = self.bronze_record(dataset, trade_date, file_name, content, **meta)
        _keep_bronze(Path(record.path), content, record.sha256)
        self._append_manifest(Path(record.path).parent, [record])
        return record

    def bronze_batch(self, workers: int = 8) -> BronzeBatch:
        """Bronze writes of many responses, each manifest rewritten once: `with lake.bronze_batch()
        as batch: batch.write(...)`."""
        return BronzeBatch(self, workers)

    @staticmethod
    def _append_manifest(directory: Path, records: list[BronzeRecord]) -> None:
        path = directory / MANIFEST
        with _locked(directory):
            manifest = json.loads(path.read_text()) if path.exists() else []
            manifest.extend(record.to_dict() for record in records)
            atomic_write_bytes(path, json.dumps(manifest, indent=2).encode() + b"\n")

    def bronze_manifest(
        self, dataset: str, trade_date: dt.date, part: str | None = None
    ) -> list[dict]:
        path = self.bronze_dir(dataset, trade_date, part) / MANIFEST
        return json.loads(path.read_text()) if path.exists() else []

    def latest_bronze(
        self, dataset: str, trade_date: dt.date, part: str | None = None
    ) -> BronzeRecord:
        """The most recent fetch of a folder; its file holds exactly those bytes."""
        manifest = self.bronze_manifest(dataset, trade_date, part)
        if not manifest:
            raise FileNotFoundError(
                f"no bronze file for {dataset} on {trade_date}: "
                f"{self.bronze_dir(dataset, trade_date, part)} has no manifest"
            )
        return BronzeRecord.from_dict(manifest[-1])

    def current_bronze(self, dataset: str, trade_date: dt.date) -> list[BronzeRecord]:
        """The latest fetch of the date's folder and of each of its part folders."""
        base = self.bronze_dir(dataset, trade_date)
        parts = [None] if (base / MANIFEST).exists() else []
        parts += sorted(p.name for p in base.glob("*=*") if (p / MANIFEST).exists())
        return [self.latest_bronze(dataset, trade_date, part) for part in parts]

    # ---- silver ------------------------------------------------------------------------------
    def write_silver(self, dataset: str, trade_date: dt.date, df: pl.DataFrame) -> Path:
        """Replace a silver partition whole and atomically."""
        return write_parquet(self.silver_path(dataset, trade_date), df)

    def write_part(
        self,
        layer: str,
        dataset: str,
        trade_date: dt.date,
        part: str,
        name: str,
        df: pl.DataFrame,
    ) -> Path:
        """Add (or replace) one named Parquet file of a partition that grows over the day."""
        if not check_file_name(name).endswith(".parquet"):
            raise ValueError(f"unsafe part file name {name!r}")
        return write_parquet(self.partition(layer, dataset, trade_date, part) / name, df)

    def read_silver(self, dataset: str, trade_date: dt.date) -> pl.DataFrame:
        """The partition as one writer wrote it, even while another replaces it."""
        return read_parquet(self.silver_path(dataset, trade_date))

    def silver_rows(self, dataset: str, trade_date: dt.date) -> int:
        return parquet_rows(self.silver_path(dataset, trade_date))

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
    each folder's manifest is rewritten once, when the batch closes, with every record of the
    batch whose file was written, and the folders are then fsynced so the renames are durable
    too. `write` returns at once; `written` waits for one file (before parsing it). Closing waits
    for every file and raises the first write that failed.
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
        self, dataset: str, trade_date: dt.date, file_name: str, content: bytes, **meta
    ) -> BronzeRecord:
        """Queue raw bytes for bronze; the record names where they go."""
        record = self._lake.bronze_record(dataset, trade_date, file_name, content, **meta)
        earlier = self._writes.get(record.path)
        if earlier is not None:
            earlier.exception()
        self._writes[record.path] = self._pool.submit(
            _keep_bronze, Path(record.path), content, record.sha256
        )
        self._records.append(record)
        return record

    def written(self, record: BronzeRecord) -> BronzeRecord:
        """Wait until the bytes queued for `record` are on disk under its name."""
        self._writes[record.path].result()
        return record

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
