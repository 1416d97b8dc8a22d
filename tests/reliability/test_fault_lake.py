"""Faults in the lake: writers in several processes at once, a writer killed mid-write, a disk
that fills up. Real processes (spawned, or `python -c` children killed with SIGKILL), a real
file system (a small tmpfs mounted for the full disk), the real sample files as NSE's bytes.

Every case asserts: nothing lost (each fetch's bytes readable through its manifest entry, each
partition whole), nothing duplicated (one entry per fetch, one file per partition, exact rows),
and a clear error where there is one.
"""

from __future__ import annotations

import datetime as dt
import io
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import polars as pl
import pytest

from include.nse import pipeline, sources
from include.nse.config import Settings
from include.nse.lake import SILVER_FILE, BronzeRecord, Lake, LakeWriteError
from include.nse.payload import digest
from include.nse.warehouse import Warehouse, connector
from tests.conftest import PROJECT_ROOT
from tests.helpers import zipped

DAY = dt.date(2022, 5, 24)
CM_FILE = "cm24MAY2022bhav.csv"
URL = f"https://nsearchives.nseindia.com/content/historical/EQUITIES/2022/MAY/{CM_FILE}.zip"
SPAWN = multiprocessing.get_context("spawn")


def _together(target, jobs: list[tuple], timeout: float = 180) -> list[int | None]:
    """`target(start, *job)` in one spawned process per job, released at once by a barrier;
    their exit codes (None for one still running at the timeout, which is then killed)."""
    start = SPAWN.Barrier(len(jobs))
    processes = [SPAWN.Process(target=target, args=(start, *job)) for job in jobs]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    codes = []
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
            codes.append(None)
        else:
            codes.append(process.exitcode)
    return codes


def _cm_zip(samples_dir: Path) -> bytes:
    return (samples_dir / "cm_bhavcopy_legacy" / f"{CM_FILE}.zip").read_bytes()


