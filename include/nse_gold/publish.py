"""After the Spark jobs: each gold partition they wrote checked, loaded, and the day drawn.

Runs on the warehouse side (polars, Great Expectations, ClickHouse), never on executors. A job's
run report (`run.py --report`) says which dates it wrote: a day's run writes that day's rows, and
also rewrites the week's and month's bars, which are dated by the period's last trading day. Each
of those partitions goes through the same gate as silver (the dataset's checks after its key's,
the result kept under `quality/<dataset>/trade_date=D/`, recorded in `nse.quality_results`) and,
when no critical expectation failed, replaces its date's partition in ClickHouse.

`draw_summary` draws a day's market at a glance from `market_daily_summary`: breadth, top gainers
and losers, and the biggest futures open-interest build-ups, as a PNG kept in the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

from include.nse import quality, warehouse
from include.nse.lake import Lake, write_png
from include.nse_gold.datasets import DATASETS, read_partition

#: Where a day's summary chart is kept in the lake.
CHART = "market_summary_chart"


class ReportError(RuntimeError):
    """A run report that does not say what the loads need."""


def written(report: Path) -> dict[str, dict[dt.date, int]]:
    """Job -> {date: rows} it wrote, from a run report (one JSON line per job)."""
    if not report.exists():
        raise ReportError(f"{report}: no run report; the Spark jobs did not finish")
    jobs: dict[str, dict[dt.date, int]] = {}
    for number, line in enumerate(report.read_text(encoding="utf-8").splitlines(), 1):
        try:
            document = json.loads(line)
            rows = {dt.date.fromisoformat(d): int(n) for d, n in document["rows"].items()}
            jobs[document["job"]] = dict(sorted(rows.items()))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ReportError(f"{report}, line {number}: not a job's JSON line ({e})") from e
    return jobs


def gate_and_load(
    lake: Lake, name: str, dates: dict[dt.date, int], client, database: str, run_id: str = ""
) -> dict:
    """Check the partitions of gold dataset `name` that its job wrote (`dates`: date -> rows
    written, from the run report); when all pass, replace each date's partition in ClickHouse.

    Raises, having loaded nothing: a `ReportError` when a partition does not hold the rows the
    job wrote (a partition lost or rewritten since), else the first failed date's QualityError.
    """
    started = time.monotonic()
    dataset = DATASETS[name]
    checks = quality.suite(dataset)
    frames, reports = {}, []
    for day, rows in dates.items():
        frame = read_partition(lake.root, name, day)
        if frame.height != rows:
            raise ReportError(
                f"gold/{name}/trade_date={day} holds {frame.height} rows, but its job wrote "
                f"{rows}; run the day's gold again"
            )
        report, document = quality.validate_frame(name, checks, frame, day)
        quality.keep(report, document, quality.result_path(lake, name, day))
        frames[day], reports = frame, [*reports, report]
    quality.record(client, reports, database, run_id=run_id)
    failed = [report for report in reports if not report.passed]
    if failed:
        raise failed[0].error()
    rows = {
        day.isoformat(): warehouse.load(client, dataset, day, frame, database=database)["rows"]
        for day, frame in frames.items()
    }
    return {
        "dataset": name,
        "table": f"{database}.{name}",
        "dates": len(rows),
        "rows": sum(rows.values()),
        "rows_by_date": rows,
        "expectations": sum(len(r.outcomes) for r in reports),
        "warnings": [w.describe() for r in reports for w in r.warnings],
        "artifacts": [r.path for r in reports if r.path],
        "seconds": round(time.monotonic() - started, 3),
    }


def draw_summary(lake: Lake, day: dt.date) -> Path:
    """The day's market summary as a PNG in the lake (`gold/market_summary_chart/...`)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    summary = read_partition(lake.root, "market_daily_summary", day)
    if summary.is_empty():
        raise FileNotFoundError(f"no market_daily_summary for {day} in {lake.root / 'gold'}")
    row = summary.row(0, named=True)
    path = lake.partition("gold", CHART, day) / "market_summary.png"
    fig, (breadth, movers, oi) = plt.subplots(1, 3, figsize=(16, 5.5), dpi=100)
    try:
        counts = [row["advances"], row["declines"], row["unchanged"]]
        breadth.bar(["Advances", "Declines", "Unchanged"], counts, color=["green", "red", "grey"])
        for x, n in enumerate(counts):
            breadth.annotate(f"{n}", (x, n), ha="center", va="bottom")
        breadth.set_title("Breadth (EQ series)")

        names = list(row["top_gainers"] or []) + list(row["top_losers"] or [])
        returns = [100 * r for r in (row["top_gainer_returns"] or [])] + [
            100 * r for r in (row["top_loser_returns"] or [])
        ]
        movers.barh(
            names[::-1], returns[::-1], color=["green" if r > 0 else "red" for r in returns[::-1]]
        )
        movers.set_title("Top gainers and losers (%)")
        movers.axvline(0, color="black", linewidth=0.8)

        labels = [
            f"{s} {e:%d-%b}"
            for s, e in zip(
                row["oi_buildup_symbols"] or [], row["oi_buildup_expiries"] or [], strict=True
            )
        ]
        changes = list(row["oi_buildup_changes"] or [])
        oi.barh(labels[::-1], changes[::-1], color="tab:blue")
        oi.set_title("Futures open-interest build-up (contracts' units)")

        turnover = row["total_turnover"]
        fig.suptitle(
            f"NSE market summary, {day:%d %b %Y}"
            + (f": EQ turnover Rs {turnover / 1e7:,.0f} crore" if turnover is not None else "")
        )
        fig.tight_layout()
        write_png(path, fig)
    finally:
        plt.close(fig)
    return path
