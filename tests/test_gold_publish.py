"""After the Spark jobs: each gold partition a run report names checked by the quality gate and
loaded, or refused whole; the report read strictly; the day's chart drawn. No Spark here: the
partitions are the polars reference's rows of a generated week, written as Spark lays them out
(no trade_date column, the folder has it)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from include.nse import errors
from include.nse.lake import Lake
from include.nse.warehouse import migrate
from include.nse_gold import local, publish
from include.nse_gold.datasets import partition_dir
from tests import gold_reference as reference

pytestmark = pytest.mark.clickhouse

FIRST, LAST = dt.date(2024, 7, 8), dt.date(2024, 7, 12)


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict[str, pl.DataFrame]:
    """The reference's equity_eod and market_daily_summary over a generated week."""
    base = tmp_path_factory.mktemp("publish")
    root = base / "lake"
    local.generated_lake(root, base / "files", FIRST, LAST, symbols=12, fo=(FIRST, LAST))
    return {
        "equity_eod": reference.equity_eod(root),
        "market_daily_summary": reference.market_daily_summary(root),
    }


def _write(lake: Path, name: str, day: dt.date, frame: pl.DataFrame) -> int:
    rows = frame.filter(pl.col("trade_date") == day).drop("trade_date")
    folder = partition_dir(lake, name, day)
    folder.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(folder / "part-00000.parquet")
    return rows.height


def _count(ch_client, database: str, table: str) -> dict[dt.date, int]:
    return dict(
        ch_client.execute(f"SELECT trade_date, count() FROM {database}.{table} GROUP BY trade_date")
    )


def test_checked_partitions_load_and_a_rerun_replaces_them(
    frames, lake_root, ch_client, ch_database
):
    database = ch_database
    migrate(ch_client, database)
    lake = Lake(lake_root)
    days = {
        day: _write(lake_root, "equity_eod", day, frames["equity_eod"]) for day in (FIRST, LAST)
    }
    done = publish.gate_and_load(lake, "equity_eod", days, ch_client, database, "run-1")
    assert _count(ch_client, database, "equity_eod") == days
    assert done["rows"] == sum(days.values()) and done["dates"] == 2
    for day in days:
        result = lake_root / "quality/equity_eod" / f"trade_date={day}" / "validation.json"
        assert json.loads(result.read_text())["great_expectations"]["success"] is True

    publish.gate_and_load(lake, "equity_eod", days, ch_client, database, "run-2")
    assert _count(ch_client, database, "equity_eod") == days


def test_a_failed_critical_check_loads_no_date(frames, lake_root, ch_client, ch_database):
    """A duplicated key on one date: the gate fails that date and neither date is loaded."""
    database = ch_database
    migrate(ch_client, database)
    eod = frames["equity_eod"]
    good = _write(lake_root, "equity_eod", FIRST, eod)
    day = eod.filter(pl.col("trade_date") == LAST)
    bad = _write(lake_root, "equity_eod", LAST, pl.concat([day, day.head(1)]))
    with pytest.raises(errors.QualityError, match=f"equity_eod.*{LAST}"):
        publish.gate_and_load(
            Lake(lake_root), "equity_eod", {FIRST: good, LAST: bad}, ch_client, database
        )
    assert _count(ch_client, database, "equity_eod") == {}
    (recorded,) = ch_client.execute(
        f"SELECT count() FROM {database}.quality_validations WHERE dataset = 'equity_eod'"
    )[0]
    assert recorded == 2


def test_a_partition_not_holding_what_its_job_wrote_is_refused(
    frames, lake_root, ch_client, ch_database
):
    """A partition lost (or rewritten) between the job and the load is never loaded as empty."""
    database = ch_database
    migrate(ch_client, database)
    rows = _write(lake_root, "equity_eod", FIRST, frames["equity_eod"])
    with pytest.raises(publish.ReportError, match=rf"trade_date={LAST} holds 0 rows.*wrote 7"):
        publish.gate_and_load(
            Lake(lake_root), "equity_eod", {FIRST: rows, LAST: 7}, ch_client, database
        )
    assert _count(ch_client, database, "equity_eod") == {}


def test_the_run_report_is_read_strictly(tmp_path):
    report = tmp_path / "report.jsonl"
    with pytest.raises(publish.ReportError, match="no run report"):
        publish.written(report)
    report.write_text(
        json.dumps({"job": "equity_eod", "rows": {"2024-07-08": 3, "2024-07-05": 2}})
        + "\n"
        + json.dumps({"job": "fo_daily", "rows": {"2024-07-08": 4}})
        + "\n"
    )
    assert publish.written(report) == {
        "equity_eod": {dt.date(2024, 7, 5): 2, dt.date(2024, 7, 8): 3},
        "fo_daily": {dt.date(2024, 7, 8): 4},
    }
    report.write_text(report.read_text() + '{"job": "fo_daily", "rows": {"8 July": 4}}\n')
    with pytest.raises(publish.ReportError, match="line 3: not a job's JSON line"):
        publish.written(report)


def test_the_days_summary_is_drawn(frames, lake_root):
    _write(lake_root, "market_daily_summary", LAST, frames["market_daily_summary"])
    chart = publish.draw_summary(Lake(lake_root), LAST)
    assert chart == lake_root / "gold/market_summary_chart" / f"trade_date={LAST}" / (
        "market_summary.png"
    )
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000
    with pytest.raises(FileNotFoundError, match=f"no market_daily_summary for {FIRST}"):
        publish.draw_summary(Lake(lake_root), FIRST)
