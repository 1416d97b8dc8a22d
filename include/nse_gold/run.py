"""Run gold jobs: `spark-submit [--py-files nse_gold.zip] run.py <job> [<job> ...] --start
YYYY-MM-DD --end YYYY-MM-DD --lake-root PATH [--calendar FILE] [--expect-master local|yarn]`.

Several jobs run one after another in one Spark application, in the order given (a job that
reads another's gold comes after it), so a day's gold pays Spark's start-up once.

The jobs import as `nse_gold`: ship them with `--py-files` and the zip `local.build_zip` makes
(the folder `nse_gold/` at its root), or put `include/` on PYTHONPATH in a checkout. The
calendar is a local file on the driver (`--files` it in cluster mode), one ISO date a line.

Before starting Spark it checks that the master is the one expected (`local` matches `local` and
`local[...]`), so a job meant for the cluster never runs on one machine by mistake. It prints one
JSON line on stdout per job, `{"job", "start", "end", "rows": {date: rows written}, "seconds"}`,
as each finishes (and to `--report`'s file, which the loads read: spark-submit's stdout is the
scheduler's log, not theirs); Spark logs to stderr.
A failed run exits non-zero, and its message may be on stdout: spark-submit passes the Python
driver's stderr to its own stdout in client mode.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

from nse_gold.jobs import JOBS, NEEDS_CALENDAR
from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

MASTERS = ("local", "yarn")


def master_kind(master: str) -> str:
    """`local` for local, local[N] and local[N,F]; else the master as given (yarn, spark://...)."""
    return "local" if master == "local" or master.startswith("local[") else master


def read_calendar(path: str) -> list[dt.date]:
    with open(path, encoding="utf-8") as f:
        return sorted({dt.date.fromisoformat(line.strip()) for line in f if line.strip()})


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("jobs", nargs="+", choices=sorted(JOBS), metavar="job")
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--end", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--lake-root", required=True)
    parser.add_argument("--calendar", help="CM trading days, one ISO date a line")
    parser.add_argument("--expect-master", choices=MASTERS)
    parser.add_argument(
        "--report",
        help="also append each job's JSON line to this file (the dates it wrote, for the loads)",
    )
    args = parser.parse_args(argv)
    if args.end < args.start:
        parser.error(f"--end {args.end} is before --start {args.start}")
    if len(set(args.jobs)) != len(args.jobs):
        parser.error(f"a job is named twice: {' '.join(args.jobs)}")
    if needing := [job for job in args.jobs if job in NEEDS_CALENDAR and not args.calendar]:
        parser.error(f"{', '.join(needing)} need --calendar")
    return args


def main(argv: list[str]) -> int:
    args = arguments(argv)
    # Connect to spark-submit's JVM without starting a SparkContext (on YARN, an application).
    SparkContext._ensure_initialized()
    master = SparkConf().get("spark.master", "")
    if args.expect_master and master_kind(master) != args.expect_master:
        print(
            f"run.py: expected a {args.expect_master} master (--expect-master), but Spark's "
            f"master is {master or 'not set'!r}; submit with --master "
            f"{'yarn' if args.expect_master == 'yarn' else 'local[N]'} or change --expect-master",
            file=sys.stderr,
        )
        return 2
    calendar = read_calendar(args.calendar) if args.calendar else None
    spark = SparkSession.builder.appName(f"nse_gold.{'+'.join(args.jobs)}").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        for job in args.jobs:
            started = time.perf_counter()
            rows = JOBS[job](spark, args.lake_root, args.start, args.end, calendar)
            document = {
                "job": job,
                "start": args.start.isoformat(),
                "end": args.end.isoformat(),
                "rows": {day.isoformat(): n for day, n in sorted(rows.items())},
                "seconds": round(time.perf_counter() - started, 3),
            }
            print(json.dumps(document), flush=True)
            if args.report:
                with open(args.report, "a", encoding="utf-8") as report:
                    report.write(json.dumps(document) + "\n")
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
