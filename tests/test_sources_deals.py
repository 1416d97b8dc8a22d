"""Bulk and block deal parsers, their generator and their fetch, on files in NSE's bytes."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from include.nse import sources
from include.nse.cli import cli
from include.nse.errors import InHistory, NotPublished, ParseError
from include.nse.pipeline import Context, fetch, parse_file
from include.nse.sources import _csv
from include.nse.sources.base import Request
from include.nse.sources.deals import KEY
from include.nse_standin.deals import (
    KINDS,
    api_json,
    archive_csv,
    deals,
    indian_grouping,
    web_export_csv,
    write_web_export,
)
from include.nse_standin.generate import generate
from include.nse_standin.market import Universe
from include.nse_standin.market import sessions as _market
from include.nse_standin.server import StandIn, api_file
from tests.helpers import csv_file, standin_settings

BULK_HEADER = (
    "Date,Symbol,Security Name,Client Name,Buy/Sell,Quantity Traded,"
    "Trade Price / Wght. Avg. Price,Remarks"
)
BLOCK_HEADER = BULK_HEADER.removesuffix(",Remarks")
BULK_ROW = "03-DEC-2024,DIL,Debock Industries Limited,ISHAAN TRADEFIN LLP,BUY,1810002,3.29,-"
BLOCK_ROW = "20-AUG-2026,NXT-INFRA,Nxt-Infra Trust,KOTAK MAHINDRA BANK LIMITED,BUY,9550000,93.85"
DAY = dt.date(2024, 7, 5)
SHAPES = {"archive": archive_csv, "export": web_export_csv, "api": api_json}


def bulk(*rows: str, header: str = BULK_HEADER):
    return sources.get("bulk_deals").parse(csv_file(header, *rows), "bulk.csv")


def block(*rows: str, header: str = BLOCK_HEADER):
    return sources.get("block_deals").parse(csv_file(header, *rows), "block.csv")


@pytest.fixture(scope="module")
def session():
    return next(_market(Universe.build(7, 300), 7, [DAY], []))


class TestEveryShape:
    @pytest.mark.parametrize("kind", KINDS)
    @pytest.mark.parametrize("shape", SHAPES)
    def test_generated_file_gives_its_deals(self, session, kind, shape):
        """Archive CSV, web export and API JSON of the same deals give the same silver rows."""
        made = deals(session, kind)
        assert made, "the generator made no deals to compare"
        frame = sources.get(kind).parse(SHAPES[shape](DAY, kind, made), f"{kind}.{shape}")
        assert frame.schema == sources.get(kind).schema
        got = frame.select("symbol", "client_name", "side", "quantity", "price").rows()
        assert got == [(d.symbol, d.client_name, d.side, d.quantity, d.price / 100) for d in made]
        assert set(frame["trade_date"]) == {DAY}
        assert frame["remarks"].null_count() == frame.height

    def test_archive_row_values(self):
        """An archive bulk.csv row, typed; Remarks '-' is null."""
        assert bulk(BULK_ROW).row(0, named=True) == {
            "trade_date": dt.date(2024, 12, 3),
            "symbol": "DIL",
            "security_name": "Debock Industries Limited",
            "client_name": "ISHAAN TRADEFIN LLP",
            "side": "BUY",
            "quantity": 1810002,
            "price": 3.29,
            "remarks": None,
            "deal_ordinal": 1,
            "source_format": "archive_csv",
        }

    def test_remarks_other_than_dash_are_kept(self):
        """A real remark stays as text."""
        row = BULK_ROW.removesuffix("-") + "Pledge invoked"
        assert bulk(row)["remarks"].to_list() == ["Pledge invoked"]

    def test_web_export_quirks(self):
        """BOM, quotes, padded names, a spaced slash, 1,08,000 and &amp; all read as NSE means."""
        header = ",".join(f'"{name} "' for name in BLOCK_HEADER.replace("/", " / ").split(","))
        row = (
            '"20-Aug-2026","M&amp;M","Mahindra &amp; Mahindra Ltd","LARSEN &amp; TOUBRO LIMITED",'
            '"sell","1,08,000","3,125.50"'
        )
        raw = b"\xef\xbb\xbf" + csv_file(header, row, newline="\r\n")
        frame = sources.get("block_deals").parse(raw, "Block-Deals.csv")
        assert frame.row(0, named=True) | {"trade_date": None} == {
            "trade_date": None,
            "symbol": "M&M",
            "security_name": "Mahindra & Mahindra Ltd",
            "client_name": "LARSEN & TOUBRO LIMITED",
            "side": "SELL",
            "quantity": 108_000,
            "price": 3125.5,
            "remarks": None,
            "deal_ordinal": 1,
            "source_format": "export_csv",
        }
        assert frame["trade_date"].to_list() == [dt.date(2026, 8, 20)]

    @pytest.mark.parametrize(
        ("number", "printed"), [(7, "7"), (108000, "1,08,000"), (123456789, "12,34,56,789")]
    )
    def test_indian_grouping(self, number, printed):
        """The generator groups digits as NSE's site does: thousands, then pairs."""
        assert indian_grouping(number) == printed

    def test_api_list_without_data_wrapper(self):
        """A bare list of BD_* objects (as the trimmed samples hold) parses like `data`."""
        made = [{"BD_DT_DATE": "01-DEC-2025", "BD_SYMBOL": "ASTEC", "BD_SCRIP_NAME": "Astec",
                 "BD_CLIENT_NAME": "HRTI PRIVATE LIMITED", "BD_BUY_SELL": "BUY",
                 "BD_QTY_TRD": 108709, "BD_TP_WATP": 826.15, "BD_REMARKS": "-"}]  # fmt: skip
        dataset = sources.get("bulk_deals")
        bare = dataset.parse(json.dumps(made).encode(), "a.json")
        wrapped = dataset.parse(json.dumps({"data": made}).encode(), "b.json")
        assert bare.equals(wrapped)
        assert bare.select("quantity", "price").row(0) == (108709, 826.15)

    def test_web_export_file_written_for_tests(self, session, tmp_path):
        """The web export writer names the file as NSE's site does and it parses."""
        written = write_web_export(session, tmp_path, "bulk_deals")
        assert written.path.name == "Bulk-Deals-05-07-2024-to-05-07-2024.csv"
        assert written.path.read_bytes().startswith(b'\xef\xbb\xbf"Date ",')
        raw = written.path.read_bytes()
        frame = parse_file(sources.get("bulk_deals"), raw, written.path.name, DAY)
        assert frame.height == written.rows


