"""The lake keeps raw bytes immutable and replaces silver partitions whole."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from include.nse.lake import Lake, sha256_bytes

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
        assert manifest[0]["sha256"] == sha256_bytes(b"PK\x03\x04abc")
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
            sha256_bytes(b"old"),
            sha256_bytes(b"old"),
            sha256_bytes(b"new"),
        ]
        assert lake.latest_bronze("cm_delivery", DAY).sha256 == sha256_bytes(b"new")

    def test_missing_partition_names_the_directory(self, lake_root):
        """Asking for bronze that was never fetched says where it looked."""
        with pytest.raises(FileNotFoundError, match="trade_date=2024-07-05"):
            Lake(lake_root).latest_bronze("cm_bhavcopy", DAY)

    def test_refuses_path_like_file_names(self, lake_root):
        """A file name from a URL cannot escape its partition."""
        with pytest.raises(ValueError):
            Lake(lake_root).write_bronze("cm_bhavcopy", DAY, "../x", b"", url="u")


class TestSilver:
    def test_rerun_replaces_the_partition_whole(self, lake_root):
        """A second write leaves only the second frame, and no temporary directories."""
        lake = Lake(lake_root)
        lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [1, 2, 3]}))
        path = lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [9]}))
        assert pl.read_parquet(path)["a"].to_list() == [9]
        siblings = sorted(p.name for p in path.parent.parent.iterdir())
        assert siblings == ["trade_date=2024-07-05"]
        assert lake.silver_dates("cm_bhavcopy") == [DAY]

    def test_failed_write_leaves_the_old_partition(self, lake_root, monkeypatch):
        """If writing fails half-way, readers still see the previous partition."""
        lake = Lake(lake_root)
        lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [1]}))

        def boom(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
        with pytest.raises(OSError):
            lake.write_silver("cm_bhavcopy", DAY, pl.DataFrame({"a": [2]}))
        monkeypatch.undo()
        assert lake.read_silver("cm_bhavcopy", DAY)["a"].to_list() == [1]
        assert len(list(lake.silver_dir("cm_bhavcopy", DAY).parent.iterdir())) == 1
