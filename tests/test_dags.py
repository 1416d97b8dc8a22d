"""Every DAG imports cleanly and follows the project's conventions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_no_import_errors(dagbag):
    """The DagBag loads every file without an import error."""
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) >= len(DAG_FILES)


def test_every_dag_follows_conventions(dagbag):
    """Tags, a real owner, retries with backoff, docs, and an IST schedule on every scheduled
    DAG (one triggered by hand or by assets has no clock to be in a zone)."""
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "nse" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        assert not dag.catchup, dag_id
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), (dag_id, task.task_id)
            assert task.retries >= 2, (dag_id, task.task_id)
            assert task.retry_exponential_backoff, (dag_id, task.task_id)
        if hasattr(dag.timetable, "timezone"):
            timezone = dag.timetable.timezone
            assert str(getattr(timezone, "name", timezone)) == "Asia/Kolkata", dag_id


def test_cm_bhavcopy_shape(dagbag):
    """fetch -> parse -> validate -> load for both equity datasets, loads publishing assets."""
    dag = dagbag.dags["nse_cm_bhavcopy"]
    for name in ("cm_bhavcopy", "cm_delivery"):
        assert dag.get_task(f"fetch_{name}").downstream_task_ids == {f"parse_{name}"}
        assert dag.get_task(f"parse_{name}").downstream_task_ids == {f"validate_{name}"}
        assert dag.get_task(f"validate_{name}").downstream_task_ids == {f"load_{name}"}
        assert [o.name for o in dag.get_task(f"load_{name}").outlets] == [f"nse_{name}"]
    assert "trade_date" in dag.params


def test_every_request_to_nse_runs_in_a_deployed_pool(dagbag):
    """Every task fetching from NSE runs in one of the pools airflow_settings.yaml creates (a
    task in a pool that does not exist never starts), and every pool used is one of those."""
    import yaml

    settings = yaml.safe_load((PROJECT_ROOT / "airflow_settings.yaml").read_text())
    deployed = {pool["pool_name"] for pool in settings["airflow"]["pools"]}
    fetching = [
        (dag_id, task)
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if task.task_id.startswith("fetch_")
    ]
    assert fetching
    for dag_id, task in fetching:
        assert task.pool in deployed, (dag_id, task.task_id, task.pool)
    used = {task.pool for dag in dagbag.dags.values() for task in dag.tasks}
    assert used - {"default_pool"} <= deployed


def test_every_dag_alerts_on_failure(dagbag):
    """Every task alerts on its final failure, and every DAG on a failed run (Slack)."""

    # By name: Airflow's plugin manager imports `plugins/` modules again, so the class object
    # the DAGs hold need not be the one this test would import.
    def alerts(callbacks) -> bool:
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        return any(type(c).__name__ == "SlackFailureAlert" for c in callbacks)

    for dag_id, dag in dagbag.dags.items():
        assert alerts(dag.on_failure_callback), dag_id
        for task in dag.tasks:
            assert alerts(task.on_failure_callback), (dag_id, task.task_id)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_imports_nothing_heavy(path: Path):
    """A DAG file imports only Airflow at parse time: no data libraries, no network clients."""
    # httpx is not listed: Airflow's task SDK imports it itself.
    heavy = [
        "polars",
        "pyarrow",
        "clickhouse_driver",
        "great_expectations",
        "pyspark",
        "mlflow",
        "include.nse.client",
    ]
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]); "
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": f"{PROJECT_ROOT}:{PROJECT_ROOT / 'plugins'}"}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1:] in ([""], []), f"imported: {done.stdout}"
