"""The lake keeps raw bytes immutable and replaces silver partitions whole, also with writers
failing half-way or running in two processes at once."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import time
from pathlib import Path

import polars as pl
import pytest

from include.nse import lake as lake_module
from include.nse.errors import ParseError
from include.nse.lake import BronzeRecord, Lake
from include.nse.payload import digest

DAY = dt.date(2024, 7, 5)


class TestBronze:
    def test_keeps_bytes_and_manifest(self, lake_root):
        """The file holds exactly the served bytes; the manifest records url, sha256 and size."""
        lake = Lake(lake_root)
        record = lake.write_bronze(
            "cm_bhavcopy",
            DAY,
            "cm05JUL2024bhav.csv.zip",
            b"PK\x03\x04abc",
            url="http://x/cm05JUL2024bhav.csv.zip",
            content_type="application/zip",
        )
        path = lake_root / "bronze/cm_bhavcopy/trade_date=2024-07-05/cm05JUL2024bhav.csv.zip"
        assert record.path == str(path)
        assert path.read_bytes() == b"PK\x03\x04abc"
        manifest = json.loads((path.parent / "_manifest.json").read_text())
        assert manifest == [record.to_dict()]
        assert manifest[0]["sha256"] == digest(b"PK\x03\x04abc")
        assert manifest[0]["size"] == 7

    def test_refetch_with_new_bytes_keeps_the_old_file(self, lake_root):
        """A changed re-publication never overwrites what was kept before."""
        lake = Lake(lake_root)
        lake.write_bronze("cm_delivery", DAY, "f.csv", b"old", url="u")
        lake.write_bronze("cm_delivery", DAY, "f.csv", b"old", url="u")
        lake.write_bronze("cm_delivery", DAY, "f.csv", b"new", url="u")
        directory = lake.bronze_dir("cm_delivery", DAY)
        assert (directory / "f.csv").read_bytes() == b"new"
        superseded = list((directory / "_superseded").iterdir())
        assert [p.read_bytes() for p in superseded] == [b"old"]
        assert [e["sha256"] for e in lake.bronze_manifest("cm_delivery", DAY)] == [
            digest(b"old"),
            digest(b"old"),
            digest(b"new"),
        ]
        assert lake.latest_bronze("cm_delivery", DAY).sha256 == digest(b"new")

    def test_missing_partition_names_the_directory(self, lake_root):
        """Asking for bronze that was never fetched says where it looked."""
        with pytest.raises(FileNotFoundError, match="trade_date=2024-07-05"):
            Lake(lake_root).latest_bronze("cm_bhavcopy", DAY)

    def test_refuses_path_like_file_names(self, lake_root):
        """A file name from a URL cannot escape its partition."""
        with pytest.raises(ValueError):
            Lake(lake_root).write_bronze("cm_bhavcopy", DAY, "../x", b"", url="u")


class TestCurrentBronze:
    def test_latest_fetch_of_each_folder(self, lake_root):
        """The date's own folder and each part folder give their latest fetch, base first."""
        lake = Lake(lake_root)
        lake.write_bronze("index_constituents", DAY, "a.csv", b"1", url="u", part="index=nifty50")
        lake.write_bronze("index_constituents", DAY, "a.csv", b"2", url="u", part="index=nifty50")
        lake.write_bronze("index_constituents", DAY, "b.csv", b"3", url="u", part="index=niftyit")
        lake.write_bronze("index_constituents", DAY, "c.zip", b"4", url="u")
        records = lake.current_bronze("index_constituents", DAY)
        assert [(r.part, r.file_name, r.read()) for r in records] == [
            (None, "c.zip", b"4"),
            ("index=nifty50", "a.csv", b"2"),
            ("index=niftyit", "b.csv", b"3"),
        ]
        assert lake.current_bronze("index_constituents", DAY + dt.timedelta(days=1)) == []

    def test_read_refuses_changed_bytes(self, lake_root):
        """A bronze file whose bytes no longer match its manifest is refused on reading."""
        lake = Lake(lake_root)
        record = lake.write_bronze("cm_delivery", DAY, "f.csv", b"served", url="u")
        Path(record.path).write_bytes(b"edited")
        with pytest.raises(ParseError, match=r"f\.csv: bronze file does not match the sha256"):
            lake.latest_bronze("cm_delivery", DAY).read()

    def test_entries_written_before_parts_and_headers(self, lake_root):
        """A manifest entry from before `part` and `headers` were recorded still reads."""
        lake = Lake(lake_root)
        record = lake.write_bronze("cm_delivery", DAY, "f.csv", b"x", url="u")
        old = {k: v for k, v in record.to_dict().items() if k not in ("part", "headers")}
        assert BronzeRecord.from_dict(old | {"attempts": 1}) == record

    @pytest.mark.parametrize("part", ["../x", "index", "index=../x", "index=_x", "Index=a"])
    def test_refuses_unsafe_parts(self, lake_root, part):
        """A part folder must be one `name=value` path component that is not hidden."""
        with pytest.raises(ValueError, match="unsafe part"):
            Lake(lake_root).write_bronze("option_chain", DAY, "f.json", b"{}", url="u", part=part)
        assert not (lake_root / "bronze").exists()


