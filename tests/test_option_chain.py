"""A cycle of the intraday option chain through the library: stand-in, lake, real ClickHouse."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import polars as pl
import pytest

from include.nse import option_chain, warehouse
from include.nse.client import NSEClient
from include.nse.config import Settings
from include.nse.lake import Lake
from include.nse.pipeline import bronze_to_silver
from include.nse.sources import get
from include.nse.sources.option_chain import IST
from include.nse_standin.generate import generate
from include.nse_standin.option_chain import write_option_chains
from include.nse_standin.server import StandIn
from tests.conftest import PROJECT_ROOT

FIRST = dt.datetime(2024, 7, 5, 10, 15, 2, tzinfo=IST)
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
def client(standin):
    settings = Settings(
        api_base_url=standin.url,
        api_rate_per_second=1000,
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
    )
    with NSEClient(settings) as client:
        yield client


def _cycle(client, lake, names) -> dict:
    return option_chain.store_batch(lake, option_chain.fetch_batch(client, lake, names))


class TestUnderlyings:
    def test_indices_then_stocks_with_options(self, tmp_path, lake_root):
        """The five indices, then every OPTSTK symbol of the latest F&O bhavcopy held."""
        day = dt.date(2024, 7, 5)
        generate(day, day, tmp_path / "files", symbols=300, datasets=["fo_bhavcopy"])
        lake = Lake(lake_root)
        dataset = get("fo_bhavcopy")
        path = tmp_path / "files" / dataset.remote_paths(day)[0].lstrip("/")
        lake.write_bronze(dataset.name, day, path.name, path.read_bytes(), url=str(path))
        bronze_to_silver(lake, dataset, day)
        silver = lake.read_silver("fo_bhavcopy", day)
        stocks = set(silver.filter(pl.col("instrument") == "OPTSTK")["symbol"].to_list())
        names = option_chain.underlyings(lake)
        assert names[:5] == list(option_chain.INDEX_UNDERLYINGS)
        assert set(names[5:]) == stocks and len(names) == len(set(names))
        assert stocks and "NIFTY" not in stocks

    def test_indices_only_without_a_bhavcopy(self, lake_root):
        """With no F&O bhavcopy held there are still the index underlyings."""
        assert option_chain.underlyings(Lake(lake_root)) == list(option_chain.INDEX_UNDERLYINGS)

    def test_batches(self):
        """Batches keep the order and cover every name once."""
        names = [f"S{i}" for i in range(7)]
        assert option_chain.batches(names, 3) == [names[:3], names[3:6], names[6:]]
        with pytest.raises(ValueError):
            option_chain.batches(names, 0)


class TestCycle:
    def test_bronze_keeps_every_response(self, client, lake_root, api_root):
        """Each response is in bronze under a timestamped name; fetching again only adds."""
        lake = Lake(lake_root)
        for _ in range(2):
            option_chain.fetch_batch(client, lake, ["RELIANCE"])
        expiries = len(list((api_root / "api/option-chain-v3").glob("*symbol=RELIANCE&*")))
        today = dt.datetime.now(IST).date()
        manifest = lake.bronze_manifest("option_chain", today, "RELIANCE")
        assert len(manifest) == 2 * (1 + expiries)
        files = {m["path"] for m in manifest}
        assert len(files) == len(manifest) and all(json.loads(open(f).read()) for f in files)

    def test_stale_snapshot_is_not_stored_twice(self, client, lake_root, api_root):
        """An unchanged exchange timestamp is recorded as stale; a new one is stored."""
        lake = Lake(lake_root)
        first = _cycle(client, lake, NAMES)
        assert first["stored"] == sorted(NAMES) and first["stale"] == [] and first["failed"] == {}
        second = _cycle(client, lake, NAMES)
        assert second["stale"] == sorted(NAMES) and second["parts"] == [] and second["rows"] == 0
        write_option_chains(api_root, ["TCS"], FIRST + dt.timedelta(minutes=5))
        third = _cycle(client, lake, NAMES)
        assert third["stored"] == ["TCS"] and third["stale"] == ["NIFTY", "RELIANCE"]
        tcs = pl.read_parquet(
            lake.partition("silver", "option_chain", FIRST.date(), "TCS") / "*.parquet"
        )
        assert tcs["snapshot_ts"].unique().sort().to_list() == [
            FIRST,
            FIRST + dt.timedelta(minutes=5),
        ]
        later = tcs.filter(pl.col("snapshot_ts") == FIRST + dt.timedelta(minutes=5))
        assert third["rows"] == later.height > 0

    def test_failing_underlying_does_not_fail_the_batch(self, client, lake_root, standin):
        """An unknown underlying fails alone; a throttled answer is retried and lands."""
        lake = Lake(lake_root)
        standin.add_fault("throttle_empty_json", path="/api/option-chain-v3", times=2)
        result = _cycle(client, lake, ["NIFTY", "NOSUCH", "TCS"])
        assert result["stored"] == ["NIFTY", "TCS"]
        assert list(result["failed"]) == ["NOSUCH"] and "404" in result["failed"]["NOSUCH"]
        faults = [e for e in standin.request_log if e["fault"] == "throttle_empty_json"]
        assert len(faults) == 2
        assert option_chain.missing_share(["NIFTY", "NOSUCH", "TCS"], result["failed"]) == 1 / 3

    def test_unparseable_response_is_recorded(self, client, lake_root, api_root):
        """A response that does not parse fails its underlying, not the batch."""
        path = next((api_root / "api/option-chain-v3").glob("*symbol=TCS&*"))
        path.write_text('{"records": {"data": []}}')
        result = _cycle(client, Lake(lake_root), ["TCS", "RELIANCE"])
        assert result["stored"] == ["RELIANCE"]
        assert "records.timestamp" in result["failed"]["TCS"]


class TestMissingShare:
    @pytest.mark.parametrize(
        ("failed", "share"),
        [({}, 0.0), ({"A": "x"}, 0.25), ({"A": "x", "B": "y"}, 0.5), ({"Z": "x"}, 0.0)],
    )
    def test_share(self, failed, share):
        """Failed names out of the expected ones; names not expected do not count."""
        assert option_chain.missing_share(["A", "B", "C", "D"], failed) == share


@pytest.mark.clickhouse
class TestLoad:
    def test_same_snapshot_twice_leaves_one_copy(self, client, lake_root, ch_client, ch_database):
        """Loading the same silver files twice adds nothing the second time, in both tables."""
        lake = Lake(lake_root)
        warehouse.migrate(ch_client, ch_database)
        stored = _cycle(client, lake, NAMES)
        first = option_chain.load_parts(ch_client, lake, stored["parts"], ch_database)
        again = option_chain.load_parts(ch_client, lake, stored["parts"], ch_database)
        assert first["rows"] == stored["rows"] and again["rows"] == 0
        assert first["analytics_rows"] > 0 and again["analytics_rows"] == 0
        count, keys = ch_client.execute(
            f"SELECT count(), uniqExact(underlying, snapshot_ts, expiry_date, strike_price, "
            f"option_type) FROM {ch_database}.option_chain"
        )[0]
        assert count == keys == stored["rows"]
        expiries = ch_client.execute(
            f"SELECT count() FROM {ch_database}.option_chain_analytics FINAL"
        )[0][0]
        assert expiries == first["analytics_rows"]

    def test_round_trip_and_latest_snapshot(
        self, client, lake_root, api_root, ch_client, ch_database
    ):
        """Values come back as stored; the latest snapshot of X is the last of its rows."""
        lake = Lake(lake_root)
        warehouse.migrate(ch_client, ch_database)
        parts = _cycle(client, lake, ["TCS"])["parts"]
        write_option_chains(api_root, ["TCS"], FIRST + dt.timedelta(minutes=5))
        parts += _cycle(client, lake, ["TCS"])["parts"]
        option_chain.load_parts(ch_client, lake, parts, ch_database)
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

    def test_racing_copies_fold_under_final(self, ch_client, ch_database):
        """Rows inserted twice behind the check's back are one row under FINAL."""
        warehouse.migrate(ch_client, ch_database)
        from tests.test_chain_analytics import small_chain

        frame = small_chain()
        for _ in range(2):
            warehouse.insert_columns(ch_client, f"{ch_database}.option_chain", frame)
        table = f"{ch_database}.option_chain"
        assert ch_client.execute(f"SELECT count() FROM {table}")[0][0] == 2 * frame.height
        assert ch_client.execute(f"SELECT count() FROM {table} FINAL")[0][0] == frame.height


def test_chart_command_draws_from_the_lake(client, lake_root):
    """`python -m include.nse chart option-chain` writes a PNG of the latest snapshot to gold."""
    _cycle(client, Lake(lake_root), ["NIFTY"])
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
