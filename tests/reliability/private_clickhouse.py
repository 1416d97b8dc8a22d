"""A ClickHouse server of a test's own, to kill and restart: never the shared one on :19000.

`scripts/clickhouse-local.sh` starts it exactly as it starts the shared server, only with its
data under the test's folder and on free ports; `kill` stops it with SIGKILL (a crash: no
flush, no goodbye to its clients), `start` brings it back on the same data.

    with PrivateClickHouse(tmp_path / "ch") as server:
        client = Client(**server.settings)
        ...
        server.kill()
        server.start()
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from bench.airflow_harness import free_port
from tests.conftest import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "clickhouse-local.sh"


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (dead, not yet reaped by its new parent) is gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


class PrivateClickHouse:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.tcp_port, self.http_port = free_port(), free_port()
        self.settings = {
            "host": "127.0.0.1",
            "port": self.tcp_port,
            "user": "default",
            "password": "",
        }

    def _script(self, command: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CH_", "CLICKHOUSE_"))} | {
            "CH_DIR": str(self.directory),
            "CH_TCP_PORT": str(self.tcp_port),
            "CH_HTTP_PORT": str(self.http_port),
        }
        return subprocess.run(
            [str(SCRIPT), command], env=env, capture_output=True, text=True, timeout=120
        )

    @property
    def pid(self) -> int | None:
        pidfile = self.directory / "server.pid"
        return int(pidfile.read_text()) if pidfile.exists() else None

    def start(self) -> None:
        done = self._script("start")
        if done.returncode != 0:
            raise RuntimeError(f"private clickhouse did not start:\n{done.stdout}{done.stderr}")

    def kill(self) -> None:
        """SIGKILL the server (its own pid, recorded by the script) and wait until it is gone."""
        pid = self.pid
        if pid is None:
            return
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not _alive(pid):
                # The script takes a zombie for a live server; this one is dead.
                (self.directory / "server.pid").unlink()
                return
            time.sleep(0.05)
        raise RuntimeError(f"clickhouse-server {pid} still alive 30 s after SIGKILL")

    def stop(self) -> None:
        self._script("stop")

    def __enter__(self) -> PrivateClickHouse:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