class TestNoRecords:
    def test_no_records_is_zero_deals(self):
        """block.csv on a day without block deals gives zero rows, with the silver schema."""
        frame = block("NO RECORDS,,,,,,")
        assert frame.height == 0
        assert frame.schema == sources.get("block_deals").schema

    def test_generated_empty_day_in_every_shape(self, session):
        """A day without deals is NO RECORDS in the archive and empty data in the API."""
        assert archive_csv(DAY, "block_deals", []).endswith(b"\nNO RECORDS,,,,,,\n")
        for shape in SHAPES.values():
            raw = shape(DAY, "block_deals", [])
            assert sources.get("block_deals").parse(raw, "x").height == 0

    def test_no_records_next_to_deals_is_refused(self):
        """NO RECORDS among deals is no date: the error names its line."""
        with pytest.raises(ParseError, match=r"block.csv, line 3, column 'Date'"):
            block(BLOCK_ROW, "NO RECORDS,,,,,,")

    def test_no_records_with_values_is_refused(self):
        """A NO RECORDS line carrying values is not NSE's empty day."""
        with pytest.raises(ParseError, match=r"line 2, column 'Symbol'.*found 'DIL'"):
            block("NO RECORDS,DIL,,,,,")


class TestIdenticalDeals:
    def test_both_kept_and_numbered(self):
        """Two identical deals stay two rows, with ordinals 1 and 2; others get 1."""
        other = BULK_ROW.replace("1810002", "170195")
        frame = bulk(BULK_ROW, other, BULK_ROW)
        assert frame.height == 3
        assert frame["deal_ordinal"].to_list() == [1, 1, 2]
        assert frame.select(KEY).is_unique().all()

    def test_ordinals_do_not_depend_on_row_order(self):
        """Reordered rows give the same set of keyed rows: a rerun from another source agrees."""
        other = BULK_ROW.replace("ISHAAN TRADEFIN LLP", "DEVI TRADERS LLP")
        one = bulk(BULK_ROW, other, BULK_ROW).sort(KEY)
        two = bulk(other, BULK_ROW, BULK_ROW).sort(KEY)
        assert one.equals(two)

    def test_generator_writes_an_identical_pair(self, session):
        """Each generated day's bulk deals hold one identical pair, numbered apart."""
        frame = sources.get("bulk_deals").parse(
            archive_csv(DAY, "bulk_deals", deals(session, "bulk_deals")), "bulk.csv"
        )
        assert frame["deal_ordinal"].max() == 2
        assert frame.select(KEY).is_unique().all()
        _csv.require_unique(frame.with_row_index(_csv.LINE), "bulk.csv", KEY)


