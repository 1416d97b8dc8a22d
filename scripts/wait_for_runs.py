"""Wait until every backfill run of the given DAGs has finished (with `--run-id`, that run of
them, whatever its type); print progress.

Reads Airflow's metadata database (the same one the scheduler uses). Exits 1 if a run failed
or the timeout passed, so the demo stops with a clear message instead of printing stale rows.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter

FINISHED = ("success", "failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dag_ids", nargs="+", metavar="dag_id")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--run-id", help="wait for this run instead of the backfill runs")
    args = parser.parse_args()

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        with create_session() as session:
            which = DagRun.run_id == args.run_id if args.run_id else DagRun.backfill_id.is_not(None)
            runs = session.scalars(
                select(DagRun).where(DagRun.dag_id.in_(args.dag_ids), which)
            ).all()
            # The newest run per DAG and logical date is the one that counts after a re-run.
            latest = {}
            for run in sorted(runs, key=lambda r: r.id):
                state = str(getattr(run.state, "value", run.state))
                latest[run.dag_id, run.logical_date] = state
        per_dag = {dag_id: Counter() for dag_id in args.dag_ids}
        for (dag_id, _), state in latest.items():
            per_dag[dag_id][state] += 1
        line = "; ".join(
            f"{dag_id}: " + (", ".join(f"{n} {s}" for s, n in sorted(c.items())) or "none yet")
            for dag_id, c in per_dag.items()
        )
        if line != last:
            print(f"  {line}", flush=True)
            last = line
        unfinished = sum(1 for state in latest.values() if state not in FINISHED)
        if all(per_dag.values()) and not unfinished:
            failed = sorted(
                f"{dag_id} {day.date().isoformat()}"
                for (dag_id, day), state in latest.items()
                if state == "failed"
            )
            if failed:
                print(f"failed runs: {', '.join(failed)}; see the Airflow UI", file=sys.stderr)
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
