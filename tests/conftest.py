"""Shared fixtures: a real ClickHouse server, a clean lake, the samples folder."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.local_clickhouse import clickhouse_server as local_clickhouse

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = PROJECT_ROOT.parent / "shared" / "nse-samples"

# Airflow reads its configuration when first imported, so the test instance is set up here,
# before any test module imports it: its own home and SQLite database under .local/.
AIRFLOW_TEST_HOME = Path(
    os.environ.get("NSE_TEST_AIRFLOW_HOME") or PROJECT_ROOT / ".local" / "airflow-test"
)
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_TEST_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_TEST_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
)
AIRFLOW_TEST_HOME.mkdir(parents=True, exist_ok=True)

# scripts/test.sh bounds each pytest process and, at the bound, sends SIGUSR1: every thread's
# stack goes to this file (pytest captures stderr), then the signal ends the process as usual.
if stacks := os.environ.get("NSE_TEST_STACKS"):
    _STACKS = open(stacks, "a")  # open for the life of the process
    faulthandler.register(signal.SIGUSR1, file=_STACKS, all_threads=True, chain=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database for the tests, made afresh once per session: runs left by an
    earlier session (of DAGs since changed) must not meet this one's."""
    # The WAL and shared-memory files of a process that was killed would not match a new file.
    for name in ("airflow.db", "airflow.db-wal", "airflow.db-shm"):
        (AIRFLOW_TEST_HOME / name).unlink(missing_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{done.stdout}\n{done.stderr}")
    return AIRFLOW_TEST_HOME / "airflow.db"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.skip(f"real NSE samples not available: {SAMPLES} does not exist")
    return SAMPLES


@pytest.fixture()
def lake_root(tmp_path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def clickhouse_server() -> dict:
    """A running ClickHouse server; started from Debian's package unless CLICKHOUSE_HOST is set."""
    with local_clickhouse() as settings:
        yield settings


def parse_dag(dag_id: str, *, keep_deadline: bool = False):
    """Parse one DAG file afresh (`dag.test(run_conf=...)` changes a parsed DAG's params), ready
    for `dag.test()`: without its deadline alert, unless `keep_deadline`.

    Airflow 3.3's `dag.test()` serializes the DAG in memory, so its deadline alerts stay
    dictionaries where the scheduler's copy holds their database ids, and ending a successful
    run looks them up by those ids and fails. Deadlines are tested under a real scheduler
    (`test_scheduler.py`); `test_dags.py` checks this limit still holds.
    """
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    dag = bag.dags[dag_id]
    if not keep_deadline:
        dag.deadline = None
    return dag


def clickhouse_connection(server: dict, database: str) -> str:
    """The `clickhouse_default` connection, as JSON for `AIRFLOW_CONN_CLICKHOUSE_DEFAULT`."""
    import json

    return json.dumps(
        {
            "conn_type": "clickhouse",
            "host": server["host"],
            "port": server["port"],
            "login": server["user"],
            "password": server["password"],
            "schema": database,
        }
    )


@contextmanager
def new_database(server: dict) -> Iterator[str]:
    """A fresh, empty ClickHouse database, dropped on exit."""
    from clickhouse_driver import Client

    name = f"test_{uuid.uuid4().hex[:10]}"
    client = Client(**server)
    client.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {name}")
        client.disconnect()


@pytest.fixture()
def ch_database(clickhouse_server) -> str:
    """A fresh database for one test, dropped afterwards."""
    with new_database(clickhouse_server) as name:
        yield name


@pytest.fixture()
def ch_client(clickhouse_server, ch_database):
    """A clickhouse-driver client whose default database is a fresh test database."""
    from clickhouse_driver import Client

    client = Client(**clickhouse_server, database=ch_database)
    yield client
    client.disconnect()


@contextmanager
def stand_in_env(
    nse_root: Path, lake: Path, server: dict, database: str, patch: pytest.MonkeyPatch
) -> Iterator[dict]:
    """A DAG's surroundings: both NSE hosts on a stand-in over loopback serving `nse_root`, the
    lake at `lake`, `database` on `server` as `clickhouse_default`, short retry waits, set in
    the environment through `patch`. Yields the stand-in, the lake's root and the database."""
    import json

    from include.nse_standin.server import StandIn

    with StandIn(nse_root) as standin:
        host = json.dumps({"conn_type": "http", "host": standin.url})
        # Both NSE connections: a missing one costs a lookup through every secrets backend.
        for name, value in {
            "AIRFLOW_CONN_NSE_ARCHIVES": host,
            "AIRFLOW_CONN_NSE_API": host,
            "AIRFLOW_CONN_CLICKHOUSE_DEFAULT": clickhouse_connection(server, database),
            "NSE_LAKE_ROOT": str(lake),
            "NSE_API_RATE": "200",
            "NSE_HTTP_BACKOFF_INITIAL": "0.05",
            "NSE_HTTP_BACKOFF_MAX": "0.2",
        }.items():
            patch.setenv(name, value)
        # The calendar is the packaged one, or what a test's own refresh writes into its lake.
        patch.delenv("NSE_HOLIDAYS_FILE", raising=False)
        yield {"standin": standin, "lake": lake, "database": database}


@pytest.fixture()
def dag_env(nse_root, tmp_path, monkeypatch, airflow_db, clickhouse_server, ch_database):
    """`stand_in_env` for one test, serving the test module's `nse_root`."""
    with stand_in_env(
        nse_root, tmp_path / "lake", clickhouse_server, ch_database, monkeypatch
    ) as env:
        yield env


@contextmanager
def slack_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A Slack webhook receiver on loopback: yields its URL and the messages it receives."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    messages: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            messages.append({"path": self.path, **json.loads(body)})
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", messages
    finally:
        server.shutdown()
        server.server_close()


def slack_connection(url: str) -> str:
    """The `slack_alerts` connection for a receiver at `url`, as JSON for the environment."""
    import json

    # pragma: allowlist nextline secret (the placeholder token the receiver answers to)
    return json.dumps({"conn_type": "slackwebhook", "host": url, "password": "T000/B000/XXX"})


@pytest.fixture()
def slack(monkeypatch):
    """A webhook receiver on loopback, set as the `slack_alerts` connection; yields messages."""
    with slack_receiver() as (url, messages):
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", slack_connection(url))
        monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
        yield messages
