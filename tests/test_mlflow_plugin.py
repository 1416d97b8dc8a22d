"""The MLflow listener plugin: runs tracked in a real store, and no harm when MLflow is away."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
from pathlib import Path

import polars as pl
import pytest

from include.nse.dates import IST
from include.nse_standin.generate import generate
from include.nse_standin.option_chain import write_option_chains
from tests.conftest import new_database, parse_dag, stand_in_env
from tests.helpers import free_port, state, task_instances, task_result

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

DAYS = (dt.date(2024, 7, 4), dt.date(2024, 7, 5))
DAG_ID = "nse_fo_bhavcopy"
TASKS = ("fetch_fo_bhavcopy", "parse_fo_bhavcopy", "validate_fo_bhavcopy", "load_fo_bhavcopy")
CHAIN_DAG_ID = "nse_option_chain"
#: 10:15 in Mumbai on a trading day, a little after the stand-in's snapshot.
CHAIN_RUN_AT = dt.datetime(2024, 7, 5, 4, 45, tzinfo=dt.UTC)
CHAIN_CONF = {
    "underlyings": ["NIFTY", "RELIANCE", "TCS"],
    "batch_size": 2,
    "chart_underlyings": ["NIFTY", "TCS"],
}
PNG = b"\x89PNG\r\n\x1a\n"


def _fo_run(dag, day: dt.date):
    started = time.monotonic()
    run = dag.test(logical_date=dt.datetime.combine(day, dt.time(13, 30), dt.UTC))
    assert state(run) == "success"
    return run, time.monotonic() - started


def _finished_runs(client, dag_id: str, count: int, timeout: float = 120) -> list:
    """The DAG's MLflow runs once `count` have finished: the listener's child records them in
    the background."""
    deadline = time.monotonic() + timeout
    while True:
        experiment = client.get_experiment_by_name(dag_id)
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        if sum(r.info.status == "FINISHED" for r in runs) >= count:
            return runs
        assert time.monotonic() < deadline, [r.info.status for r in runs]
        time.sleep(0.5)


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, airflow_db, clickhouse_server):
    """Two F&O runs and one option chain cycle under `dag.test()`, tracked in a SQLite store
    (artifacts under the module's folder), each DAG run's MLflow run finished."""
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("tracked")
    nse_root = root / "nse"
    generate(DAYS[0], DAYS[-1], nse_root, symbols=200, datasets=["fo_bhavcopy"])
    write_option_chains(
        nse_root, CHAIN_CONF["underlyings"], dt.datetime(2024, 7, 5, 10, 14, 58, tzinfo=IST)
    )
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with (
        pytest.MonkeyPatch.context() as patch,
        new_database(clickhouse_server) as database,
        stand_in_env(nse_root, root / "lake", clickhouse_server, database, patch) as env,
    ):
        patch.chdir(root)
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        # The store's schema made before the runs, so their recording children do not race
        # to create it.
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments()
        fo = parse_dag(DAG_ID)
        fo_runs = [_fo_run(fo, day)[0] for day in DAYS]
        chain = parse_dag(CHAIN_DAG_ID)
        chain_run = chain.test(logical_date=CHAIN_RUN_AT, run_conf=CHAIN_CONF)
        assert state(chain_run) == "success"
        yield {
            **env,
            "uri": uri,
            "client": client,
            "fo_runs": fo_runs,
            "chain_run": chain_run,
            "mlflow_fo": _finished_runs(client, DAG_ID, len(DAYS)),
            "mlflow_chain": _finished_runs(client, CHAIN_DAG_ID, 1),
        }


def _download(client, run_id: str, path: str, into: Path) -> bytes:
    return Path(client.download_artifacts(run_id, path, str(into))).read_bytes()


def test_one_run_per_dag_run_with_task_metrics(tracked):
    """Each DAG run leaves one finished MLflow run, found by its tags, with every task's results."""
    import airflow

    runs, lake = tracked["mlflow_fo"], tracked["lake"]
    assert sorted(r.data.tags["airflow.run_id"] for r in runs) == sorted(
        r.run_id for r in tracked["fo_runs"]
    )
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


def test_every_validation_is_attached_as_it_was_kept(tracked, tmp_path):
    """Each validate task's validation JSON (every one its result lists) is an artifact of the
    DAG run's MLflow run, byte for byte as the lake keeps it: GX's result with a summary."""
    client = tracked["client"]
    dag_runs = [(DAG_ID, r.run_id) for r in tracked["fo_runs"]]
    dag_runs.append((CHAIN_DAG_ID, tracked["chain_run"].run_id))
    tracked_runs = {
        r.data.tags["airflow.run_id"]: r.info.run_id
        for r in [*tracked["mlflow_fo"], *tracked["mlflow_chain"]]
    }
    checked = 0
    for dag_id, run_id in dag_runs:
        mlflow_run = tracked_runs[run_id]
        validators = {ti.task_id for ti in task_instances(dag_id, run_id)}
        for task_id in sorted(t for t in validators if t.startswith("validate_")):
            kept = [Path(p) for p in task_result(dag_id, run_id, task_id)["artifacts"]]
            assert kept, (dag_id, task_id)
            listed = client.list_artifacts(mlflow_run, task_id)
            assert sorted(a.path for a in listed) == sorted(f"{task_id}/{p.name}" for p in kept)
            for path in kept:
                raw = _download(client, mlflow_run, f"{task_id}/{path.name}", tmp_path)
                assert raw == path.read_bytes()
                assert "great_expectations" in json.loads(raw)
                checked += 1
    assert checked == len(dag_runs)


def test_every_chart_drawn_is_attached(tracked, tmp_path):
    """The option chain run's MLflow run holds exactly the PNGs its charts task drew."""
    client = tracked["client"]
    run_id = tracked["chain_run"].run_id
    (mlflow_run,) = [r.info.run_id for r in tracked["mlflow_chain"]]
    drawn = [Path(p) for p in task_result(CHAIN_DAG_ID, run_id, "charts_option_chain")["artifacts"]]
    assert sorted(p.parent.name for p in drawn) == ["underlying=NIFTY", "underlying=TCS"]
    listed = client.list_artifacts(mlflow_run, "charts_option_chain")
    assert sorted(a.path for a in listed) == sorted(f"charts_option_chain/{p.name}" for p in drawn)
    for path in drawn:
        raw = _download(client, mlflow_run, f"charts_option_chain/{path.name}", tmp_path)
        assert raw.startswith(PNG) and raw == path.read_bytes()


def test_mapped_instances_of_a_real_cycle_are_recorded_one_by_one(tracked):
    """Each mapped parse of the option chain cycle has metrics of its own; together they are
    the rows the cycle loaded."""
    (run,) = tracked["mlflow_chain"]
    metrics = run.data.metrics
    parsed = [metrics[f"parse_option_chain/{i}.rows"] for i in (0, 1)]
    assert "parse_option_chain/2.rows" not in metrics
    assert sum(parsed) == metrics["load_option_chain.rows"] > 0
    assert run.data.tags["fetch_option_chain/1.state"] == "success"


def test_mapped_tasks_are_recorded_one_by_one(tracked):
    """Each mapped task instance gets metrics of its own, under a name MLflow accepts."""
    import nse_mlflow

    names = [nse_mlflow.task_name("fetch", i) for i in (0, 1)] + [nse_mlflow.task_name("load", -1)]
    tasks = [
        {"name": name, "state": "success", "metrics": {"rows": float(n)}, "artifacts": []}
        for n, name in enumerate(names)
    ]
    facts = {"dag_id": "mapped", "run_id": "r1", "start_time": 0, "end_time": 1000}
    facts |= {"params": {}, "tags": {}, "tasks": tasks}
    nse_mlflow.record(tracked["client"], facts, "FINISHED")
    (run,) = _finished_runs(tracked["client"], "mapped", 1)
    assert run.data.metrics["fetch/0.rows"] == 0
    assert run.data.metrics["fetch/1.rows"] == 1
    assert run.data.metrics["load.rows"] == 2
    assert run.data.tags["fetch/1.state"] == "success"


def test_switched_off_then_unreachable_costs_no_time(tracked, monkeypatch, capfd):
    """Switched off nothing is tracked; with the server down the DAG succeeds as fast, and the
    recording child says why it recorded nothing."""
    import nse_mlflow

    dag = parse_dag(DAG_ID)
    monkeypatch.setenv("NSE_MLFLOW_ENABLED", "false")
    off_run, off = _fo_run(dag, DAYS[0])

    monkeypatch.delenv("NSE_MLFLOW_ENABLED")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    _, down = _fo_run(dag, DAYS[0])
    assert down < off * 1.5 + 5, (off, down)
    deadline, err = time.monotonic() + 60, ""
    while "is not reachable" not in err and time.monotonic() < deadline:
        time.sleep(0.5)
        err += capfd.readouterr().err
    assert "is not reachable" in err
    # A child started despite the switch has had the whole second run to record the first.
    assert nse_mlflow.find_run(tracked["client"], DAG_ID, off_run.run_id) is None


def test_hanging_server_is_given_up_within_the_budget(monkeypatch, capsys):
    """A server that accepts but never answers holds the recording child for its budget only."""
    import io

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
