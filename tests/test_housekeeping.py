"""Lake housekeeping: a finished day's intraday files folded into one, its old bronze pruned.

Three option-chain cycles of a day go through the whole chain (stand-in, bronze, silver, gate,
ClickHouse, gold analytics); housekeeping then compacts the day, and the test reads every row
back, the same as before, from one file per layer."""

from __future__ import annotations

import datetime as dt
import io
from contextlib import nullcontext

import polars as pl
import pytest

from include.nse import chain_analytics, housekeeping, pipeline, warehouse
from include.nse.dates import IST
from include.nse.lake import SILVER_FILE
from include.nse.sources.base import Request
from include.nse.sources.option_chain import DATASET
from include.nse_airflow.housekeeping import first_open_day, keep_days
from include.nse_standin.option_chain import write_option_chains
from include.nse_standin.server import StandIn
from tests.conftest import parse_dag
from tests.helpers import create_stages, standin_settings, state, task_states

pytestmark = pytest.mark.clickhouse

FIRST = dt.datetime(2024, 7, 5, 10, 15, 2, tzinfo=IST)
DAY = FIRST.date()
NAMES = ("NIFTY", "RELIANCE", "TCS")
CYCLES = 3


def _files(root, layer, folder):
    return sorted((root / layer / folder / f"trade_date={DAY}").rglob("*.parquet"))


@pytest.fixture()
def day(tmp_path, lake_root, ch_client, ch_database):
    """A day of three cycles through the chain; yields the context and what silver and gold
    held, read from the per-cycle files, before any housekeeping."""
    nse = tmp_path / "nse"
    with StandIn(nse) as standin:
        ctx = pipeline.Context(standin_settings(standin.url, lake_root=lake_root))
        ctx.warehouse = warehouse.Warehouse(lambda: nullcontext(ch_client), ch_database)
        for cycle in range(CYCLES):
            write_option_chains(nse, NAMES, FIRST + dt.timedelta(minutes=5 * cycle))
            pipeline.run(ctx, DATASET, Request(DAY, NAMES))
    held = {
        layer: pl.read_parquet(_files(lake_root, layer, folder))
        for layer, folder, _ in housekeeping.INTRADAY["option_chain"]
    }
    return ctx, held


def _sorted(frame: pl.DataFrame, key) -> pl.DataFrame:
    return frame.sort(list(key))


def test_a_finished_day_is_one_file_per_layer_holding_every_row(day, lake_root):
    ctx, held = day
    layers = housekeeping.INTRADAY["option_chain"]
    before = {layer: _files(lake_root, layer, folder) for layer, folder, _ in layers}
    assert all(len(files) == CYCLES * len(NAMES) for files in before.values()), before
    latest = chain_analytics.latest_chain(ctx.lake, "RELIANCE")

    # The day is still open at 15:59 IST: nothing is touched.
    assert housekeeping.compact(ctx.lake, first_open_day(FIRST.replace(hour=15, minute=59))) == []
    assert _files(lake_root, "silver", "option_chain") == before["silver"]

    done = housekeeping.compact(ctx.lake, first_open_day(FIRST.replace(hour=16, minute=1)))
    assert [(c.layer, c.trade_date, c.files) for c in done] == [
        (layer, DAY.isoformat(), CYCLES * len(NAMES)) for layer, _, _ in layers
    ]
    for layer, folder, key in layers:
        files = _files(lake_root, layer, folder)
        assert [f.name for f in files] == [SILVER_FILE], files
        compacted = pl.read_parquet(files[0])
        assert (
            compacted.height == held[layer].height == next(c.rows for c in done if c.layer == layer)
        )
        assert _sorted(compacted, key).equals(_sorted(held[layer], key))
    # No per-cycle bookkeeping is left, and the day still reads back per underlying.
    assert not list((lake_root / "silver/option_chain" / f"trade_date={DAY}").rglob("_*.json"))
    assert chain_analytics.latest_chain(ctx.lake, "RELIANCE").equals(latest)
    # Compacting again finds nothing to do.
    assert housekeeping.compact(ctx.lake, DAY + dt.timedelta(days=1)) == []


