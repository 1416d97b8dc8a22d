"""The MLflow listener plugin: runs tracked in a real store, and no harm when MLflow is away."""

from __future__ import annotations

import datetime as dt
import socket
import time

import polars as pl
import pytest
import test_dag_cm_bhavcopy as cm_dag

from include.nse_standin.generate import generate
from tests.conftest import parse_dag

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

dag_env = cm_dag.dag_env
DAYS = (dt.date(2024, 7, 4), dt.date(2024, 7, 5))
DAG_ID = "nse_fo_bhavcopy"
TASKS = ("fetch_fo_bhavcopy", "parse_fo_bhavcopy", "validate_fo_bhavcopy", "load_fo_bhavcopy")


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(DAYS[0], DAYS[-1], root, symbols=200, datasets=["fo_bhavcopy"])
    return root


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_fo_bhavcopy")


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    """A SQLite tracking store; artifacts land under the test's own directory."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _run(dag, day: dt.date):
    started = time.monotonic()
    run = dag.test(logical_date=dt.datetime.combine(day, dt.time(13, 30), dt.UTC))
    assert str(getattr(run.state, "value", run.state)) == "success"
    return run, time.monotonic() - started


def _finished_runs(client, count: int, timeout: float = 240) -> list:
    """The experiment's runs once `count` have finished: the listener records them in the
    background (the first use of a fresh SQLite store also migrates its schema)."""
    deadline = time.monotonic() + timeout
    while True:
        experiment = client.get_experiment_by_name(DAG_ID)
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if sum(r.info.status == "FINISHED" for r in runs) >= count:
            return runs
        assert time.monotonic() < deadline, [r.info.status for r in runs]
        time.sleep(1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_one_run_per_dag_run_with_task_metrics(dag, dag_env, store, tmp_path):
    """Each DAG run leaves one finished MLflow run, found by its tags, with every task's results."""
    import airflow
    from mlflow import MlflowClient

    dag_runs = [_run(dag, day)[0] for day in DAYS]
    client = MlflowClient(tracking_uri=store)
    runs = _finished_runs(client, len(DAYS))
    assert sorted(r.data.tags["airflow.run_id"] for r in runs) == sorted(r.run_id for r in dag_runs)
    lake = dag_env["lake"]
    for run in runs:
        day = dt.date.fromisoformat(run.data.tags["airflow.logical_date"][:10])
        assert run.info.status == "FINISHED"
        assert run.data.tags["airflow.dag_id"] == DAG_ID
        assert run.data.tags["airflow.version"] == airflow.__version__
        assert run.data.params == {"trade_date": "None"}
        metrics = run.data.metrics
        for task_id in TASKS:
            assert metrics[f"{task_id}.duration_s"] > 0
            assert metrics[f"{task_id}.failed"] == 0
            assert run.data.tags[f"{task_id}.state"] == "success"
        silver = pl.read_parquet(lake / f"silver/fo_bhavcopy/trade_date={day}/part-0.parquet")
        assert metrics["parse_fo_bhavcopy.rows"] == silver.height
        assert metrics["load_fo_bhavcopy.rows"] == silver.height
        bronze = next((lake / f"bronze/fo_bhavcopy/trade_date={day}").glob("*.zip"))
        assert metrics["fetch_fo_bhavcopy.bytes"] == bronze.stat().st_size
        assert metrics["validate_fo_bhavcopy.pass_rate"] == 1.0
        assert metrics["dag_run.duration_s"] > 0
        artifacts = client.list_artifacts(run.info.run_id, "validate_fo_bhavcopy")
        assert [a.path for a in artifacts] == ["validate_fo_bhavcopy/validation.json"]


def test_mapped_tasks_are_recorded_one_by_one(store):
    """Each mapped task instance gets metrics of its own, under a name MLflow accepts."""
    import nse_mlflow
    from mlflow import MlflowClient

    names = [nse_mlflow.task_name("fetch", i) for i in (0, 1)] + [nse_mlflow.task_name("load", -1)]
    tasks = [
        {"name": name, "state": "success", "metrics": {"rows": float(n)}, "artifacts": []}
        for n, name in enumerate(names)
    ]
    facts = {"dag_id": DAG_ID, "run_id": "r1", "start_time": 0, "end_time": 1000}
    facts |= {"params": {}, "tags": {}, "tasks": tasks}
    client = MlflowClient(tracking_uri=store)
    nse_mlflow.record(client, facts, "FINISHED")
    (run,) = _finished_runs(client, 1)
    assert run.data.metrics["fetch/0.rows"] == 0
    assert run.data.metrics["fetch/1.rows"] == 1
    assert run.data.metrics["load.rows"] == 2
    assert run.data.tags["fetch/1.state"] == "success"


def test_switched_off_then_unreachable_costs_no_time(dag, dag_env, store, monkeypatch, capfd):
    """Switched off nothing is tracked; with the server down the DAG succeeds as fast, and the
    recording child says why it recorded nothing."""
    from mlflow import MlflowClient

    monkeypatch.setenv("NSE_MLFLOW_ENABLED", "false")
    _, off = _run(dag, DAYS[0])
    time.sleep(2)  # a child started despite the switch would have created the experiment
    assert MlflowClient(tracking_uri=store).get_experiment_by_name(DAG_ID) is None

    monkeypatch.delenv("NSE_MLFLOW_ENABLED")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    _, down = _run(dag, DAYS[0])
    assert down < off * 1.5 + 5, (off, down)
    deadline, err = time.monotonic() + 60, ""
    while "is not reachable" not in err and time.monotonic() < deadline:
        time.sleep(0.5)
        err += capfd.readouterr().err
    assert "is not reachable" in err


def test_hanging_server_is_given_up_within_the_budget(monkeypatch, capsys):
    """A server that accepts but never answers holds the recording child for its budget only."""
    import io
    import json

    import mlflow  # noqa: F401  (imported up front: the budget should go to the server alone)
    import nse_mlflow

    facts = {"dag_id": "d", "run_id": "r", "start_time": 0, "end_time": 0, "params": {}}
    facts |= {"tags": {}, "tasks": []}
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("NSE_MLFLOW_TIMEOUT", "1.5")
        monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"facts": facts, "status": "X"})))
        started = time.monotonic()
        try:
            nse_mlflow.child()
        finally:  # the child's own logging set-up, undone for the tests that follow
            nse_mlflow.log.handlers.clear()
            nse_mlflow.log.propagate = True
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 4, elapsed
    assert "could not record run r of d: not done within 1.5 s" in capsys.readouterr().err
