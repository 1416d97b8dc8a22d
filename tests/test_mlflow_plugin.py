"""The MLflow listener plugin: runs tracked in a real store, and no harm when MLflow is away."""

from __future__ import annotations

import datetime as dt
import logging
import socket
import time

import polars as pl
import pytest
import test_dag_cm_bhavcopy as cm_dag

from include.nse.generate import generate

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
    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import PROJECT_ROOT

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags" / "nse_fo_bhavcopy.py"))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


@pytest.fixture()
def store(tmp_path, monkeypatch) -> str:
    """A SQLite tracking store; artifacts land under the test's own directory."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # The first use of a fresh SQLite store migrates its schema: give it time on a busy machine.
    monkeypatch.setenv("NSE_MLFLOW_TIMEOUT", "180")
    return uri


def _run(dag, day: dt.date):
    started = time.monotonic()
    run = dag.test(logical_date=dt.datetime.combine(day, dt.time(13, 30), dt.UTC))
    assert str(getattr(run.state, "value", run.state)) == "success"
    return run, time.monotonic() - started


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
    experiment = client.get_experiment_by_name(DAG_ID)
    runs = client.search_runs([experiment.experiment_id])
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
        silver = pl.read_parquet(lake / f"silver/fo_bhavcopy/trade_date={day}/part-0.parquet")
        assert metrics["parse_fo_bhavcopy.rows"] == silver.height
        assert metrics["load_fo_bhavcopy.rows"] == silver.height
        bronze = next((lake / f"bronze/fo_bhavcopy/trade_date={day}").glob("*.zip"))
        assert metrics["fetch_fo_bhavcopy.bytes"] == bronze.stat().st_size
        assert metrics["validate_fo_bhavcopy.pass_rate"] == 1.0
        assert metrics["dag_run.duration_s"] > 0
        artifacts = client.list_artifacts(run.info.run_id, "validate_fo_bhavcopy")
        assert [a.path for a in artifacts] == ["validate_fo_bhavcopy/validation.json"]


def test_switched_off_then_unreachable_costs_no_time(dag, dag_env, store, monkeypatch, caplog):
    """Switched off nothing is tracked; with the server down the DAG succeeds as fast."""
    from mlflow import MlflowClient

    monkeypatch.setenv("NSE_MLFLOW_ENABLED", "false")
    _, off = _run(dag, DAYS[0])
    assert MlflowClient(tracking_uri=store).get_experiment_by_name(DAG_ID) is None

    monkeypatch.delenv("NSE_MLFLOW_ENABLED")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    with caplog.at_level(logging.WARNING):
        _, down = _run(dag, DAYS[0])
    assert down < off * 1.5 + 5, (off, down)
    assert any("is not reachable" in r.getMessage() for r in caplog.records)


def test_hanging_server_is_left_behind_within_the_budget(monkeypatch, caplog):
    """A server that accepts but never answers holds a listener for the budget, not longer."""
    import mlflow  # noqa: F401  (imported up front: the budget should go to the server alone)
    import nse_mlflow

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("NSE_MLFLOW_TIMEOUT", "1.5")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            nse_mlflow.track(
                "run r",
                lambda: {"dag_id": "d", "run_id": "r"},
                lambda client, facts: nse_mlflow.find_run(client, facts["dag_id"], facts["run_id"]),
            )
        elapsed = time.monotonic() - started
    assert 1.4 < elapsed < 4, elapsed
    assert any("did not finish run r within 1.5 s" in r.getMessage() for r in caplog.records)
