"""Index constituents: every real NSE file in ../shared/nse-samples/index_constituents parses,
with counts, symbols and weights checked against the file itself (read with csv and zipfile).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import re
import zipfile
from pathlib import Path

import pytest

from include.nse.errors import ParseError
from include.nse.sources import index_constituents as source
from tests.helpers import blank_field, check_blank_number

FOLDER = "index_constituents"


def _files(samples_dir: Path, pattern: str) -> list[Path]:
    found = sorted((samples_dir / FOLDER).glob(pattern))
    if not found:
        pytest.skip(f"no {pattern} in {samples_dir / FOLDER}")
    return found


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class TestLists:
    def test_every_list(self, samples_dir):
        """Rows, symbols and ISINs as in the file; the index is named by the file's name."""
        for path in _files(samples_dir, "ind_*list*.csv"):
            expected = _rows(path)
            df = source.parse(path.read_bytes(), path.name)
            assert df.height == len(expected) > 0, path.name
            assert df["symbol"].to_list() == [r["Symbol"].strip() for r in expected]
            assert df["isin"].to_list() == [r["ISIN Code"].strip() for r in expected]
            assert df["series"].to_list() == [r["Series"].strip() for r in expected]
            stem = path.name.split("_")[1]  # ind_nifty50list_2025-06_x.csv -> nifty50list
            assert df["index_name"].unique().to_list() == [
                next(i.name for i in source.INDICES if i.list_file == f"ind_{stem}.csv")
            ]

    def test_crlf_list_without_final_newline(self, samples_dir):
        """The 2025 NIFTY 50 list (CRLF, no final newline) gives all 50 rows, the last included."""
        (path,) = _files(samples_dir, "ind_nifty50list_*.csv")
        data = path.read_bytes()
        assert b"\r\n" in data and not data.endswith(b"\n")
        df = source.parse(data, path.name)
        assert df.height == 50
        assert df["symbol"][-1] == data.rsplit(b"\r\n", 1)[1].split(b",")[2].decode()

    def test_old_uppercase_industries_kept(self, samples_dir):
        """The 2021 NIFTY BANK list's UPPERCASE industry stays as printed."""
        (path,) = _files(samples_dir, "ind_niftybanklist_*.csv")
        df = source.parse(path.read_bytes(), path.name)
        assert set(df["industry"]) == {r["Industry"] for r in _rows(path)} == {"FINANCIAL SERVICES"}

    def test_nifty500_versions(self, samples_dir):
        """Two versions of the NIFTY 500 list differ by the rebalance between them."""
        paths = _files(samples_dir, "ind_nifty500list_*.csv")
        if len(paths) < 2:
            pytest.skip(f"only {[p.name for p in paths]}: a second version is needed to compare")
        for older, newer in itertools.pairwise(paths):
            before = set(source.parse(older.read_bytes(), older.name)["symbol"])
            after = set(source.parse(newer.read_bytes(), newer.name)["symbol"])
            assert before != after
            assert after - before == {r["Symbol"] for r in _rows(newer)} - before


class TestMonthlyArchive:
    def test_every_archive(self, samples_dir):
        """Each member's rows and weight sum as in the file, dated by its footnote."""
        for path in _files(samples_dir, "mcwb_*.zip"):
            df = source.parse(path.read_bytes(), path.name)
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("_mcwb.csv")]
                assert names
                for name in names:
                    text = archive.read(name).decode()
                    rows = list(csv.reader(io.StringIO(text)))
                    banner = re.search(r"-\s*(.+?) Index", rows[0][0]).group(1).upper()
                    day = re.search(r"Last day of trading was (\S+?),", text).group(1)
                    data = [r for r in rows if r and r[0].strip().isdigit()]
                    mine = df.filter(df["index_name"] == banner)
                    assert mine.height == len(data) > 0, name
                    assert mine["symbol"].to_list() == [r[1] for r in data]
                    assert mine["weight"].sum() == pytest.approx(sum(float(r[6]) for r in data))
                    assert set(mine["as_of"]) == {dt.datetime.strptime(day, "%d-%b-%Y").date()}

    def test_may_2022(self, samples_dir):
        """mcwb_may22.zip: NIFTY 50 and NEXT 50 as of 31 May 2022, weights summing to ~100."""
        (path,) = _files(samples_dir, "mcwb_may22.zip")
        df = source.parse(path.read_bytes(), path.name)
        totals = {
            name: sum(df.filter(df["index_name"] == name)["weight"]) for name in df["index_name"]
        }
        assert totals == {
            "NIFTY 50": pytest.approx(100, abs=0.1),
            "NIFTY NEXT 50": pytest.approx(100, abs=0.1),
        }
        assert set(df["trade_date"]) == {dt.date(2022, 5, 31)}

    def test_blank_weight_is_null_and_passes_the_gate(self, samples_dir):
        """A blank weight in the real archive keeps its row with a null weight, the rest as it
        was. No check notices: a weight is null in two of the three shapes (lists, API), and
        the gate cannot tell an archive row from those."""
        (path,) = _files(samples_dir, "mcwb_may22.zip")
        raw = path.read_bytes()
        member = "nifty50_mcwb.csv"
        with zipfile.ZipFile(path) as archive:
            lines = archive.read(member).decode().split("\n")
        header = next(n for n, text in enumerate(lines, 1) if text.startswith("Sr. No,"))
        blanked = blank_field(raw, header + 1, "Weightage (%)", member=member, header_line=header)
        original = source.parse(raw, path.name)
        frame = source.parse(blanked, path.name)
        # The first constituent of NIFTY 50, the first member, is the frame's first row.
        assert original.row(0, named=True)["index_name"] == "NIFTY 50"
        before, after, new = check_blank_number(source.DATASET, original, frame, 0, "weight")
        assert before.failed == [] and after.failed == []
        assert new == set()


class TestApi:
    def test_trimmed_sample_has_no_list(self, samples_dir):
        """The trimmed API sample keeps only the index's own row: refused, not loaded empty."""
        (path,) = _files(samples_dir, "TRIMMED_equity-stockIndices_*.json")
        document = json.loads(path.read_bytes())
        assert [row["priority"] for row in document["data"]] == [1]
        with pytest.raises(ParseError, match=r"constituents of NIFTY 50 .* found none"):
            source.parse(path.read_bytes(), path.name)
