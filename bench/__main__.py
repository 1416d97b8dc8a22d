"""Run the benchmarks, each in a process of its own, and report them in one table.

python -m bench                   every benchmark
python -m bench parse fetch       a subset
python -m bench --one NAME --json-out FILE [--root DIR]    one benchmark, its results to FILE

ClickHouse: CLICKHOUSE_HOST (and _PORT, _USER, _PASSWORD) name an existing server; without
CLICKHOUSE_HOST the tests' local server (`scripts/clickhouse-local.sh`, 127.0.0.1:19000) is
started when it is not running, and stopped at the end if it was started here.

A benchmark is a function `bench_x(root: Path) -> list[Result]` (`bench/results.py`),
registered with one line in `BENCHMARKS`: `"x": lazy("bench.x", "bench_x")` for one in a module
of its own, imported only by the process that runs it. `root` holds the stand-in's files for
LEGACY_DAY..UDIFF_DAY, generated once per run; anything else a benchmark makes goes in a folder
of its own under `root`. Each `Result` is one figure beside a baseline measured in the same run
(or a fixed yardstick such as the 5-minute interval), its target in words (stated in the
benchmark's docstring too) and whether it met it. A benchmark may print progress; one that
cannot measure raises. Each runs as `--one` in a child process: every Result without a
`peak_mib` of its own gets the child's peak resident memory (from `os.wait4`: the largest of
the child and the processes it waited for), and a crash is reported without stopping the
others.

The end is one table (figure, baseline, ratio, peak MiB, target, verdict), also written to
`bench/results/bench.json` and drawn in `bench/results/bench.png`. The exit status is 1 when a
benchmark crashed, 2 for an unknown name; a target not met is reported, not an error.

`option_chain` is one intraday cycle for 200 underlyings through the library,
`option_chain_scheduler` the same cycle as one DAG run under a real Airflow scheduler, and
`task_cost` one `nse_cm_bhavcopy` day under the scheduler with each executor (a couple of
minutes each with their set-up); `dag_import` times the dag-processor's parse of each DAG file.
`history` loads about a million real-shaped F&O rows end to end beside a pandas pipeline and
ClickHouse's Native floor, `history_scheduler` a year of CM and F&O through
`nse_history_backfill` under a scheduler beside the library alone, and `gold` runs the gold jobs
over a year on `spark-submit --master local[2]` beside the polars reference.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

from bench.results import Result, mib, table, write_chart, write_json
from include.nse import sources, warehouse
from include.nse.sources import _csv
from include.nse_standin.generate import generate
from tests.local_clickhouse import clickhouse_server as local_clickhouse
from tests.local_clickhouse import clickhouse_settings

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
LEGACY_DAY, UDIFF_DAY = dt.date(2024, 7, 5), dt.date(2024, 7, 8)
REPEAT, FETCH_REPEAT = 5, 20
#: Targets in milliseconds: see each benchmark's docstring.
PARSE_TARGET, LOAD_TARGET, FETCH_TARGET = 100, 250, 5
#: A benchmark still running after this is interrupted (the scheduler ones take minutes).
CHILD_TIMEOUT = 45 * 60


def best_of(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    """The fastest of `repeat` runs, after one warm-up: the least noisy estimate on a busy box."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _files(root: Path) -> dict[str, tuple[bytes, str]]:
    paths = {
        "cm_bhavcopy legacy": sources.get("cm_bhavcopy").publication.paths(LEGACY_DAY)[0],
        "cm_bhavcopy udiff": sources.get("cm_bhavcopy").publication.paths(UDIFF_DAY)[0],
        "cm_delivery": sources.get("cm_delivery").publication.paths(LEGACY_DAY)[0],
    }
    out = {}
    for label, path in paths.items():
        file = root / path.lstrip("/")
        out[label] = (file.read_bytes(), file.name)
    return out


def bench_parse(root: Path) -> list[Result]:
    """Typed, checked parsing against polars reading the same bytes as untyped strings.
    Target: a day's file (about 2,200 rows) under 100 ms, so ten years of a dataset parse in
    about four minutes."""
    results = []
    for label, (raw, name) in _files(root).items():
        dataset = sources.get(label.split()[0])
        rows = dataset.parse(raw, name).height
        ours = best_of(lambda d=dataset, r=raw, n=name: d.parse(r, n))
        baseline = best_of(
            lambda r=raw, n=name: pl.read_csv(_csv.csv_bytes(r, n), infer_schema=False)
        )
        results.append(
            Result(
                name=f"parse {label}",
                figure=ours * 1000,
                unit="ms",
                baseline=baseline * 1000,
                baseline_name="unzip + polars read_csv (str)",
                higher_is_better=False,
                target=f"under {PARSE_TARGET} ms",
                met=ours * 1000 < PARSE_TARGET,
                note=f"{rows} rows; fastest of {REPEAT}",
            )
        )
    return results


