"""Run every benchmark and print one line each: ours, the baseline, and ours / baseline.

python -m bench              all benchmarks (ClickHouse from CLICKHOUSE_HOST/PORT, default
                             127.0.0.1:19000 as `make bench` starts it)
python -m bench parse fetch  a subset

`option_chain` is one intraday cycle for 200 underlyings through the library
(`bench/option_chain.py`), `option_chain_scheduler` the same cycle as one DAG run under a real
Airflow scheduler (`bench/option_chain_scheduler.py`, about two minutes with its set-up); both
print the share of the 5-minute interval they use.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl

from bench.option_chain import bench_option_chain
from bench.option_chain_scheduler import bench_scheduler
from bench.task_cost import bench_task_cost
from include.nse import sources, warehouse
from include.nse.sources import _csv
from include.nse_standin.generate import generate

LEGACY_DAY, UDIFF_DAY = dt.date(2024, 7, 5), dt.date(2024, 7, 8)
REPEAT = 5


def best_of(fn: Callable[[], object], repeat: int = REPEAT) -> float:
    """The fastest of `repeat` runs, after one warm-up: the least noisy estimate on a busy box."""
    fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def report(name: str, ours: float, baseline: float, baseline_name: str, note: str = "") -> None:
    print(
        f"{name:<28} ours {ours * 1000:9.1f} ms   {baseline_name:<30} {baseline * 1000:9.1f} ms"
        f"   ratio {ours / baseline:6.2f}x  {note}",
        flush=True,
    )


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


def bench_parse(root: Path) -> None:
    """Typed, checked parsing against polars reading the same bytes as untyped strings."""
    for label, (raw, name) in _files(root).items():
        dataset = sources.get(label.split()[0])
        rows = dataset.parse(raw, name).height
        ours = best_of(lambda d=dataset, r=raw, n=name: d.parse(r, n))
        baseline = best_of(
            lambda r=raw, n=name: pl.read_csv(_csv.csv_bytes(r, n), infer_schema=False)
        )
        report(f"parse {label}", ours, baseline, "unzip + polars read_csv (str)", f"{rows} rows")


def bench_load(root: Path) -> None:
    """An idempotent partition swap against a plain INSERT of the same columns."""
    from clickhouse_driver import Client

    client = Client(
        host=os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
        port=int(os.environ.get("CLICKHOUSE_PORT", "19000")),
        user=os.environ.get("CLICKHOUSE_USER", "default"),
        password=os.environ.get("CLICKHOUSE_PASSWORD", ""),
    )
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
        report("load cm_bhavcopy", ours, baseline, "plain columnar INSERT", f"{df.height} rows")
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {database}")
        client.disconnect()


def bench_fetch(root: Path) -> None:
    """The client (retries, rate limit, records, checks) against a bare httpx GET."""
    import httpx

    from include.nse.client import NSEClient
    from include.nse.config import Settings
    from include.nse_standin.server import StandIn

    path = sources.get("cm_bhavcopy").publication.paths(LEGACY_DAY)[0]
    with StandIn(root) as standin, httpx.Client() as bare:
        settings = Settings(archive_base_url=standin.url, archive_rate_per_second=1000)
        with NSEClient(settings) as client:
            ours = best_of(lambda: client.get_archive(path), repeat=20)
        baseline = best_of(lambda: bare.get(standin.url + path).raise_for_status(), repeat=20)
    report("fetch cm_bhavcopy (loopback)", ours, baseline, "bare httpx GET")


BENCHMARKS = {
    "parse": bench_parse,
    "load": bench_load,
    "fetch": bench_fetch,
    "option_chain": bench_option_chain,
    "option_chain_scheduler": bench_scheduler,
    "task_cost": bench_task_cost,
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        print(f"unknown benchmarks {sorted(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        generate(LEGACY_DAY, UDIFF_DAY, root)
        print(f"generated {LEGACY_DAY}..{UDIFF_DAY} in {time.perf_counter() - started:.2f} s")
        for name in chosen:
            BENCHMARKS[name](root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
