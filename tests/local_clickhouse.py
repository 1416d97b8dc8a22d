"""The ClickHouse server the tests and benchmarks use: an existing one named by CLICKHOUSE_*, or
Debian's clickhouse-server started by `scripts/clickhouse-local.sh` on 127.0.0.1:19000.

No side effects on import: `bench` uses it without taking on the tests' Airflow settings.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "clickhouse-local.sh"


def clickhouse_settings() -> dict:
    """Where the server is: an existing one from CLICKHOUSE_* or the local one we start."""
    return {
        "host": os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
        "port": int(os.environ.get("CLICKHOUSE_PORT", "19000")),
        "user": os.environ.get("CLICKHOUSE_USER", "default"),
        "password": os.environ.get("CLICKHOUSE_PASSWORD", ""),
    }


@contextmanager
def clickhouse_server() -> Iterator[dict]:
    """A running server's settings. Unless CLICKHOUSE_HOST is set, the local server is started
    when it is not running, and stopped on exit only if started here (and KEEP_CLICKHOUSE is
    unset): a server someone else started stays up."""
    started = False
    if "CLICKHOUSE_HOST" not in os.environ:
        status = subprocess.run([str(SCRIPT), "status"], capture_output=True)
        if status.returncode != 0:
            subprocess.run([str(SCRIPT), "start"], check=True)
            started = True
    try:
        yield clickhouse_settings()
    finally:
        if started and not os.environ.get("KEEP_CLICKHOUSE"):
            subprocess.run([str(SCRIPT), "stop"], check=False)
