"""Faults from whoever triggers a run: a `trade_date` in its configuration that is not a date,
or that tries to carry SQL into a query. Given to the equity DAG with `airflow dags trigger --conf`
(the DAG serialized into Airflow's metadata database as the dag-processor does, the stand-in over
loopback, a real ClickHouse database holding a day already loaded).

Every case asserts: the run is refused before it exists, the command failing with a message
naming `trade_date` and what was expected; nothing is touched (no request to NSE, the lake's
files and the warehouse's tables and rows as they were); and the value is refused again at each
later door it could reach by another way (the task's reading of the param, the warehouse's
load).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from include.nse import sources, warehouse
from include.nse.dates import trade_date_of
from include.nse.lake import Lake
from include.nse_standin.generate import generate
from tests.conftest import PROJECT_ROOT
from tests.helpers import bhavcopy_frame

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

DAY = dt.date(2024, 7, 5)
DAG_ID = "nse_cm_bhavcopy"


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(DAY, DAY, root, symbols=20, datasets=["cm_bhavcopy", "cm_delivery"])
    return root


def _airflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
        timeout=300,
    )


@pytest.fixture(scope="module")
def serialized(airflow_db):
    """The DAGs in the metadata database, as the dag-processor leaves them for a trigger."""
    done = _airflow("dags", "reserialize")
    assert done.returncode == 0, done.stderr[-2000:]


def _lake_files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _warehouse(client, database: str) -> dict[str, list]:
    """Every table of the database with its rows, in order."""
    tables = [t for (t,) in client.execute(f"SHOW TABLES FROM {database}")]
    return {t: client.execute(f"SELECT * FROM {database}.{t} ORDER BY tuple(*)") for t in tables}


def _runs() -> list[str]:
    from airflow.models import DagRun

    return sorted(run.run_id for run in DagRun.find(dag_id=DAG_ID))


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("not a date", "05-07-2024"),
        ("not a date", "2024-02-30"),
        ("SQL injection", "2024-07-05'; DROP TABLE cm_bhavcopy; --"),
    ],
)
def test_bad_trade_date_is_refused_and_touches_nothing(
    serialized, dag_env, ch_client, fault, kind, value
):
    database, standin = dag_env["database"], dag_env["standin"]
    # What is there before: a loaded day in ClickHouse, a file in bronze.
    warehouse.migrate(ch_client, database)
    frame = bhavcopy_frame(DAY, ["INFY", "TCS", "RELIANCE"])
    warehouse.load(ch_client, sources.get("cm_bhavcopy"), DAY, frame, database)
    lake = Lake(dag_env["lake"])
    lake.write_bronze("cm_bhavcopy", DAY, "cm05JUL2024bhav.csv.zip", b"PK\x05\x06", url="x")
    before = (_lake_files(dag_env["lake"]), _warehouse(ch_client, database), _runs())
    standin.clear_log()

    done = _airflow("dags", "trigger", DAG_ID, "--conf", json.dumps({"trade_date": value}))
    assert done.returncode == 1
    # Airflow's command line prints the traceback; its last exception names the param.
    (message,) = [
        line for line in done.stderr.splitlines() if "ParamValidationError: Invalid input" in line
    ]
    assert message.endswith(f"Invalid input for param trade_date: {value!r} is not a 'date'")

    assert standin.request_log == []
    after = (_lake_files(dag_env["lake"]), _warehouse(ch_client, database), _runs())
    assert after == before
    assert after[1]["cm_bhavcopy"] and len(after[1]["cm_bhavcopy"]) == frame.height

    # The doors behind the form refuse it too, before any query is built.
    with pytest.raises(ValueError, match="trade_date: expected a date like 2024-07-05, found"):
        trade_date_of(value, dt.datetime(2024, 7, 9, 13, tzinfo=dt.UTC))
    with pytest.raises(ValueError, match="trade_date: expected a date like 2024-07-05, found"):
        warehouse.load(ch_client, sources.get("cm_bhavcopy"), value, frame, database)
    assert _warehouse(ch_client, database) == before[1]
    fault(
        f"trade_date {kind} via airflow dags trigger --conf: {value}",
        outcome="trigger refused, no run: " + message.split("ParamValidationError: ")[-1][:90],
    )