class TestErrors:
    def test_bad_quantity_names_line_and_column(self):
        """A quantity that is not a whole number names its file, line and column."""
        bad = BULK_ROW.replace("1810002", "18100.5")
        with pytest.raises(
            ParseError, match=r"bulk.csv, line 3, column 'Quantity Traded': expected a whole"
        ):
            bulk(BULK_ROW, bad)

    def test_bad_side(self):
        """A side other than BUY or SELL is refused where it is."""
        with pytest.raises(ParseError, match=r"line 2, column 'Buy/Sell': expected BUY or SELL"):
            bulk(BULK_ROW.replace(",BUY,", ",HOLD,"))

    def test_bad_date(self):
        """A date NSE would not print is refused."""
        with pytest.raises(ParseError, match=r"line 2, column 'Date': expected a date"):
            bulk(BULK_ROW.replace("03-DEC-2024", "2024/12/03"))

    def test_bulk_file_is_not_block_deals(self):
        """bulk.csv fed to block deals (or block.csv to bulk) is refused by its Remarks column."""
        with pytest.raises(ParseError, match=r"line 1: expected no Remarks column in a block"):
            block(BULK_ROW, header=BULK_HEADER)
        with pytest.raises(ParseError, match=r"line 1: expected a Remarks column in a bulk"):
            bulk(BLOCK_ROW, header=BLOCK_HEADER)

    def test_missing_column(self):
        """A header without Client Name says what it lacks and what it found."""
        header = BLOCK_HEADER.replace("Client Name", "Buyer")
        with pytest.raises(ParseError, match=r"line 1: header lacks Client Name; found Date"):
            block(BLOCK_ROW, header=header)

    def test_api_deal_errors_name_the_deal_and_key(self):
        """A bad API deal names its place in data and its BD_* key."""
        good = {"BD_DT_DATE": "01-DEC-2025", "BD_SYMBOL": "X", "BD_SCRIP_NAME": "X Ltd",
                "BD_CLIENT_NAME": "C", "BD_BUY_SELL": "BUY", "BD_QTY_TRD": 10,
                "BD_TP_WATP": 1.5, "BD_REMARKS": None}  # fmt: skip
        raw = json.dumps({"data": [good, good | {"BD_QTY_TRD": "ten"}]}).encode()
        with pytest.raises(
            ParseError, match=r"^a.json, column 'BD_QTY_TRD': deal 2 of data: expected a whole"
        ):
            sources.get("block_deals").parse(raw, "a.json")

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            (b'{"data": 3}', ": expected a list of deals"),
            (b"[1, 2]", ": deal 1 of data: expected an object"),
            (b'{"data": [', ", line 1: expected JSON"),
        ],
    )
    def test_api_shape_errors(self, raw, expected):
        """JSON that is not a list of deals is refused with the file's name."""
        with pytest.raises(ParseError, match=rf"^h\.json{expected}"):
            sources.get("bulk_deals").parse(raw, "h.json")


def holds(name: str, raw: bytes, file_name: str) -> dt.date | None:
    """The day a latest-day file holds, as its dataset's fetch reads it."""
    return sources.get(name).publication.holds(raw, file_name)