def bench_load(root: Path) -> list[Result]:
    """An idempotent partition swap against a plain INSERT of the same columns.
    Target: a day's partition swapped in under 250 ms (staging table, insert, swap, clean-up),
    so ten years of days load one at a time in about ten minutes."""
    from clickhouse_driver import Client

    client = Client(**clickhouse_settings())
    database = f"bench_{uuid.uuid4().hex[:8]}"
    dataset = sources.get("cm_bhavcopy")
    raw, name = _files(root)["cm_bhavcopy legacy"]
    df = dataset.parse(raw, name)
    try:
        warehouse.migrate(client, database)
        client.execute(f"CREATE TABLE {database}.plain AS {database}.{dataset.table}")
        columns = warehouse.to_columns(df)
        insert = f"INSERT INTO {database}.plain ({', '.join(columns)}) VALUES"
        ours = best_of(lambda: warehouse.load(client, dataset, LEGACY_DAY, df, database))
        baseline = best_of(lambda: client.execute(insert, list(columns.values()), columnar=True))
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()
    return [
        Result(
            name="load cm_bhavcopy",
            figure=ours * 1000,
            unit="ms",
            baseline=baseline * 1000,
            baseline_name="plain columnar INSERT",
            higher_is_better=False,
            target=f"under {LOAD_TARGET} ms",
            met=ours * 1000 < LOAD_TARGET,
            note=f"{df.height} rows; fastest of {REPEAT}",
        )
    ]


def bench_fetch(root: Path) -> list[Result]:
    """The client (retries, rate limit, records, checks) against a bare httpx GET on loopback.
    Target: under 5 ms a request more than the bare GET, a small share of the 200 ms between
    two archive requests at NSE's default rate."""
    import httpx

    from include.nse.client import NSEClient
    from include.nse.config import Settings
    from include.nse_standin.server import StandIn

    path = sources.get("cm_bhavcopy").publication.paths(LEGACY_DAY)[0]
    with StandIn(root) as standin, httpx.Client() as bare:
        settings = Settings(archive_base_url=standin.url, archive_rate_per_second=1000)
        with NSEClient(settings) as client:
            ours = best_of(lambda: client.get_archive(path), repeat=FETCH_REPEAT)
        baseline = best_of(lambda: bare.get(standin.url + path).raise_for_status(), FETCH_REPEAT)
    return [
        Result(
            name="fetch cm_bhavcopy (loopback)",
            figure=ours * 1000,
            unit="ms",
            baseline=baseline * 1000,
            baseline_name="bare httpx GET",
            higher_is_better=False,
            target=f"under {FETCH_TARGET} ms over the bare GET",
            met=(ours - baseline) * 1000 < FETCH_TARGET,
            note=f"fastest of {FETCH_REPEAT}",
        )
    ]


def lazy(module: str, function: str) -> Callable[[Path], list[Result]]:
    """The benchmark `function` of `module`, imported when it runs (in its own process)."""

    def run(root: Path) -> list[Result]:
        return getattr(importlib.import_module(module), function)(root)

    return run


#: name -> benchmark, in the order they run; registering one is one line here.
BENCHMARKS: dict[str, Callable[[Path], list[Result]]] = {
    "parse": bench_parse,
    "load": bench_load,
    "fetch": bench_fetch,
    "dag_import": lazy("bench.dag_import", "bench_dag_import"),
    "option_chain": lazy("bench.option_chain", "bench_option_chain"),
    "option_chain_scheduler": lazy("bench.option_chain_scheduler", "bench_scheduler"),
    "task_cost": lazy("bench.task_cost", "bench_task_cost"),
    "history": lazy("bench.history", "bench_history"),
    "history_scheduler": lazy("bench.history_scheduler", "bench_history_scheduler"),
    "gold": lazy("bench.gold", "bench_gold"),
}


def generated(root: Path) -> None:
    """The stand-in's files every benchmark may read, in `root`."""
    started = time.perf_counter()
    generate(LEGACY_DAY, UDIFF_DAY, root)
    print(f"generated {LEGACY_DAY}..{UDIFF_DAY} in {time.perf_counter() - started:.2f} s")


