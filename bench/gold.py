"""The gold jobs over a year of generated history, against the polars reference on the same data.

python -m bench gold

Generates a year (about 250 trading days) of NSE files for 100 listed securities, parses them
into silver with the library, then runs all six jobs over the whole year in one
`spark-submit --master local[2]` application, as `nse_market_data` submits them (start-up
included, as a scheduled run pays it), and times the polars reference of
`tests/gold_reference.py` on the same silver, job by job.

Targets: the year's gold in one application under 600 s on two cores (a rebuild of a year's
analytics fits in a maintenance window); each job's time is reported against the single-process
polars reference with no target: at this size Spark pays for a distribution polars does not
need, and the ratio says what that costs.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

from bench.results import Result

START, END = dt.date(2023, 7, 3), dt.date(2024, 6, 28)
SYMBOLS = 100
YEAR_TARGET_SECONDS = 600


def bench_gold(root: Path) -> list[Result]:
    from include.nse.calendar import load_calendar
    from include.nse_gold import local
    from tests import gold_reference as reference

    lake = root / "gold-bench" / "lake"
    started = time.perf_counter()
    days = local.generated_lake(
        lake,
        root / "gold-bench" / "files",
        START,
        END,
        symbols=SYMBOLS,
        fo=(START, END),
        deals=(START, END),
    )
    print(
        f"generated and parsed {len(days)} trading days for {SYMBOLS} securities in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    calendar = load_calendar().trading_days(START, END + dt.timedelta(days=60))
    calendar_file = local.write_calendar(root / "gold-bench" / "calendar.csv", calendar)
    package = local.build_zip(root / "gold-bench" / "nse_gold.zip")
    references = {
        "equity_eod": lambda: reference.equity_eod(lake),
        "equity_indicators": lambda: reference.equity_indicators(lake),
        "equity_bars_weekly": lambda: reference.equity_bars(lake, calendar, "weekly"),
        "equity_bars_monthly": lambda: reference.equity_bars(lake, calendar, "monthly"),
        "fo_daily": lambda: reference.fo_daily(lake, calendar),
        "market_daily_summary": lambda: reference.market_daily_summary(lake),
    }
    started = time.perf_counter()
    documents = local.submit(
        list(references),
        START,
        END,
        lake,
        package,
        calendar=calendar_file,
        class_archive=local.class_archive(),
    )
    application = time.perf_counter() - started
    results, polars_total = [], 0.0
    for document in documents:
        job, seconds = document["job"], document["seconds"]
        rows = sum(document["rows"].values())
        if rows == 0:
            raise RuntimeError(f"gold job {job} wrote no rows over {START}..{END}")
        started = time.perf_counter()
        references[job]()
        polars_seconds = time.perf_counter() - started
        polars_total += polars_seconds
        print(
            f"gold {job:<22} spark {seconds:6.1f} s  {rows:>9,} rows {rows / seconds:>9,.0f} "
            f"rows/s   polars reference {polars_seconds:6.2f} s",
            flush=True,
        )
        results.append(
            Result(
                f"gold {job} (a year)",
                seconds,
                "s",
                polars_seconds,
                "polars reference, one process",
                False,
                "reported",
                None,
                note=f"{rows:,} rows, {rows / seconds:,.0f} rows/s",
            )
        )
    results.insert(
        0,
        Result(
            "gold: a year, six jobs, one Spark app",
            application,
            "s",
            polars_total,
            "polars reference, all six jobs",
            False,
            f"under {YEAR_TARGET_SECONDS} s",
            application < YEAR_TARGET_SECONDS,
            note=f"{len(days)} trading days x {SYMBOLS} securities, spark-submit local[2], "
            "start-up included",
        ),
    )
    return results


def main() -> int:
    from bench.results import table

    with tempfile.TemporaryDirectory() as tmp:
        print(table(bench_gold(Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
