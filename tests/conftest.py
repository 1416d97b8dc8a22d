"""Shared fixtures: a real ClickHouse server, a clean lake, the samples folder."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's metadata database for the tests, migrated once (a no-op when up to date)."""
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


def clickhouse_settings() -> dict:
    """Where the test server is: an existing one from CLICKHOUSE_* or the local one we start."""
    return {
        "host": os.environ.get("CLICKHOUSE_HOST", "127.0.0.1"),
        "port": int(os.environ.get("CLICKHOUSE_PORT", "19000")),
        "user": os.environ.get("CLICKHOUSE_USER", "default"),
        "password": os.environ.get("CLICKHOUSE_PASSWORD", ""),
    }


@pytest.fixture(scope="session")
def clickhouse_server() -> dict:
    """A running ClickHouse server; started from Debian's package unless CLICKHOUSE_HOST is set."""
    settings = clickhouse_settings()
    started = False
    if "CLICKHOUSE_HOST" not in os.environ:
        script = PROJECT_ROOT / "scripts" / "clickhouse-local.sh"
        status = subprocess.run([str(script), "status"], capture_output=True)
        if status.returncode != 0:
            subprocess.run([str(script), "start"], check=True)
            started = True
    yield settings
    if started and not os.environ.get("KEEP_CLICKHOUSE"):
        subprocess.run([str(PROJECT_ROOT / "scripts" / "clickhouse-local.sh"), "stop"], check=False)


def parse_dag(dag_id: str):
    """Parse one DAG file afresh (`dag.test(run_conf=...)` changes a parsed DAG's params)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


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


@pytest.fixture()
def ch_database(clickhouse_server) -> str:
    """A fresh database for one test, dropped afterwards."""
    from clickhouse_driver import Client

    name = f"test_{uuid.uuid4().hex[:10]}"
    client = Client(**clickhouse_server)
    client.execute(f"CREATE DATABASE {name}")
    yield name
    client.execute(f"DROP DATABASE IF EXISTS {name}")
    client.disconnect()


@pytest.fixture()
def ch_client(clickhouse_server, ch_database):
    """A clickhouse-driver client whose default database is a fresh test database."""
    from clickhouse_driver import Client

    client = Client(**clickhouse_server, database=ch_database)
    yield client
    client.disconnect()