def _cm_rows(raw: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        return sum(1 for line in archive.read(CM_FILE).splitlines()[1:] if line.strip())


# ---- concurrent manifest writers --------------------------------------------------------------
def _fetcher(start, writer: int, root: str, files: int, refetches: int) -> None:
    """One process fetching `files` files of its own into a shared folder, half one by one and
    half in batches, and re-fetching one file every writer fetches (`common.csv`)."""
    start.wait()
    lake = Lake(root)
    for n in range(files // 2):
        name = f"w{writer}_{n}.csv"
        lake.write_bronze("cm_delivery", DAY, name, name.encode(), url=f"http://x/{name}")
    for first in range(files // 2, files, 5):
        with lake.bronze_batch(workers=4) as batch:
            for n in range(first, min(first + 5, files)):
                name = f"w{writer}_{n}.csv"
                batch.write("cm_delivery", DAY, name, name.encode(), url=f"http://x/{name}")
    for n in range(refetches):
        body = f"common from {writer}, fetch {n}".encode()
        lake.write_bronze("cm_delivery", DAY, "common.csv", body, url="http://x/common.csv")


def test_concurrent_manifest_writers(lake_root, fault):
    writers, files, refetches = 4, 40, 6
    jobs = [(w, str(lake_root), files, refetches) for w in range(writers)]
    assert _together(_fetcher, jobs) == [0] * writers
    manifest = Lake(lake_root).bronze_manifest("cm_delivery", DAY)
    expected = sorted(
        [(f"w{w}_{n}.csv", f"w{w}_{n}.csv".encode()) for w in range(writers) for n in range(files)]
        + [
            ("common.csv", f"common from {w}, fetch {n}".encode())
            for w in range(writers)
            for n in range(refetches)
        ]
    )
    found = sorted((e["file_name"], BronzeRecord.from_dict(e).read()) for e in manifest)
    # Every fetch has its one entry, and its bytes (current, or kept under _superseded/).
    assert found == expected
    lost = len(set(expected) - set(found))
    duplicated = len(found) - len(set(found))
    assert lost == duplicated == 0
    fault(
        f"{writers} processes fetching {len(expected)} files into one bronze folder",
        outcome=f"all {len(manifest)} manifest entries kept, each readable by its sha256",
        lost=lost,
        duplicated=duplicated,
    )


# ---- concurrent silver replacement ------------------------------------------------------------
def _version(writer: int, n: int) -> pl.DataFrame:
    rows = 3000 + 100 * writer + n
    return pl.DataFrame({"writer": [writer] * rows, "version": [n] * rows, "n": range(rows)})


def _rewriter(start, writer: int, root: str, times: int) -> None:
    start.wait()
    lake = Lake(root)
    for n in range(times):
        lake.write_silver("cm_bhavcopy", DAY, _version(writer, n))


def _reader(start, root: str, seconds: float, versions: set[int], out) -> None:
    """Read the partition over and over; report reads, half states and errors."""
    start.wait()
    lake = Lake(root)
    reads, half, errors = 0, 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = lake.read_silver("cm_bhavcopy", DAY)
            rows = lake.silver_rows("cm_bhavcopy", DAY)
        except FileNotFoundError:
            continue  # before the first writer's first rename
        except BaseException as exc:  # polars panics are BaseExceptions
            errors.append(repr(exc)[:300])
            continue
        reads += 1
        (writer,), (version,) = frame["writer"].unique(), frame["version"].unique()
        whole = frame.equals(_version(writer, version))
        half += (not whole) or rows not in versions
    out.put((reads, half, errors[:3], len(errors)))


def test_concurrent_silver_replacement(lake_root, fault):
    writers, times, readers = 3, 80, 2
    versions = {_version(w, n).height for w in range(writers) for n in range(times)}
    results = SPAWN.Queue()
    start = SPAWN.Barrier(writers + readers)
    processes = [
        SPAWN.Process(target=_rewriter, args=(start, w, str(lake_root), times))
        for w in range(writers)
    ] + [
        SPAWN.Process(target=_reader, args=(start, str(lake_root), 12.0, versions, results))
        for _ in range(readers)
    ]
    for process in processes:
        process.start()
    reports = [results.get(timeout=180) for _ in range(readers)]
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * (writers + readers)
    assert all(errors == 0 for *_, errors in reports), reports
    assert all(reads > 0 and half == 0 for reads, half, *_ in reports), reports
    folder = Lake(lake_root).partition("silver", "cm_bhavcopy", DAY)
    assert sorted(p.name for p in folder.iterdir()) == [SILVER_FILE]
    final = Lake(lake_root).read_silver("cm_bhavcopy", DAY)
    (writer,) = final["writer"].unique()
    assert final.equals(_version(writer, times - 1))
    reads = sum(r[0] for r in reports)
    fault(
        f"{writers} processes replacing one silver partition {times} times each, {readers} reading",
        outcome=f"no write failed; {reads} reads, none saw a mix of two versions",
    )


# ---- a writer killed between writing and renaming -------------------------------------------
KILLED_PARSE = """
import datetime as dt, sys, time
import polars as pl
from include.nse import pipeline, sources
from include.nse.config import Settings

write = pl.DataFrame.write_parquet


def write_then_hang(self, path, **kwargs):
    write(self, path, **kwargs)
    print("WRITTEN", path, flush=True)
    time.sleep(120)  # killed here: the bytes are down, the rename never comes


pl.DataFrame.write_parquet = write_then_hang
ctx = pipeline.Context(Settings(lake_root=sys.argv[1]))
pipeline.parse(ctx, sources.get("cm_bhavcopy"), dt.date.fromisoformat(sys.argv[2]))
"""


@pytest.fixture()
def warehouse(clickhouse_server, ch_database):
    return Warehouse(connector(**clickhouse_server), ch_database)


def _rows_loaded(warehouse: Warehouse, day: dt.date) -> tuple[int, int]:
    """(rows, distinct keys) of cm_bhavcopy for `day`."""
    with warehouse.session() as client:
        return client.execute(
            f"SELECT count(), uniqExact(symbol, series) FROM {warehouse.database}.cm_bhavcopy "
            "WHERE trade_date = %(day)s",
            {"day": day},
        )[0]


def test_sigkill_while_writing_silver(samples_dir, lake_root, warehouse, fault):
    """NSE republished the day (a file with 50 rows more): the task parsing the new one is
    SIGKILLed after writing silver's temporary file, before renaming it."""
    dataset = sources.get("cm_bhavcopy")
    ctx = pipeline.Context(Settings(lake_root=lake_root), warehouse, run_id="fault")
    full = _cm_zip(samples_dir)
    with zipfile.ZipFile(io.BytesIO(full)) as archive:
        lines = archive.read(CM_FILE).split(b"\n")
    first = zipped({CM_FILE: b"\n".join([*lines[:-51], b""])})
    ctx.lake.write_bronze(dataset.name, DAY, f"{CM_FILE}.zip", first, url=URL)
    pipeline.parse(ctx, dataset, DAY)
    assert ctx.lake.silver_rows(dataset.name, DAY) == _cm_rows(first)

    ctx.lake.write_bronze(dataset.name, DAY, f"{CM_FILE}.zip", full, url=URL)
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARSE, str(lake_root), DAY.isoformat()],
        cwd=PROJECT_ROOT,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("WRITTEN"), child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    folder = ctx.lake.partition("silver", dataset.name, DAY)
    leftover = Path(line.split(None, 1)[1].strip())
    # The old partition is whole and still the partition; the dead writer's bytes are only
    # under a hidden temporary name, which no reader globbing *.parquet picks up.
    assert leftover.exists() and leftover.name.startswith(".")
    assert sorted(p.name for p in folder.glob("*.parquet")) == [SILVER_FILE]
    assert ctx.lake.read_silver(dataset.name, DAY).height == _cm_rows(first)

    for _ in range(2):  # the retry, and a rerun of the date
        validated = pipeline.validate(ctx, dataset, pipeline.parse(ctx, dataset, DAY))
        pipeline.load(ctx, dataset, validated)
    assert sorted(p.name for p in folder.glob("*.parquet")) == [SILVER_FILE]
    expected = _cm_rows(full)
    assert ctx.lake.read_silver(dataset.name, DAY).height == expected
    rows, keys = _rows_loaded(warehouse, DAY)
    assert rows == keys == expected
    fault(
        "task SIGKILLed after writing silver, before the rename",
        outcome="old partition stayed whole; the rerun left one partition of the new file",
        lost=expected - keys,
        duplicated=rows - keys,
    )


# ---- the lake's disk fills up -----------------------------------------------------------------
@pytest.fixture()
def small_disk(tmp_path):
    """A 2 MiB tmpfs mounted for the lake: a disk that really fills up (ENOSPC)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave: int) -> Path:
    """Fill the disk until `leave` bytes are free; the filler file, to delete later."""
    filler = mount / "filler"
    filler.unlink(missing_ok=True)
    stat = os.statvfs(mount)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_disk_full_during_bronze_and_silver_writes(samples_dir, small_disk, warehouse, fault):
    dataset = sources.get("cm_bhavcopy")
    lake_root = small_disk / "lake"
    ctx = pipeline.Context(Settings(lake_root=lake_root), warehouse, run_id="fault")
    raw = _cm_zip(samples_dir)
    frame = dataset.parse(raw, f"{CM_FILE}.zip")
    bronze = ctx.lake.bronze_dir(dataset.name, DAY)
    silver = ctx.lake.partition("silver", dataset.name, DAY)

    # Bronze: the response does not fit.
    filler = _fill(small_disk, len(raw) // 2)
    with pytest.raises(LakeWriteError) as caught, ctx.lake.bronze_batch() as batch:
        batch.write(dataset.name, DAY, f"{CM_FILE}.zip", raw, url=URL)
    bronze_error = str(caught.value)
    assert bronze_error == (
        "[Errno 28] No space left on device (nothing written: the file is as it was): "
        f"'{bronze / f'{CM_FILE}.zip'}'"
    )
    assert _files(bronze) in ([], ["_manifest.lock"])  # no partial file, no manifest entry

    # Silver: bronze fits, the partition does not.
    filler.unlink()
    ctx.lake.write_bronze(dataset.name, DAY, f"{CM_FILE}.zip", raw, url=URL)
    probe = small_disk / "probe.parquet"
    frame.write_parquet(probe, compression="zstd", statistics=True)
    needed = probe.stat().st_size
    probe.unlink()
    filler = _fill(small_disk, needed // 2)
    with pytest.raises(LakeWriteError) as caught:
        pipeline.parse(ctx, dataset, DAY)
    silver_error = str(caught.value)
    assert silver_error == (
        "[Errno 28] No space left on device (nothing written: the file is as it was): "
        f"'{silver / SILVER_FILE}'"
    )
    assert _files(silver) == []  # no partial partition, no temporary file

    # Space freed: the rerun lands every row once, and again once.
    filler.unlink()
    for _ in range(2):
        validated = pipeline.validate(ctx, dataset, pipeline.parse(ctx, dataset, DAY))
        pipeline.load(ctx, dataset, validated)
    assert _files(silver) == [SILVER_FILE]
    assert [e["sha256"] for e in ctx.lake.bronze_manifest(dataset.name, DAY)] == [digest(raw)]
    rows, keys = _rows_loaded(warehouse, DAY)
    assert rows == keys == _cm_rows(raw) == frame.height
    fault(
        "lake disk full (ENOSPC) writing bronze, then silver",
        outcome="LakeWriteError naming the file; nothing partial left; rerun loaded every row once",
        lost=frame.height - keys,
        duplicated=rows - keys,
    )
