"""Faults under the command line: `python -m include.nse` in a child process, as a user runs it,
with infrastructure failing under it. Each case checks that the user gets one line naming what
failed (the dataset and date, or the file) and no traceback, that nothing half-done is left, and
that running the same command again finishes the job exactly once.

The ClickHouse server killed here is a private one started for the test, never the shared one.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from clickhouse_driver import Client

from include.nse import sources
from include.nse_standin.generate import generate
from tests.conftest import PROJECT_ROOT
from tests.helpers import unzipped
from tests.reliability.hostile import Hostile, Reply, run_cli
from tests.reliability.private_clickhouse import PrivateClickHouse

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]

DAYS = [dt.date(2024, 7, 1), dt.date(2024, 7, 2), dt.date(2024, 7, 3), dt.date(2024, 7, 4)]
CM = sources.get("cm_bhavcopy")


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(DAYS[0], DAYS[-1], root, symbols=40, datasets=["cm_bhavcopy"])
    return root


def _file(root: Path, day: dt.date) -> Path:
    """The bhavcopy NSE serves for `day` (the legacy file, the first one asked for)."""
    return root / CM.publication.paths(day)[0].lstrip("/")


def _rows(path: Path) -> int:
    _, data = unzipped(path.read_bytes())
    return sum(1 for line in data.splitlines()[1:] if line.strip())


def _env(lake: Path, nse_url: str, clickhouse: dict, database: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKHOUSE_")}
    return env | {
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONUNBUFFERED": "1",  # a JSON line per day as it happens
        "NSE_LAKE_ROOT": str(lake),
        "NSE_ARCHIVE_BASE_URL": nse_url,
        "NSE_API_BASE_URL": nse_url,
        "NSE_HTTP_BACKOFF_INITIAL": "0.01",
        "NSE_HTTP_BACKOFF_MAX": "0.05",
        "NSE_ARCHIVE_RATE": "200",
        "CLICKHOUSE_HOST": clickhouse["host"],
        "CLICKHOUSE_PORT": str(clickhouse["port"]),
        "CLICKHOUSE_USER": clickhouse["user"],
        "CLICKHOUSE_PASSWORD": clickhouse["password"],
        "CLICKHOUSE_DATABASE": database,
    }


def _cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "include.nse", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=300,
    )


def _wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_clickhouse_dies_in_the_middle_of_ingest(nse_root, tmp_path, fault):
    """`ingest` of four days, two of them loaded by an earlier run; ClickHouse is killed while
    the third day's file is on its way. The command exits 1 with one line naming ClickHouse,
    the dataset and the days it did not finish, and no traceback. With the server back, the
    same command loads the two days left and skips the two done: every day's rows once."""
    third = CM.publication.paths(DAYS[2])[0]
    gate = threading.Event()
    expected = {day: _rows(_file(nse_root, day)) for day in DAYS}
    with PrivateClickHouse(tmp_path / "clickhouse") as server, Hostile(nse_root) as nse:
        env = _env(tmp_path / "lake", nse.url, server.settings, "nse")
        assert _cli("warehouse", "migrate", env=env).returncode == 0
        first = ("--date", DAYS[0].isoformat(), "--to", DAYS[1].isoformat())
        assert _cli("ingest", "cm_bhavcopy", *first, env=env).returncode == 0

        nse.script(third, Reply(200, _file(nse_root, DAYS[2]).read_bytes(), gate=gate))
        span = ("--date", DAYS[0].isoformat(), "--to", DAYS[-1].isoformat())
        child = subprocess.Popen(
            [sys.executable, "-m", "include.nse", "ingest", "cm_bhavcopy", *span],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=PROJECT_ROOT,
            env=env,
        )
        try:
            _wait_for(lambda: nse.requests(third))  # the third day's file is on its way
            server.kill()
            gate.set()
            out, err = child.communicate(timeout=120)
        finally:
            gate.set()
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 1 and "Traceback" not in err, err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        (line,) = lines
        left = f"{DAYS[2]}..{DAYS[3]}"
        assert line.startswith(
            f"Error: ClickHouse at 127.0.0.1:{server.tcp_port} failed while loading cm_bhavcopy "
            f"for {left} (2 of 4 days finished before it stopped; the same command resumes "
            "from there): "
        ), line
        assert [(d["trade_date"], d["status"]) for d in map(json.loads, out.splitlines())] == [
            (DAYS[0].isoformat(), "skipped"),
            (DAYS[1].isoformat(), "skipped"),
        ]

        server.start()
        rerun = _cli("ingest", "cm_bhavcopy", *span, env=env)
        assert rerun.returncode == 0, rerun.stderr
        statuses = [
            (d["trade_date"], d["status"]) for d in map(json.loads, rerun.stdout.splitlines())
        ]
        assert statuses == [
            (DAYS[0].isoformat(), "skipped"),
            (DAYS[1].isoformat(), "skipped"),
            (DAYS[2].isoformat(), "loaded"),
            (DAYS[3].isoformat(), "loaded"),
        ]
        client = Client(**server.settings)
        held = dict(
            client.execute("SELECT trade_date, count() FROM nse.cm_bhavcopy GROUP BY trade_date")
        )
        keys = client.execute("SELECT uniqExact(trade_date, symbol, series) FROM nse.cm_bhavcopy")
        client.disconnect()
    assert held == expected
    total = sum(expected.values())
    fault(
        "ClickHouse killed in the middle of `ingest` (private server)",
        outcome=f"exit 1 naming cm_bhavcopy {left}; rerun loaded 2 days, skipped 2",
        lost=total - keys[0][0],
        duplicated=sum(held.values()) - keys[0][0],
    )


def test_failed_out_write_leaves_no_partial_file(nse_root, tmp_path, fault):
    """`parse --out` whose write fails halfway (the file may not grow past a few kilobytes, as
    on a full disk): exit 1 naming the file and why, no partial Parquet file and no temporary
    file left, an earlier file at that name whole; the same command then writes every row."""
    source = _file(nse_root, DAYS[0])
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    out = tmp_path / "out" / "day.parquet"
    args = ("parse", "cm_bhavcopy", str(source), "--out", str(out))

    failed = run_cli(*args, env=env, file_size=1024)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    (line,) = [line for line in failed.stderr.splitlines() if line.strip()]
    assert line.startswith(f"Error: cannot write {out}: File too large"), line
    assert not out.parent.exists() or list(out.parent.iterdir()) == []

    done = run_cli(*args, env=env)
    assert done.returncode == 0, done.stderr
    earlier = out.read_bytes()
    expected = _rows(source)
    assert pl.read_parquet(out).height == expected == json.loads(done.stdout)["rows"]

    other = _file(nse_root, DAYS[1])
    started = time.monotonic()
    failed = run_cli("parse", "cm_bhavcopy", str(other), "--out", str(out), env=env, file_size=1024)
    assert failed.returncode == 1 and f"cannot write {out}" in failed.stderr
    assert out.read_bytes() == earlier  # the earlier file, whole
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    fault(
        "`parse --out` write fails halfway (file size limit)",
        outcome=f"exit 1 naming the file; nothing partial left "
        f"({time.monotonic() - started:.1f} s)",
    )
