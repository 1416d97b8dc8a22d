"""What parsing the DAG files costs the dag-processor: each file alone, and the whole DagBag.

python -m bench.dag_import

A worker interpreter imports Airflow's SDK and DagBag, as the dag-processor has before it
parses, then forks a fresh process for every measurement, as the dag-processor forks one per
file: each file in dags/ parsed alone (`DagBag(file)`, its imports included) `FILE_RUNS` times,
then the whole folder (`DagBag(dags)`, examples off as in the demo) `BAG_RUNS` times, after one
unmeasured parse of the folder that warms the disk cache and writes the bytecode. The figure is
the median; the note gives the fastest run and the median CPU. The baseline is interpreter
start-up: a fresh interpreter importing only `airflow.sdk`, the median of `STARTUP_RUNS`.
Targets: under 0.3 s a file (the processor reparses every file every few minutes, and a slow
file delays the others), under 3 s for the bag. A file that fails to import fails the bench.

The worker (`--worker PLAN OUT`) takes the paths and their runs as JSON and writes one JSON
line per path to OUT; before Airflow, this module imports nothing beyond the standard library,
so no measurement inherits an import it would otherwise pay for.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import Result, mib, table

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
FILE_RUNS, BAG_RUNS, STARTUP_RUNS = 5, 3, 3
FILE_TARGET, BAG_TARGET = 0.3, 3.0
#: A forked parse that takes longer than this is stuck; the worker kills it and fails.
PARSE_TIMEOUT = 300


def bench_dag_import(root: Path) -> list[Result]:
    from bench.airflow_harness import airflow_env, free_port

    env = airflow_env(root / "dag_import" / "airflow", free_port(), {})
    startup = []
    for run in range(STARTUP_RUNS + 1):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import airflow.sdk"], env=env, check=True)
        if run:  # the first run only warms the disk cache
            startup.append(time.perf_counter() - started)
    baseline = statistics.median(startup)
    files = sorted(DAGS.glob("*.py"))
    plan = [(str(DAGS), 1), *((str(f), FILE_RUNS) for f in files), (str(DAGS), BAG_RUNS)]
    out = root / "dag_import" / "measured.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "bench.dag_import", "--worker", json.dumps(plan), str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PARSE_TIMEOUT * sum(runs for _, runs in plan),
    )
    if done.returncode:
        raise RuntimeError(f"the DAG import worker failed ({done.returncode}):\n{done.stderr}")
    measured = [json.loads(line) for line in out.read_text().splitlines()]
    baseline_name = "start-up (import airflow.sdk)"
    results = []
    for parsed in measured[1:]:
        path = Path(parsed["path"])
        if parsed["errors"]:
            raise RuntimeError(f"{path} does not import: {parsed['errors']}")
        figure = statistics.median(parsed["seconds"])
        whole = path == DAGS
        target = BAG_TARGET if whole else FILE_TARGET
        results.append(
            Result(
                name=f"dag_import bag ({len(files)} files)" if whole else f"dag_import {path.stem}",
                figure=figure,
                unit="s",
                baseline=baseline,
                baseline_name=baseline_name,
                higher_is_better=False,
                target=f"under {target:g} s",
                met=figure < target,
                peak_mib=mib(max(parsed["peak_kib"])),
                note=(
                    f"{parsed['dags']} DAGs; fastest {min(parsed['seconds']):.3f} s, median cpu "
                    f"{statistics.median(parsed['cpu']):.3f} s of {len(parsed['seconds'])} runs; "
                    f"start-up fastest {min(startup):.2f} s"
                ),
            )
        )
    return results


def worker(plan: list[tuple[str, int]], out: Path) -> None:
    """For each (path, runs): parse `path` in `runs` forked processes; one JSON line each."""
    import airflow.sdk  # noqa: F401  (what every parse process has, as the baseline does)
    from airflow.dag_processing.dagbag import DagBag

    lines = []
    for path, runs in plan:
        measured = {"path": path, "seconds": [], "cpu": [], "peak_kib": [], "dags": 0, "errors": {}}
        for _ in range(runs):
            read, write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read)
                try:
                    started = time.perf_counter()
                    bag = DagBag(dag_folder=path, load_op_links=False)
                    seconds = time.perf_counter() - started
                    report = {
                        "seconds": seconds,
                        "dags": len(bag.dags),
                        "errors": bag.import_errors,
                    }
                except BaseException as error:  # reported by the parent, which fails the bench
                    report = {"seconds": 0.0, "dags": 0, "errors": {path: repr(error)}}
                with os.fdopen(write, "w") as pipe:
                    json.dump(report, pipe, default=str)
                os._exit(0)
            os.close(write)
            raw, status, usage = _collect(pid, read, path)
            if status or not raw:
                raise RuntimeError(f"parsing {path} exited with status {status}")
            report = json.loads(raw)
            measured["seconds"].append(report["seconds"])
            measured["cpu"].append(usage.ru_utime + usage.ru_stime)
            measured["peak_kib"].append(usage.ru_maxrss)
            measured["dags"] = report["dags"]
            measured["errors"] |= report["errors"]
        lines.append(json.dumps(measured) + "\n")
    out.write_text("".join(lines))


def _collect(pid: int, read: int, path: str) -> tuple[bytes, int, resource.struct_rusage]:
    """What the forked parse wrote, its exit status and its resource use; a parse still
    running after PARSE_TIMEOUT is killed and reported."""
    deadline = time.monotonic() + PARSE_TIMEOUT
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.wait4(pid, 0)
                raise TimeoutError(f"parsing {path} did not finish within {PARSE_TIMEOUT} s")
            chunk = os.read(read, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read)
    _, status, usage = os.wait4(pid, 0)
    return b"".join(chunks), os.waitstatus_to_exitcode(status), usage


def main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        worker([tuple(item) for item in json.loads(argv[1])], Path(argv[2]))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-dag-import-") as tmp:
        print(table(bench_dag_import(Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
