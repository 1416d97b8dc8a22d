"""Every real bulk and block deal file in ../shared/nse-samples parses, and agrees with itself.

Counts and sums are taken from each file with the standard library's csv and json modules, not
the parser, so a row dropped, doubled or mistyped shows up.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest

from include.nse import sources
from include.nse.errors import ParseError
from include.nse.pipeline import parse_file
from include.nse.sources.deals import KEY
from tests.helpers import blank_field

FOLDER = "bulk_block_deals"
#: Real file -> the dataset it belongs to, and the trade date its name says it holds.
FILES = {
    "bulk_2017-04-03_rsureshyadav.csv": ("bulk_deals", dt.date(2017, 4, 3)),
    "bulk_2024-12-03_tsrajpurohit.csv": ("bulk_deals", dt.date(2024, 12, 3)),
    "block_2024-12-03_NO-RECORDS_tsrajpurohit.csv": ("block_deals", dt.date(2024, 12, 3)),
    "block_2026-08-20_tsrajpurohit.csv": ("block_deals", dt.date(2026, 8, 20)),
    "TRIMMED_historicalOR-bulk_deals_sample_NseIndiaApi.json": ("bulk_deals", dt.date(2025, 12, 1)),
    "TRIMMED_historicalOR-block_deals_sample_NseIndiaApi.json": (
        "block_deals",
        dt.date(2025, 12, 1),
    ),
    "TRIMMED_api-block-deal_live_sample_NseIndiaApi.json": ("block_deals", None),
}


def expected(path: Path) -> dict:
    """Rows, shares, rupees traded, buys and remarks, read from the file by the stdlib."""
    if path.suffix == ".json":
        document = json.loads(path.read_text())
        deals = document["data"] if isinstance(document, dict) else document
        rows = [
            (d["BD_QTY_TRD"], Decimal(str(d["BD_TP_WATP"])), d["BD_BUY_SELL"], d["BD_REMARKS"])
            for d in deals
        ]
    else:
        records = list(csv.reader(io.StringIO(path.read_text())))[1:]
        rows = [
            (int(r[5]), Decimal(r[6]), r[4], r[7] if len(r) > 7 else None)
            for r in records
            if r[0] != "NO RECORDS"
        ]
    return {
        "rows": len(rows),
        "shares": sum(q for q, *_ in rows),
        "value": sum(q * p for q, p, *_ in rows),
        "buys": sum(side == "BUY" for _, _, side, _ in rows),
        "remarks": sum(r not in (None, "-") for *_, r in rows),
    }


@pytest.fixture(scope="module")
def folder(samples_dir) -> Path:
    return samples_dir / FOLDER


def test_every_sample_is_covered(folder):
    """Each file in the folder is in FILES, so a new sample cannot go unchecked."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)


@pytest.mark.parametrize("name", FILES)
def test_counts_and_sums_agree_with_the_file(folder, name):
    """Rows, shares, rupees, buys and remarks as the file itself holds them."""
    dataset, day = FILES[name]
    frame = parse_file(sources.get(dataset), (folder / name).read_bytes(), name, day)
    want = expected(folder / name)
    assert frame.height == want["rows"]
    assert frame["quantity"].sum() == want["shares"]
    value = sum(
        Decimal(str(q)) * Decimal(str(p)) for q, p in frame.select("quantity", "price").rows()
    )
    assert value == want["value"]
    assert (frame["side"] == "BUY").sum() == want["buys"]
    assert frame["remarks"].count() == want["remarks"]
    assert frame.select(KEY).is_unique().all()
    if day is not None and frame.height:
        assert frame["trade_date"].unique().to_list() == [day]


def test_no_records_is_an_empty_day(folder):
    """The real NO RECORDS block.csv is a header and one marker row: zero deals, no error."""
    path = folder / "block_2024-12-03_NO-RECORDS_tsrajpurohit.csv"
    assert path.read_text().splitlines()[1] == "NO RECORDS,,,,,,"
    assert sources.get("block_deals").parse(path.read_bytes(), path.name).height == 0


def test_block_file_has_no_remarks_and_bulk_has(folder):
    """The real headers differ by Remarks alone, which keeps the two kinds apart."""
    bulk = (folder / "bulk_2024-12-03_tsrajpurohit.csv").read_text().splitlines()[0]
    block = (folder / "block_2026-08-20_tsrajpurohit.csv").read_text().splitlines()[0]
    assert bulk == block + ",Remarks"
    with pytest.raises(ParseError, match="no Remarks column"):
        sources.get("block_deals").parse(
            (folder / "bulk_2024-12-03_tsrajpurohit.csv").read_bytes(), "bulk.csv"
        )


def test_archive_dates_are_upper_case_months(folder):
    """Archive files print 03-APR-2017; the parser reads them as the day they name."""
    path = folder / "bulk_2017-04-03_rsureshyadav.csv"
    assert path.read_text().splitlines()[1].startswith("03-APR-2017,")
    holds = sources.get("bulk_deals").publication.holds
    assert holds(path.read_bytes(), path.name) == dt.date(2017, 4, 3)


def test_names_keep_nse_spacing(folder):
    """Client names are kept as printed, double spaces included (SRISHTI  SOMANI)."""
    path = folder / "bulk_2024-12-03_tsrajpurohit.csv"
    frame = sources.get("bulk_deals").parse(path.read_bytes(), path.name)
    assert "SRISHTI  SOMANI" in frame["client_name"].to_list()


@pytest.mark.parametrize(
    ("name", "column"),
    [
        ("bulk_2024-12-03_tsrajpurohit.csv", "Quantity Traded"),
        ("bulk_2017-04-03_rsureshyadav.csv", "Quantity Traded"),
        ("block_2026-08-20_tsrajpurohit.csv", "Quantity Traded"),
        ("bulk_2024-12-03_tsrajpurohit.csv", "Trade Price / Wght. Avg. Price"),
    ],
)
def test_blank_number_is_refused(folder, name, column):
    """A deal's numbers (quantity, price) are part of its key, so unlike a bhavcopy's a blank
    one is not left to the gate: the parser refuses it, naming the line and the column."""
    raw = (folder / name).read_bytes()
    line = 3  # the second deal
    dataset = sources.get("bulk_deals" if name.startswith("bulk") else "block_deals")
    with pytest.raises(ParseError, match="found nothing") as caught:
        dataset.parse(blank_field(raw, line, column), name)
    assert (caught.value.line, caught.value.column) == (line, column)