def _folder_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


class TestSilver:
    def test_rerun_replaces_the_partition_whole(self, lake_root):
        """After a rerun with other rows, the partition's folder holds exactly those rows."""
        lake = Lake(lake_root)
        lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [1, 2, 3]}))
        second = pl.DataFrame({"a": [9, 8]})
        path = lake.write_silver("cm_bhavcopy", DAY, second)
        assert pl.read_parquet(path.parent / "*.parquet").equals(second)
        assert _folder_files(path.parent) == [path.name]
        assert lake.silver_dates("cm_bhavcopy") == [DAY]
        assert lake.silver_rows("cm_bhavcopy", DAY) == 2

    def test_failed_write_leaves_the_old_partition(self, lake_root, monkeypatch):
        """A write that fails half-way leaves the previous file byte for byte, and no junk or
        temporary file beside it."""
        lake = Lake(lake_root)
        path = lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [1]}))
        before = path.read_bytes()

        def junk_then_fail(self, file, *args, **kwargs):
            Path(file).write_bytes(b"PAR1 half a file")
            raise OSError("disk full")

        monkeypatch.setattr(pl.DataFrame, "write_parquet", junk_then_fail)
        with pytest.raises(OSError, match="disk full"):
            lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [2]}))
        monkeypatch.undo()
        assert path.read_bytes() == before
        assert _folder_files(path.parent) == [path.name]

    def test_temporary_files_left_by_a_dead_writer_are_removed(self, lake_root):
        """A temporary file older than an hour is cleared by the next write; a fresh one (a
        writer at work) is left alone."""
        lake = Lake(lake_root)
        path = lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [1]}))
        stale, fresh = path.parent / ".part-0.parquet.dead.tmp", path.parent / ".live.tmp"
        for tmp in (stale, fresh):
            tmp.write_bytes(b"half")
        old = time.time() - lake_module.STALE_TEMP_SECONDS - 60
        os.utime(stale, (old, old))
        lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [2]}))
        assert _folder_files(path.parent) == [".live.tmp", path.name]

    def test_parts_add_files_to_a_partition(self, lake_root):
        """Named part files accumulate in a part folder; a name that is not Parquet is refused."""
        lake = Lake(lake_root)
        part = "underlying=NIFTY"
        for name, rows in (("101500_000000.parquet", [1]), ("102000_000000.parquet", [2, 3])):
            lake.write_part("silver", "option_chain", DAY, part, name, pl.DataFrame({"a": rows}))
        folder = lake.partition("silver", "option_chain", DAY, part)
        assert sorted(pl.read_parquet(folder / "*.parquet")["a"]) == [1, 2, 3]
        for name in ("x.json", "../x.parquet", ".x.parquet"):
            with pytest.raises(ValueError, match="unsafe"):
                lake.write_part("silver", "option_chain", DAY, part, name, pl.DataFrame())


