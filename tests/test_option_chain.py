"""A cycle of the intraday option chain through the pipeline: stand-in, lake, real ClickHouse."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from contextlib import nullcontext

import polars as pl
import pytest

from include.nse import pipeline, sources, warehouse
from include.nse.config import Settings
from include.nse.dates import IST
from include.nse.lake import Lake
from include.nse.sources.base import Request
from include.nse.sources.option_chain import (
    DATASET,
    INDEX_UNDERLYINGS,
    CoverageError,
    batches,
    coverage,
    underlyings,
)
from include.nse_standin.generate import generate
from include.nse_standin.option_chain import write_option_chains
from include.nse_standin.server import StandIn
from tests.conftest import PROJECT_ROOT
from tests.helpers import standin_settings

FIRST = dt.datetime(2024, 7, 5, 10, 15, 2, tzinfo=IST)
DAY = FIRST.date()
NAMES = ["NIFTY", "RELIANCE", "TCS"]


@pytest.fixture()
def api_root(tmp_path):
    root = tmp_path / "nse"
    write_option_chains(root, NAMES, FIRST)
    return root


@pytest.fixture()
def standin(api_root):
    with StandIn(api_root) as standin:
        yield standin


@pytest.fixture()
def ctx(standin, lake_root):
    """The pipeline's context: NSE's API on the stand-in, a fresh lake, no warehouse."""
    return pipeline.Context(standin_settings(standin.url, lake_root=lake_root))


@pytest.fixture()
def loading(ctx, ch_client, ch_database):
    """The context with the test database as its warehouse, reached through `ch_client`."""
    ctx.warehouse = warehouse.Warehouse(lambda: nullcontext(ch_client), ch_database)
    return ctx


def _cycle(ctx, names) -> dict:
    """One refresh of `names`: fetched into bronze, the new snapshots parsed into silver."""
    fetched = pipeline.fetch(ctx, DATASET, Request(DAY, tuple(names)))
    return pipeline.parse(ctx, DATASET, DAY, fetched)


class TestUnderlyings:
    def test_indices_then_stocks_with_options(self, tmp_path, lake_root):
        """The five indices, then every OPTSTK symbol of the latest F&O bhavcopy held."""
        generate(DAY, DAY, tmp_path / "files", symbols=300, datasets=["fo_bhavcopy"])
        lake = Lake(lake_root)
        dataset = sources.get("fo_bhavcopy")
        path = tmp_path / "files" / dataset.publication.paths(DAY)[0].lstrip("/")
        lake.write_bronze(dataset.name, DAY, path.name, path.read_bytes(), url=str(path))
        pipeline.parse(pipeline.Context(Settings(lake_root=lake_root)), dataset, DAY)
        silver = lake.read_silver("fo_bhavcopy", DAY)
        stocks = set(silver.filter(pl.col("instrument") == "OPTSTK")["symbol"].to_list())
        names = underlyings(lake)
        assert names[:5] == list(INDEX_UNDERLYINGS)
        assert set(names[5:]) == stocks and len(names) == len(set(names))
        assert stocks and "NIFTY" not in stocks

    def test_indices_only_without_a_bhavcopy(self, lake_root):
        """With no F&O bhavcopy held there are still the index underlyings."""
        assert underlyings(Lake(lake_root)) == list(INDEX_UNDERLYINGS)

    def test_batches(self):
        """Batches keep the order and cover every name once."""
        names = [f"S{i}" for i in range(7)]
        assert batches(names, 3) == [names[:3], names[3:6], names[6:]]
        with pytest.raises(ValueError):
            batches(names, 0)


class TestCycle:
    def test_bronze_keeps_every_response(self, ctx, api_root):
        """Each response is in bronze under a timestamped name; fetching again only adds."""
        for _ in range(2):
            pipeline.fetch(ctx, DATASET, Request(DAY, ("RELIANCE",)))
        expiries = len(list((api_root / "api/option-chain-v3").glob("*symbol=RELIANCE&*")))
        manifest = ctx.lake.bronze_manifest("option_chain", DAY, "underlying=RELIANCE")
        assert len(manifest) == 2 * (1 + expiries)
        files = {m["path"] for m in manifest}
        assert len(files) == len(manifest) and all(json.loads(open(f).read()) for f in files)

    def test_stale_snapshot_is_not_stored_twice(self, ctx, api_root):
        """An unchanged exchange timestamp is recorded as stale; a new one is stored."""
        first = _cycle(ctx, NAMES)
        assert first["stored"] == sorted(NAMES) and first["stale"] == [] and first["failed"] == {}
        second = _cycle(ctx, NAMES)
        assert second["stale"] == sorted(NAMES) and second["silver"] == [] and second["rows"] == 0
        write_option_chains(api_root, ["TCS"], FIRST + dt.timedelta(minutes=5))
        third = _cycle(ctx, NAMES)
        assert third["stored"] == ["TCS"] and third["stale"] == ["NIFTY", "RELIANCE"]
        tcs = pl.read_parquet(
            ctx.lake.partition("silver", "option_chain", DAY, "underlying=TCS") / "*.parquet"
        )
        assert tcs["snapshot_ts"].unique().sort().to_list() == [
            FIRST,
            FIRST + dt.timedelta(minutes=5),
        ]
        later = tcs.filter(pl.col("snapshot_ts") == FIRST + dt.timedelta(minutes=5))
        assert third["rows"] == later.height > 0

    def test_failing_underlying_does_not_fail_the_batch(self, ctx, standin):
        """An unknown underlying fails alone; a throttled answer is retried and lands; the
        cycle's coverage counts the failure."""
        standin.add_fault("throttle_empty_json", path="/api/option-chain-v3", times=2)
        result = _cycle(ctx, ["NIFTY", "NOSUCH", "TCS"])
        assert result["stored"] == ["NIFTY", "TCS"]
        assert list(result["failed"]) == ["NOSUCH"] and "404" in result["failed"]["NOSUCH"]
        faults = [e for e in standin.request_log if e["fault"] == "throttle_empty_json"]
        assert len(faults) == 2
        expected = ["NIFTY", "NOSUCH", "TCS"]
        assert coverage(expected, [result], 0.5)["missing_share"] == round(1 / 3, 4)
        with pytest.raises(CoverageError, match=r"1 of 3 underlyings missing.*NOSUCH"):
            coverage(expected, [result], 0.3)

    def test_unparseable_response_is_recorded(self, ctx, api_root):
        """A response that does not parse fails its underlying, not the batch."""
        path = next((api_root / "api/option-chain-v3").glob("*symbol=TCS&*"))
        path.write_text('{"records": {"data": []}}')
        result = _cycle(ctx, ["TCS", "RELIANCE"])
        assert result["stored"] == ["RELIANCE"]
        assert "records.timestamp" in result["failed"]["TCS"]


