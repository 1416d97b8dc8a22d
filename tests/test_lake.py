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
                batch.write("option_chain", DAY, f"{i}.json", b"{%d}" % i, url="u", underlying=u)
                for i, u in enumerate(["NIFTY", "NIFTY", "TCS", "NIFTY"])
            ]
            assert batch.written(records[0].path).read_bytes() == b"{0}"
            assert manifests == []
        assert sorted(manifests) == ["underlying=NIFTY", "underlying=TCS"]
        nifty = lake.bronze_manifest("option_chain", DAY, "NIFTY")
        assert [e["file_name"] for e in nifty] == ["0.json", "1.json", "3.json"]
        assert nifty[2] == records[3].to_dict()
        assert [p.name for p in lake.bronze_dir("option_chain", DAY, "TCS").iterdir()] == [
            "2.json",
            "_manifest.json",
        ]

    def test_a_failed_write_is_raised_and_the_rest_recorded(self, lake_root, monkeypatch):
        """One file that cannot be written fails the batch at close; the others stay listed."""
        from include.nse import lake as lake_module

        write = lake_module._atomic_write_bytes

        def full_for_b(path, data):
            if path.name == "b.json":
                raise OSError("disk full")
            write(path, data)

        monkeypatch.setattr(lake_module, "_atomic_write_bytes", full_for_b)
        lake = Lake(lake_root)
        with pytest.raises(OSError, match="disk full"), lake.bronze_batch() as batch:
            for name in ("a.json", "b.json", "c.json"):
                batch.write("option_chain", DAY, name, b"{}", url="u", underlying="NIFTY")
        manifest = lake.bronze_manifest("option_chain", DAY, "NIFTY")
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