class TestFileDate:
    def test_date_of_a_day(self):
        """A daily file's rows name its day; a day without deals names none."""
        assert holds("bulk_deals", csv_file(BULK_HEADER, BULK_ROW), "b") == dt.date(2024, 12, 3)
        empty = csv_file(BLOCK_HEADER, "NO RECORDS,,,,,,")
        assert holds("block_deals", empty, "block.csv") is None

    def test_two_days_are_refused(self):
        """An archive file holds one day: two are refused."""
        other = BULK_ROW.replace("03-DEC-2024", "04-DEC-2024")
        with pytest.raises(ParseError, match=r"one day, found 2024-12-03 to 2024-12-04"):
            holds("bulk_deals", csv_file(BULK_HEADER, BULK_ROW, other), "b")


class TestGenerator:
    FIRST, LAST = dt.date(2024, 7, 1), dt.date(2024, 7, 12)

    @pytest.fixture(scope="class")
    def root(self, tmp_path_factory):
        root = tmp_path_factory.mktemp("deals")
        generate(self.FIRST, self.LAST, root, symbols=300, datasets=[*KINDS, "cm_delivery"])
        return root

    def _api(self, root, kind, day):
        params = {"optionType": kind, "from": f"{day:%d-%m-%Y}", "to": f"{day:%d-%m-%Y}"}
        return json.loads(api_file(root, "historicalOR/bulk-block-short-deals", params).read_text())

    def test_api_answer_per_day_archive_for_the_last(self, root):
        """Every trading day has an API answer; the archive files hold the last day only."""
        for kind, name in (("bulk_deals", "bulk.csv"), ("block_deals", "block.csv")):
            for day in (self.FIRST, self.LAST):
                assert "data" in self._api(root, kind, day)
            text = (root / "content/equities" / name).read_text()
            assert "12-JUL-2024," in text or "NO RECORDS" in text
            assert "11-JUL-2024" not in text

    def test_some_days_without_block_deals(self, root):
        """Some days have no block deals, others have some."""
        days = [self.FIRST + dt.timedelta(days=n) for n in range(12)]
        counts = [len(self._api(root, "block_deals", d)["data"]) for d in days if d.weekday() < 5]
        assert 0 in counts and max(counts) > 0

    def test_deals_are_in_shares_traded_that_day(self, root):
        """Deal symbols traded that day, at a price inside the day's range (bulk deals)."""
        day = dt.date(2024, 7, 3)
        path = root / f"products/content/sec_bhavdata_full_{day:%d%m%Y}.csv"
        with path.open() as f:
            rows = {(r["SYMBOL"], r[" SERIES"].strip()): r for r in csv.DictReader(f)}
        ranges = {
            s: (float(r[" LOW_PRICE"]), float(r[" HIGH_PRICE"])) for (s, _), r in rows.items()
        }
        for deal in self._api(root, "bulk_deals", day)["data"]:
            low, high = ranges[deal["BD_SYMBOL"]]
            assert low <= deal["BD_TP_WATP"] <= high

    def test_same_seed_same_bytes(self, root, tmp_path):
        """A day's files depend on the seed and the day only."""
        generate(self.LAST, self.LAST, tmp_path, symbols=300, datasets=list(KINDS))
        for name in ("bulk.csv", "block.csv"):
            path = f"content/equities/{name}"
            assert (tmp_path / path).read_bytes() == (root / path).read_bytes()


