"""Every DAG imports cleanly and follows the project's conventions."""

from __future__ import annotations

import datetime as dt
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
    """Tags, a real owner, retries with backoff, a time limit on every task, docs, and an IST
    schedule on every scheduled DAG (one triggered by hand or by assets has no clock to be in a
    zone)."""
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags and "nse" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md) > 100, dag_id
        assert not dag.catchup, dag_id
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), (dag_id, task.task_id)
            assert task.retries >= 2, (dag_id, task.task_id)
            assert task.retry_exponential_backoff, (dag_id, task.task_id)
            # No task may hold a slot (or a pool's) forever: each try is bounded in time.
            timeout = task.execution_timeout
            assert timeout is not None and timeout.total_seconds() > 0, (dag_id, task.task_id)
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


#: DAG id -> (what its deadline counts from, how long after).
DEADLINES = {
    "nse_cm_bhavcopy": ("DagRunLogicalDateDeadline", dt.timedelta(hours=2, minutes=30)),
    "nse_fo_bhavcopy": ("DagRunLogicalDateDeadline", dt.timedelta(hours=2, minutes=30)),
    "nse_bulk_block_deals": ("DagRunLogicalDateDeadline", dt.timedelta(hours=2, minutes=30)),
    "nse_index_constituents": ("DagRunLogicalDateDeadline", dt.timedelta(hours=2, minutes=30)),
    "nse_market_data": ("DagRunQueuedAtDeadline", dt.timedelta(hours=2)),
}


def test_end_of_day_dags_and_gold_alert_slack_when_late(dagbag):
    """Each end-of-day DAG is due 2 h 30 after its scheduled time, the gold DAG 2 h after it is
    queued (it has no schedule of its own), and a missed deadline goes to Slack."""
    for dag_id, (reference, after) in DEADLINES.items():
        (alert,) = dagbag.dags[dag_id].deadline
        assert type(alert.reference).__name__ == reference, dag_id
        assert alert.interval == after, dag_id
        assert alert.callback.path == "include.nse_airflow.deadlines.deadline_missed", dag_id
        assert alert.callback.kwargs == {"slack_conn_id": "slack_alerts"}, dag_id


def test_dag_test_still_cannot_end_a_run_with_a_deadline(airflow_db):
    """The limit `parse_dag` works around, on a run that succeeds by skipping (a holiday, no
    request made): when this fails, Airflow's `dag.test()` handles deadline alerts, and
    `parse_dag` should keep them."""
    from tests.conftest import parse_dag

    dag = parse_dag("nse_cm_bhavcopy", keep_deadline=True)
    muharram = dt.datetime(2024, 7, 17, 13, 0, tzinfo=dt.UTC)
    with pytest.raises(Exception, match="has no attribute 'hex'"):
        dag.test(logical_date=muharram)


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