class TestBronzeBatch:
    def test_one_manifest_write_per_partition(self, lake_root, monkeypatch):
        """Files land as served; each partition's manifest is written once, at close, in order."""
        lake = Lake(lake_root)
        manifests = []
        append = Lake._append_manifest
        monkeypatch.setattr(
            Lake,
            "_append_manifest",
            staticmethod(lambda d, records: manifests.append(d.name) or append(d, records)),
        )
        with lake.bronze_batch() as batch:
            records = [
                batch.write(
                    "option_chain", DAY, f"{i}.json", b"{%d}" % i, url="u", part=f"underlying={u}"
                )
                for i, u in enumerate(["NIFTY", "NIFTY", "TCS", "NIFTY"])
            ]
            assert Path(batch.written(records[0]).path).read_bytes() == b"{0}"
            assert manifests == []
        assert sorted(manifests) == ["underlying=NIFTY", "underlying=TCS"]
        nifty = lake.bronze_manifest("option_chain", DAY, "underlying=NIFTY")
        assert [e["file_name"] for e in nifty] == ["0.json", "1.json", "3.json"]
        assert nifty[2] == records[3].to_dict()
        tcs = lake.bronze_dir("option_chain", DAY, "underlying=TCS")
        assert [p.name for p in tcs.iterdir() if not p.name.startswith("_manifest.lock")] == [
            "2.json",
            "_manifest.json",
        ]

    def test_a_failed_write_is_raised_and_the_rest_recorded(self, lake_root, monkeypatch):
        """One file that cannot be written fails the batch at close; the others stay listed."""
        write = lake_module.atomic_write_bytes

        def full_for_b(path, data):
            if path.name == "b.json":
                raise OSError("disk full")
            write(path, data)

        monkeypatch.setattr(lake_module, "atomic_write_bytes", full_for_b)
        lake = Lake(lake_root)
        with pytest.raises(OSError, match="disk full"), lake.bronze_batch() as batch:
            for name in ("a.json", "b.json", "c.json"):
                batch.write("option_chain", DAY, name, b"{}", url="u", part="underlying=NIFTY")
        manifest = lake.bronze_manifest("option_chain", DAY, "underlying=NIFTY")
        assert [e["file_name"] for e in manifest] == ["a.json", "c.json"]

    def test_same_name_twice_keeps_both(self, lake_root):
        """A name written twice in one batch keeps the first bytes under _superseded/."""
        lake = Lake(lake_root)
        with lake.bronze_batch() as batch:
            batch.write("cm_delivery", DAY, "f.csv", b"old", url="u")
            batch.write("cm_delivery", DAY, "f.csv", b"new", url="u")
        directory = lake.bronze_dir("cm_delivery", DAY)
        assert (directory / "f.csv").read_bytes() == b"new"
        assert [p.read_bytes() for p in (directory / "_superseded").iterdir()] == [b"old"]
        assert [e["size"] for e in lake.bronze_manifest("cm_delivery", DAY)] == [3, 3]


# ---- writers in separate processes -------------------------------------------------------------
def _write_bronze_files(start, writer: int, root: str, files: int) -> None:
    start.wait()
    lake = Lake(root)
    for n in range(files):
        name = f"w{writer}_{n}.csv"
        lake.write_bronze("cm_delivery", DAY, name, name.encode(), url=f"http://x/{name}")


def _rewrite_silver(start, writer: int, root: str, times: int) -> None:
    start.wait()
    lake = Lake(root)
    for n in range(times):
        rows = 1000 + 100 * writer + n
        lake.write_silver(
            "cm_bhavcopy", DAY, pl.DataFrame({"writer": [writer] * rows, "n": range(rows)})
        )


def _run_together(target, root: Path, count: int) -> list[int | None]:
    """`target(start, writer, root, count)` for writers 0 and 1 in two processes released at
    once; their exit codes (None for one still running after two minutes, which is killed)."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    processes = [
        context.Process(target=target, args=(start, writer, str(root), count)) for writer in (0, 1)
    ]
    for process in processes:
        process.start()
    codes = []
    for process in processes:
        process.join(120)
        codes.append(process.exitcode)
        if process.is_alive():
            process.kill()
    return codes


class TestConcurrentWriters:
    def test_bronze_manifest_keeps_every_entry(self, lake_root):
        """Two processes fetching 20 files each into one folder leave all 40 manifest entries,
        each naming its file's bytes."""
        assert _run_together(_write_bronze_files, lake_root, 20) == [0, 0]
        lake = Lake(lake_root)
        manifest = lake.bronze_manifest("cm_delivery", DAY)
        names = sorted(e["file_name"] for e in manifest)
        assert names == sorted(f"w{w}_{n}.csv" for w in (0, 1) for n in range(20))
        assert all(BronzeRecord.from_dict(e).read() == e["file_name"].encode() for e in manifest)

    def test_silver_rewrites_leave_one_complete_file(self, lake_root):
        """Two processes rewriting one partition 50 times each never fail, and leave one whole
        file: one writer's last frame."""
        assert _run_together(_rewrite_silver, lake_root, 50) == [0, 0]
        folder = Lake(lake_root).partition("silver", "cm_bhavcopy", DAY)
        assert _folder_files(folder) == [lake_module.SILVER_FILE]
        frame = pl.read_parquet(folder / "*.parquet")
        (writer,) = frame["writer"].unique().to_list()
        assert frame["n"].to_list() == list(range(1000 + 100 * writer + 49))