class TestFetch:
    """Today's file, not yet today's, or history: the fetch decides from the file itself."""

    @pytest.fixture()
    def nse(self, tmp_path):
        root = tmp_path / "nse"
        generate(dt.date(2024, 7, 4), dt.date(2024, 7, 5), root, symbols=300, datasets=list(KINDS))
        with StandIn(root) as standin:
            yield root, standin, Context(standin_settings(standin.url, lake_root=tmp_path / "lake"))

    def test_the_archive_file_for_its_own_day(self, nse):
        """The archive's file holding the trade date is kept in bronze as served."""
        root, standin, ctx = nse
        stats = fetch(ctx, sources.get("bulk_deals"), Request(DAY))
        assert stats["url"].endswith("/content/equities/bulk.csv")
        (kept,) = stats["files"]
        served = (root / "content/equities/bulk.csv").read_bytes()
        assert Path(kept["path"]).read_bytes() == served
        assert ctx.lake.latest_bronze("bulk_deals", DAY).read() == served
        assert not any(e["path"].startswith("/api/") for e in standin.request_log)

    def test_a_later_day_is_not_published_yet(self, nse):
        """The archive still holding an earlier day means the trade date is not out yet."""
        _, _, ctx = nse
        with pytest.raises(NotPublished, match="still holds 2024-07-05"):
            fetch(ctx, sources.get("bulk_deals"), Request(dt.date(2024, 7, 8)))
        assert ctx.lake.bronze_manifest("bulk_deals", dt.date(2024, 7, 8)) == []

    def test_an_earlier_day_comes_from_the_api(self, nse):
        """A date the archive has moved past is fetched from the historical API."""
        _, standin, ctx = nse
        day = dt.date(2024, 7, 4)
        stats = fetch(ctx, sources.get("block_deals"), Request(day))
        assert "it holds 2024-07-05" in stats["in_history"]
        (kept,) = stats["files"]
        assert kept["path"].endswith("trade_date=2024-07-04/bulk-block-short-deals.json")
        api = [e for e in standin.request_log if e["path"].startswith("/api/")]
        assert api[-1]["query"] == "optionType=block_deals&from=04-07-2024&to=04-07-2024"
        frame = parse_file(sources.get("block_deals"), Path(kept["path"]).read_bytes(), "x", day)
        assert frame["source_format"].unique().to_list() in ([], ["api_json"])

    def test_an_earlier_day_without_history_raises(self, nse):
        """Asked not to use the API, a date the archive moved past raises InHistory and keeps
        nothing: the caller fetches history on its own terms."""
        _, standin, ctx = nse
        day = dt.date(2024, 7, 4)
        with pytest.raises(InHistory, match="it holds 2024-07-05"):
            fetch(ctx, sources.get("bulk_deals"), Request(day, history=False))
        assert not any(e["path"].startswith("/api/") for e in standin.request_log)
        assert ctx.lake.bronze_manifest("bulk_deals", day) == []
        stats = fetch(ctx, sources.get("bulk_deals"), Request(day), history=True)
        assert stats["source"] == "api"

    def test_a_day_without_deals_is_dated_by_last_modified(self, nse):
        """NO RECORDS carries no date: the file's Last-Modified day in Mumbai says which day."""
        root, _, ctx = nse
        path = root / "content/equities/block.csv"
        path.write_bytes(csv_file(BLOCK_HEADER, "NO RECORDS,,,,,,"))
        stamp = dt.datetime(2024, 7, 5, 17, 40, tzinfo=dt.timezone(dt.timedelta(hours=5.5)))
        os.utime(path, (stamp.timestamp(), stamp.timestamp()))
        block_deals = sources.get("block_deals")
        assert fetch(ctx, block_deals, Request(DAY))["url"].endswith("/block.csv")
        with pytest.raises(NotPublished, match="still holds 2024-07-05"):
            fetch(ctx, block_deals, Request(dt.date(2024, 7, 8)))


class TestCommandLine:
    def test_parse_command(self, session, tmp_path):
        """`python -m include.nse parse block_deals FILE` prints the row count."""
        path = tmp_path / "block.csv"
        made = deals(session, "block_deals")
        path.write_bytes(archive_csv(DAY, "block_deals", made))
        result = CliRunner().invoke(cli, ["parse", "block_deals", str(path)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["rows"] == len(made)

    def test_parse_command_names_the_bad_line(self, tmp_path):
        """Bad input exits 1 with the file and line in the message."""
        path = tmp_path / "bulk.csv"
        path.write_bytes(csv_file(BULK_HEADER, BULK_ROW.replace(",BUY,", ",B,")))
        result = CliRunner().invoke(cli, ["parse", "bulk_deals", str(path)])
        assert result.exit_code == 1
        assert "bulk.csv, line 2, column 'Buy/Sell'" in result.output
