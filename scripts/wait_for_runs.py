"""Wait until every run of a DAG in a logical-date range has finished; print progress.

Reads Airflow's metadata database (the same one the scheduler uses). Exits 1 if a run failed
or the timeout passed, so the demo stops with a clear message instead of printing stale rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections import Counter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dag_id")
    parser.add_argument("--from", dest="start", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--to", dest="end", required=True, type=dt.date.fromisoformat)
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    low = dt.datetime.combine(args.start, dt.time.min, dt.UTC) - dt.timedelta(days=1)
    high = dt.datetime.combine(args.end, dt.time.max, dt.UTC) + dt.timedelta(days=1)
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        with create_session() as session:
            runs = session.scalars(
                select(DagRun).where(
                    DagRun.dag_id == args.dag_id,
                    DagRun.logical_date >= low,
                    DagRun.logical_date <= high,
                    DagRun.backfill_id.is_not(None),
                )
            ).all()
            # The newest run per logical date is the one that counts after a re-run.
            latest = {}
            for run in sorted(runs, key=lambda r: r.id):
                latest[run.logical_date] = str(getattr(run.state, "value", run.state))
        states = Counter(latest.values())
        line = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        if line != last:
            print(f"  runs: {line or 'none yet'}", flush=True)
            last = line
        unfinished = sum(n for s, n in states.items() if s not in ("success", "failed"))
        if latest and not unfinished:
            if states.get("failed"):
                failed = sorted(d.date().isoformat() for d, s in latest.items() if s == "failed")
                print(f"failed runs for {', '.join(failed)}; see the Airflow UI", file=sys.stderr)
                return 1
            return 0
        if time.monotonic() > deadline:
            print(
                f"timed out after {args.timeout:.0f} s with {unfinished} runs unfinished",
                file=sys.stderr,
            )
            return 1
        time.sleep(3)


if __name__ == "__main__":
    sys.exit(main())