def run_one(name: str, root: Path | None, json_out: Path) -> int:
    """`--one`: run one benchmark here and write its results to `json_out`."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
            generated(root)
        results = BENCHMARKS[name](root)
    if not isinstance(results, list) or not all(isinstance(r, Result) for r in results):
        raise TypeError(f"benchmark {name} returned {type(results).__name__}, not list[Result]")
    json_out.write_text(json.dumps([r.to_dict() for r in results]))
    return 0


def run_child(name: str, root: Path, work: Path) -> tuple[list[Result], str | None]:
    """One benchmark in a child process: its results with peak memory, or why it crashed."""
    out = work / f"{name}.json"
    command = [sys.executable, "-m", "bench", "--one", name, "--root", str(root)]
    child = subprocess.Popen([*command, "--json-out", str(out)], cwd=ROOT)
    status, usage = _wait(child, CHILD_TIMEOUT)
    if status != 0:
        return [], f"exit status {status}"
    if not out.exists():
        return [], "no results written"
    results = [Result.from_dict(item) for item in json.loads(out.read_text())]
    if not results:
        return [], "no results"
    for result in results:
        if result.peak_mib is None:
            result.peak_mib = mib(usage.ru_maxrss)
    return results, None


def _wait(child: subprocess.Popen, timeout: float) -> tuple[int, resource.struct_rusage]:
    """The child's exit status and resource use. Past `timeout` it gets SIGINT, to run its
    clean-up (stop its daemons, drop its database), and SIGKILL a minute later; on Ctrl-C,
    which reaches it too, it gets the same minute before the parent stops."""
    try:
        reaped = _reap(child, timeout)
        if reaped is None:
            print(f"no result within {timeout:.0f} s: interrupting", flush=True)
            child.send_signal(signal.SIGINT)
            reaped = _reap(child, 60)
    except KeyboardInterrupt:
        if _reap(child, 60) is None:
            child.kill()
            _reap(child, None)
        raise
    if reaped is None:
        child.kill()
        reaped = _reap(child, None)
    return reaped


def _reap(child: subprocess.Popen, timeout: float | None):
    """(exit status, resource use) once the child has exited, None if it is still running
    after `timeout` seconds (None: wait as long as it takes). os.wait4, not Popen.wait, as only
    it returns the child's resource use."""
    if timeout is None:
        _, status, usage = os.wait4(child.pid, 0)
    else:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
    child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, usage


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--one", metavar="NAME", help="run one benchmark in this process")
    parser.add_argument("--root", type=Path, help="the generated files (--one)")
    parser.add_argument("--json-out", type=Path, help="where --one writes its results")
    args = parser.parse_args(argv)
    chosen = [args.one] if args.one else args.names or list(BENCHMARKS)
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmarks {unknown}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    if args.one:
        if not args.json_out:
            parser.error("--one needs --json-out")
        return run_one(args.one, args.root, args.json_out)

    results: list[Result] = []
    crashed: dict[str, str] = {}
    started, load_before = dt.datetime.now(dt.UTC), os.getloadavg()[0]
    with local_clickhouse(), tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root, work = Path(tmp) / "data", Path(tmp) / "results"
        work.mkdir()
        generated(root)
        for name in chosen:
            print(f"== {name}", flush=True)
            began = time.perf_counter()
            mine, crash = run_child(name, root, work)
            print(f"== {name}: {crash or 'done'} in {time.perf_counter() - began:.0f} s")
            results += mine
            if crash:
                crashed[name] = crash
    about = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds()),
        "cpus": os.cpu_count(),
        "load_average": {"start": load_before, "end": os.getloadavg()[0]},
        "benchmarks": chosen,
        "crashed": crashed,
    }
    print()
    print(table(results))
    for name, why in crashed.items():
        print(f"{name}: CRASHED ({why})")
    title = (
        f"python -m bench {' '.join(args.names)}".strip()
        + f", {about['started']}, {about['cpus']} CPUs, load average {load_before:.1f} at the "
        f"start, {about['load_average']['end']:.1f} at the end"
        + (f"; CRASHED: {', '.join(crashed)}" if crashed else "")
    )
    write_json(RESULTS / "bench.json", results, about)
    write_chart(RESULTS / "bench.png", results, title)
    print(f"\nwritten {RESULTS / 'bench.json'} and {RESULTS / 'bench.png'}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
