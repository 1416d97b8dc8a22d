"""One intraday option chain cycle for 200 underlyings served by the stand-in, library time.

python -m bench.option_chain    (ClickHouse from CLICKHOUSE_*, default 127.0.0.1:19000)

The pipeline's steps for the `option_chain` dataset run one after another in this process, as
one mapped batch would, with the client's rate limit lifted (loopback): fetch (contract info and
every expiry's chain, into bronze), parse (stale check, silver), validate and load (ClickHouse),
then the analytics step (gold, ClickHouse). The baseline, measured in
the same run, is a bare httpx GET of the same URLs; the share of the 5-minute interval is for
the whole cycle done serially (the DAG spreads fetch and store over its batches). A second
cycle follows with nothing new (every snapshot stale, as after the close).

Target: each cycle under a fifth of the interval (60 s), leaving the rest for scheduling,
retries and NSE's rate limit.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.results import Result, table

UNDERLYINGS = 200
INTERVAL = dt.timedelta(minutes=5)
#: The share of the interval a cycle may use.
TARGET_SHARE = 0.2


def names(count: int) -> list[str]:
    from include.nse.sources.option_chain import INDEX_UNDERLYINGS

    return [*INDEX_UNDERLYINGS, *(f"STOCK{i:03d}" for i in range(count - len(INDEX_UNDERLYINGS)))]


def bench_option_chain(root: Path) -> list[Result]:
    import httpx
    from clickhouse_driver import Client

    from include.nse import pipeline, sources
    from include.nse.config import Settings
    from include.nse.dates import IST
    from include.nse.sources.base import Request
    from include.nse.warehouse import Warehouse
    from include.nse_standin.option_chain import write_option_chains
    from include.nse_standin.server import StandIn
    from tests.local_clickhouse import clickhouse_settings

    snapshot = dt.datetime(2024, 7, 5, 11, 0, 3, tzinfo=IST)
    underlyings = names(UNDERLYINGS)
    started = time.perf_counter()
    written = write_option_chains(root / "api_root", underlyings, snapshot)
    print(
        f"generated {len(underlyings)} chains: {written['files']} responses, "
        f"{written['legs']} legs, {written['bytes'] / 1e6:.1f} MB in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    server = clickhouse_settings()
    database = f"bench_{uuid.uuid4().hex[:8]}"
    dataset = sources.get("option_chain")
    request = Request(snapshot.date(), tuple(underlyings))
    with StandIn(root / "api_root") as standin:
        settings = Settings(
            lake_root=root / "lake", api_base_url=standin.url, api_rate_per_second=10_000
        )
        ctx = pipeline.Context(settings, Warehouse(lambda: _connected(Client(**server)), database))
        try:
            t0 = time.perf_counter()
            fetched = pipeline.fetch(ctx, dataset, request)
            t1 = time.perf_counter()
            parsed = pipeline.parse(ctx, dataset, request.trade_date, fetched)
            t2 = time.perf_counter()
            validated = pipeline.validate(ctx, dataset, parsed)
            loaded = pipeline.load(ctx, dataset, validated)
            gold = pipeline.after_step(ctx, dataset, "analytics", loaded)
            t3 = time.perf_counter()
            urls = [f["url"] for f in fetched["files"]]
            with httpx.Client(headers={"Accept-Encoding": "br"}) as bare:
                bare.get(standin.url + "/")  # the session's cookies, as the client's warm-up
                b0 = time.perf_counter()
                for url in urls:
                    bare.get(url).raise_for_status()
                baseline = time.perf_counter() - b0
            stale_started = time.perf_counter()
            again = pipeline.parse(
                ctx, dataset, request.trade_date, pipeline.fetch(ctx, dataset, request)
            )
            stale_cycle = time.perf_counter() - stale_started
        finally:
            with _connected(Client(**server)) as client:
                client.execute(f"DROP DATABASE IF EXISTS {database}")
    if fetched["failed"] or parsed["failed"]:
        raise RuntimeError(f"the cycle failed: {fetched['failed']} {parsed['failed']}")
    total = t3 - t0
    print(
        f"option chain cycle ({len(underlyings)} underlyings, load average "
        f"{os.getloadavg()[0]:.2f}): fetch {t1 - t0:.2f} s, parse {t2 - t1:.2f} s, "
        f"gate+load+gold {t3 - t2:.2f} s",
        flush=True,
    )
    return [
        _cycle(
            "option_chain cycle",
            total,
            baseline,
            f"{len(urls)} requests, {parsed['rows']} rows, {gold['analytics_rows']} analytics "
            f"rows; fetch {t1 - t0:.1f} s (fetch/baseline {(t1 - t0) / baseline:.2f}x), "
            f"parse {t2 - t1:.1f} s, gate+load+gold {t3 - t2:.1f} s",
        ),
        _cycle(
            "option_chain stale cycle",
            stale_cycle,
            baseline,
            f"fetch and parse with nothing new: {len(again['stale'])} stale, "
            f"{again['rows']} rows stored",
        ),
    ]


def _cycle(name: str, seconds: float, baseline: float, note: str) -> Result:
    limit = TARGET_SHARE * INTERVAL.total_seconds()
    return Result(
        name=f"{name} ({UNDERLYINGS} underlyings)",
        figure=seconds,
        unit="s",
        baseline=baseline,
        baseline_name="bare httpx GET of the same URLs",
        higher_is_better=False,
        target=f"under {limit:.0f} s ({TARGET_SHARE:.0%} of the 5-min interval)",
        met=seconds < limit,
        note=f"{seconds / INTERVAL.total_seconds():.1%} of the interval; {note}",
    )


@contextlib.contextmanager
def _connected(client):
    try:
        yield client
    finally:
        client.disconnect()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        print(table(bench_option_chain(Path(tmp))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