class TestCoverage:
    @pytest.mark.parametrize(
        ("failed", "share"),
        [({}, 0.0), ({"A": "x"}, 0.25), ({"A": "x", "B": "y"}, 0.5), ({"Z": "x"}, 0.0)],
    )
    def test_share(self, failed, share):
        """Failed names out of the expected ones; names not expected do not count."""
        landed = [name for name in "ABCD" if name not in failed]
        batch = {"stored": landed, "stale": [], "failed": failed}
        assert coverage(list("ABCD"), [batch], 1.0)["missing_share"] == share

    def test_a_name_no_batch_reported_is_missing(self):
        """A name whose batch reported nothing (its task failed outright) is missing too; a
        stale one is not (NSE had nothing new)."""
        found = coverage(list("ABCD"), [{"stored": ["A"], "stale": ["B"], "failed": {}}], 1.0)
        assert found["missing_share"] == 0.5 and sorted(found["failed"]) == ["C", "D"]


@pytest.mark.clickhouse
class TestLoad:
    def test_same_snapshot_twice_leaves_one_copy(self, loading, ch_client, ch_database):
        """Loading the same silver files twice adds nothing the second time, in both tables."""
        parsed = _cycle(loading, NAMES)
        validated = pipeline.validate(loading, DATASET, parsed)
        first = pipeline.load(loading, DATASET, validated)
        analysed = pipeline.after_step(loading, DATASET, "analytics", first)
        again = pipeline.load(loading, DATASET, validated)
        reanalysed = pipeline.after_step(loading, DATASET, "analytics", again)
        assert first["rows"] == parsed["rows"] and again["rows"] == 0
        assert analysed["analytics_rows"] > 0 and reanalysed["analytics_rows"] == 0
        count, keys = ch_client.execute(
            f"SELECT count(), uniqExact(underlying, snapshot_ts, expiry_date, strike_price, "
            f"option_type) FROM {ch_database}.option_chain"
        )[0]
        assert count == keys == parsed["rows"]
        expiries = ch_client.execute(
            f"SELECT count() FROM {ch_database}.option_chain_analytics FINAL"
        )[0][0]
        assert expiries == analysed["analytics_rows"]

    def test_round_trip_and_latest_snapshot(self, loading, api_root, ch_client, ch_database):
        """Values come back as stored; the latest snapshot of X is the last of its rows."""
        parts = _cycle(loading, ["TCS"])["silver"]
        write_option_chains(api_root, ["TCS"], FIRST + dt.timedelta(minutes=5))
        parts += _cycle(loading, ["TCS"])["silver"]
        pipeline.load(loading, DATASET, {"silver": parts})
        back = warehouse.query_polars(
            ch_client,
            f"SELECT * FROM {ch_database}.option_chain ORDER BY snapshot_ts, expiry_date, "
            "option_type, strike_price",
        ).drop("loaded_at")
        silver = pl.concat([pl.read_parquet(p) for p in parts]).sort(
            ["snapshot_ts", "expiry_date", "option_type", "strike_price"]
        )
        # DateTime keeps whole seconds: compare fetched_at at that precision.
        second = pl.col("fetched_at").dt.truncate("1s")
        assert back.with_columns(second).equals(silver.with_columns(second))
        latest = ch_client.execute(
            f"SELECT max(snapshot_ts) FROM {ch_database}.option_chain WHERE underlying = 'TCS'"
        )[0][0]
        assert latest == FIRST + dt.timedelta(minutes=5)

    def test_racing_copies_fold_under_final(self, loading, ch_client, ch_database):
        """Rows inserted twice behind the load's back are one row under FINAL."""
        warehouse.migrate(ch_client, ch_database)
        frame = pl.read_parquet(_cycle(loading, ["TCS"])["silver"])
        table = f"{ch_database}.option_chain"
        for _ in range(2):
            warehouse.insert_columns(ch_client, table, frame)
        assert ch_client.execute(f"SELECT count() FROM {table}")[0][0] == 2 * frame.height
        assert ch_client.execute(f"SELECT count() FROM {table} FINAL")[0][0] == frame.height


def test_chart_command_draws_from_the_lake(ctx, lake_root):
    """`python -m include.nse chart option-chain` writes a PNG of the latest snapshot to gold."""
    _cycle(ctx, ["NIFTY"])
    done = subprocess.run(
        [sys.executable, "-m", "include.nse", "chart", "option-chain", "--underlying", "NIFTY"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={"NSE_LAKE_ROOT": str(lake_root), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    path = json.loads(done.stdout)["path"]
    assert path.startswith(
        str(lake_root / "gold" / "option_chain_charts" / "trade_date=2024-07-05")
    )
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run(
        [sys.executable, "-m", "include.nse", "chart", "option-chain", "--underlying", "TCS"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={"NSE_LAKE_ROOT": str(lake_root), "PATH": "/usr/bin:/bin"},
    )
    assert missing.returncode == 1 and "no option chain of TCS" in missing.stderr