def test_a_compaction_cut_short_is_finished_and_a_changed_day_refused(day, lake_root):
    ctx, held = day
    silver = _files(lake_root, "silver", "option_chain")
    key = housekeeping.INTRADAY["option_chain"][0][2]
    # Killed after writing the day's file, before removing the small ones: put two back.
    kept = {f: f.read_bytes() for f in silver[:2]}
    housekeeping.compact(ctx.lake, DAY + dt.timedelta(days=1))
    for f, raw in kept.items():
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(raw)
    (again,) = housekeeping.compact(ctx.lake, DAY + dt.timedelta(days=1))
    assert (again.layer, again.files) == ("silver", 2)
    assert _sorted(ctx.lake.read_silver("option_chain", DAY), key).equals(
        _sorted(held["silver"], key)
    )
    # A per-cycle file whose rows are not in the day's file: the day changed after compaction.
    late = pl.read_parquet(io.BytesIO(kept[silver[0]])).with_columns(
        pl.col("snapshot_ts") + dt.timedelta(hours=1)
    )
    silver[0].parent.mkdir(exist_ok=True)
    late.write_parquet(silver[0])
    with pytest.raises(housekeeping.CompactionError, match=f"{late.height} rows of 1 per-cycle"):
        housekeeping.compact(ctx.lake, DAY + dt.timedelta(days=1))
    assert silver[0].exists()


def test_bronze_is_pruned_only_when_asked_and_only_for_compacted_old_days(day, lake_root):
    ctx, _ = day
    bronze = lake_root / "bronze/option_chain" / f"trade_date={DAY}"
    responses = [p for p in bronze.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in responses)
    assert responses
    later = DAY + dt.timedelta(days=10)
    # Off by default; and a day not yet compacted keeps its bronze whatever the retention.
    assert housekeeping.prune_bronze(ctx.lake, later, None) == []
    assert housekeeping.prune_bronze(ctx.lake, later, 0) == []
    housekeeping.compact(ctx.lake, DAY + dt.timedelta(days=1))
    # Within the retention: kept.
    assert housekeeping.prune_bronze(ctx.lake, later, 30) == []
    (pruned,) = housekeeping.prune_bronze(ctx.lake, later, 7)
    assert (pruned.trade_date, pruned.files) == (DAY.isoformat(), len(responses))
    assert pruned.bytes == size
    assert not bronze.exists()
    # Silver still holds the day.
    assert ctx.lake.silver_rows("option_chain", DAY) > 0
    with pytest.raises(ValueError, match="zero or more"):
        housekeeping.prune_bronze(ctx.lake, later, -1)


def test_retention_comes_from_the_run_then_the_environment(monkeypatch):
    monkeypatch.delenv("NSE_INTRADAY_BRONZE_KEEP_DAYS", raising=False)
    assert keep_days(None) is None
    monkeypatch.setenv("NSE_INTRADAY_BRONZE_KEEP_DAYS", "90")
    assert keep_days(None) == 90 and keep_days(3) == 3
    monkeypatch.setenv("NSE_INTRADAY_BRONZE_KEEP_DAYS", "ninety")
    with pytest.raises(ValueError, match="NSE_INTRADAY_BRONZE_KEEP_DAYS must be a whole number"):
        keep_days(None)


def test_the_dag_compacts_prunes_with_a_retention_and_drops_stale_stages(
    day, lake_root, airflow_db, clickhouse_server, ch_client, ch_database, monkeypatch
):
    """Under `dag.test()`: without a retention the day is compacted and bronze kept (the prune
    task skips); with one, the old day's bronze goes. A staging table a dead load left two hours
    ago is dropped; one a live load made a minute ago stays."""
    import time

    from tests.conftest import clickhouse_connection

    monkeypatch.setenv("NSE_LAKE_ROOT", str(lake_root))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT", clickhouse_connection(clickhouse_server, ch_database)
    )
    monkeypatch.delenv("NSE_INTRADAY_BRONZE_KEEP_DAYS", raising=False)
    now = int(time.time())
    stale, live = (
        f"option_chain__stage_{now - 7200}_0123abcd",
        f"option_chain__stage_{now - 60}_4567cdef",
    )
    create_stages(ch_client, ch_database, stale, live)
    bronze = lake_root / "bronze/option_chain" / f"trade_date={DAY}"
    dag = parse_dag("nse_lake_housekeeping")
    assert (dag.timetable.expression, str(dag.timetable.timezone)) == (
        "30 16 * * *",
        "Asia/Kolkata",
    )

    run = dag.test()
    assert state(run) == "success"
    assert task_states(dag.dag_id, run.run_id) == {
        "compact": "success",
        "prune_bronze": "skipped",
        "drop_stale_stages": "success",
    }
    assert [f.name for f in _files(lake_root, "silver", "option_chain")] == [SILVER_FILE]
    assert bronze.exists()
    tables = {name for (name,) in ch_client.execute(f"SHOW TABLES FROM {ch_database}")}
    assert live in tables and stale not in tables
    assert ch_client.execute(f"SELECT count() FROM {ch_database}.option_chain")[0][0] > 0

    run = parse_dag("nse_lake_housekeeping").test(run_conf={"keep_bronze_days": 7})
    assert task_states(dag.dag_id, run.run_id) == {
        "compact": "success",
        "prune_bronze": "success",
        "drop_stale_stages": "success",
    }
    assert not bronze.exists()
