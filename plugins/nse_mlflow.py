"""MLflow tracking of every DAG run: an Airflow plugin whose listeners log runs, tasks and results.

One MLflow experiment per DAG (named after it) and one MLflow run per DAG run, found again by its
tags (`airflow.dag_id`, `airflow.run_id`) rather than held in memory, and created when missing
(two processes racing to create it both keep the one with the smallest id).

When a DAG run ends, its listener (in the scheduler, or in the process running `dag.test()`)
reads what to record from the metadata database: the run's params and tags (Airflow version,
bundle name and version, run type, logical date), and per task instance its duration, try
number, state and every number in the small stats dict it returned (rows, bytes, seconds, the
quality pass rate...), logged as `<task_id>.<name>` (`<task_id>/<map index>.<name>` for mapped
tasks), plus the files it lists under `artifacts`: every validation's JSON and the option chain's
charts. A detached child process sends all of it to MLflow:
importing MLflow costs seconds of CPU, and neither a task nor the scheduler waits for it.

Configuration: the tracking URI is `MLFLOW_TRACKING_URI`, else the Airflow variable
`mlflow_tracking_uri`; with neither, or `NSE_MLFLOW_ENABLED=false`, the plugin does nothing.
MLflow being down, slow or misconfigured never fails nor holds anything: the child probes an
HTTP server first (one connect, 1 s), bounds MLflow's own HTTP timeout and retries unless set
(`MLFLOW_HTTP_REQUEST_TIMEOUT=3`, `MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`), gives up after
`NSE_MLFLOW_TIMEOUT` seconds (default 120) in all, and any failure is one warning on its stderr
(the scheduler's log).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import sys
import time
from urllib.parse import urlsplit

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

VARIABLE = "mlflow_tracking_uri"
DAG_ID_TAG, RUN_ID_TAG = "airflow.dag_id", "airflow.run_id"
#: Bounds on MLflow's HTTP client, applied unless the environment sets them.
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "3", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
PROBE_SECONDS = 1.0


def enabled() -> bool:
    return os.environ.get("NSE_MLFLOW_ENABLED", "true").strip().lower() not in ("0", "false", "no")


def budget_seconds() -> float:
    return float(os.environ.get("NSE_MLFLOW_TIMEOUT", "120"))


def tracking_uri() -> str | None:
    """`MLFLOW_TRACKING_URI`, else the Airflow variable; None when neither is set."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    try:
        from airflow.sdk import Variable

        return Variable.get(VARIABLE, default=None) or None
    except Exception:  # no variable backend reachable from this process
        log.debug("could not read the %s variable", VARIABLE, exc_info=True)
        return None


def reachable(uri: str) -> bool:
    """False when an HTTP tracking server does not accept a connection; True for local stores."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=PROBE_SECONDS).close()
    except OSError as e:
        log.warning("MLflow at %s is not reachable (%s); this run is not tracked there", uri, e)
        return False
    return True


# ---- the MLflow run of a DAG run ---------------------------------------------------------------
def _millis(moment: dt.datetime | None) -> int:
    return int((moment.timestamp() if moment else time.time()) * 1000)


def find_run(client, dag_id: str, run_id: str) -> str | None:
    """The MLflow run id of an Airflow DAG run, by its tags; None when it has none yet."""
    experiment = client.get_experiment_by_name(dag_id)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{DAG_ID_TAG}` = '{dag_id}' and tags.`{RUN_ID_TAG}` = '{run_id}'",
    )
    return min(r.info.run_id for r in runs) if runs else None


def find_or_create_run(client, dag_run: dict) -> str:
    """The MLflow run of `dag_run` (see `_dag_run_facts`), created with its tags and params."""
    dag_id, run_id = dag_run["dag_id"], dag_run["run_id"]
    if found := find_run(client, dag_id, run_id):
        return found
    experiment = client.get_experiment_by_name(dag_id)
    if experiment is None:
        try:
            experiment_id = client.create_experiment(dag_id, tags={"airflow.dag_id": dag_id})
        except Exception:  # created meanwhile by another task
            experiment_id = client.get_experiment_by_name(dag_id).experiment_id
    else:
        experiment_id = experiment.experiment_id
    tags = {DAG_ID_TAG: dag_id, RUN_ID_TAG: run_id, **dag_run["tags"]}
    created = client.create_run(
        experiment_id, start_time=dag_run["start_time"], tags=tags, run_name=run_id
    )
    mine = created.info.run_id
    winner = find_run(client, dag_id, run_id) or mine
    if winner != mine:  # another process created one at the same time: keep one
        client.delete_run(mine)
        return winner
    for name, value in dag_run["params"].items():
        client.log_param(mine, name, str(value)[:500])
    return mine


def _params(dag_run) -> dict:
    """The run's params: the DAG's defaults overlaid with the run's conf."""
    values = {}
    dag = getattr(dag_run, "dag", None)
    if dag is not None:
        try:
            values = dict(dag.params.dump())
        except Exception:  # a DAG object without resolvable params: the conf alone
            log.debug("could not read the params of %s", dag_run.dag_id, exc_info=True)
    return values | dict(getattr(dag_run, "conf", None) or {})


def _dag_run_facts(dag_run, params: dict | None = None) -> dict:
    """What the MLflow run needs of a DAG run, read in the caller's thread (ORM or SDK object)."""
    import airflow

    logical_date = getattr(dag_run, "logical_date", None)
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "start_time": _millis(getattr(dag_run, "start_date", None)),
        "end_time": _millis(getattr(dag_run, "end_date", None)),
        "params": params if params is not None else _params(dag_run),
        "tags": {
            "airflow.version": airflow.__version__,
            "airflow.bundle_name": str(getattr(dag_run, "bundle_name", None) or ""),
            "airflow.bundle_version": str(getattr(dag_run, "bundle_version", None) or "none"),
            "airflow.run_type": str(getattr(dag_run, "run_type", "")),
            "airflow.logical_date": logical_date.isoformat() if logical_date else "",
        },
    }


# ---- tasks -------------------------------------------------------------------------------------
def _numbers(result) -> dict[str, float]:
    if not isinstance(result, dict):
        return {}
    return {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def _artifacts(result) -> list[str]:
    """The files a task's result lists under `artifacts` (validation JSON, charts) that exist."""
    if not isinstance(result, dict):
        return []
    return [p for p in result.get("artifacts") or [] if p and os.path.isfile(p)]


def task_name(task_id: str, map_index: int) -> str:
    """A task instance's prefix in metric names; MLflow allows `/` but not brackets."""
    return task_id if map_index < 0 else f"{task_id}/{map_index}"


def _tasks_facts(dag_id: str, run_id: str) -> list[dict]:
    """Per task instance of the run: its name, metrics and artifacts, from the metadata DB."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from sqlalchemy.orm import Session

    # A session of its own, read and closed without a commit: the listener runs inside the
    # scheduler's transaction, whose thread-local session must not be committed from here.
    with Session(bind=settings.engine) as session:
        tis = DagRun.fetch_task_instances(dag_id=dag_id, run_id=run_id, session=session)
        results = {
            (x.task_id, x.map_index): XComModel.deserialize_value(x)
            for x in session.scalars(
                XComModel.get_many(run_id=run_id, dag_ids=dag_id, key="return_value")
            )
        }
        tasks = []
        for ti in tis:
            state = str(getattr(ti.state, "value", ti.state))
            result = results.get((ti.task_id, ti.map_index))
            name = task_name(ti.task_id, ti.map_index)
            metrics = {"try_number": ti.try_number, "failed": float(state == "failed")}
            if ti.duration is not None:
                metrics["duration_s"] = ti.duration
            tasks.append(
                {
                    "name": name,
                    "state": state,
                    "metrics": metrics | _numbers(result),
                    "artifacts": _artifacts(result),
                }
            )
    return tasks


def record(client, facts: dict, status: str) -> None:
    """Log a finished DAG run (see `_dag_run_event`) into its MLflow run and close it."""
    from mlflow.entities import Metric, RunTag

    run = find_or_create_run(client, facts)
    now = _millis(None)
    metrics = [
        Metric(f"{task['name']}.{k}", v, now, 0)
        for task in facts["tasks"]
        for k, v in task["metrics"].items()
    ]
    metrics.append(
        Metric("dag_run.duration_s", (facts["end_time"] - facts["start_time"]) / 1000, now, 0)
    )
    tags = [RunTag(f"{task['name']}.state", task["state"]) for task in facts["tasks"]]
    # MLflow takes at most 1000 metrics a batch.
    for start in range(0, len(metrics), 1000):
        client.log_batch(run, metrics=metrics[start : start + 1000], tags=tags if not start else [])
    for task in facts["tasks"]:
        for path in task["artifacts"]:
            client.log_artifact(run, path, artifact_path=task["name"])
    client.set_terminated(run, status, end_time=facts["end_time"])


# ---- shipping: a detached child does the MLflow work -------------------------------------------
def _ship(facts: dict, status: str, uri: str) -> None:
    """Start a child that records `facts` in MLflow; return at once."""
    import json
    import subprocess

    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    child = subprocess.Popen(
        [sys.executable, "-c", "import nse_mlflow; nse_mlflow.child()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    child.stdin.write(json.dumps({"facts": facts, "status": status}, default=str).encode())
    child.stdin.close()


class Overrun(BaseException):
    """The child's time is up. Not an `OSError` (nor an `Exception`), which HTTP clients catch
    and retry when it interrupts a socket read."""


def child() -> None:
    """The child's side of `_ship`: read the facts on stdin and record them, within the budget."""
    import json
    import signal

    # Airflow's logging setup may send records elsewhere: this child speaks on its stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("nse_mlflow: %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    payload = json.load(sys.stdin)
    facts, status = payload["facts"], payload["status"]
    uri = os.environ["MLFLOW_TRACKING_URI"]
    what = f"run {facts['run_id']} of {facts['dag_id']}"
    if not reachable(uri):
        return
    for name, value in HTTP_BOUNDS.items():
        os.environ.setdefault(name, value)
    # No telemetry: it calls out to the internet, and its session bookkeeping failed here.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    def overrun(*_):
        raise Overrun(f"not done within {budget_seconds()} s")

    signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, budget_seconds())
    try:
        from mlflow import MlflowClient

        record(MlflowClient(tracking_uri=uri), facts, status)
    except BaseException as e:  # one warning, whatever went wrong
        log.warning("MLflow (%s) could not record %s: %s", uri, what, e)


# ---- listeners ---------------------------------------------------------------------------------
def _dag_run_event(dag_run, status: str) -> None:
    uri = tracking_uri() if enabled() else None
    if not uri:
        return
    try:
        facts = _dag_run_facts(dag_run)
        facts["tasks"] = _tasks_facts(dag_run.dag_id, dag_run.run_id)
        _ship(facts, status, uri)
    except Exception as e:
        log.warning("MLflow: could not record run %s: %s", dag_run.run_id, e)


@hookimpl
def on_dag_run_success(dag_run, msg):
    _dag_run_event(dag_run, "FINISHED")


@hookimpl
def on_dag_run_failed(dag_run, msg):
    _dag_run_event(dag_run, "FAILED")


class NseMlflowPlugin(AirflowPlugin):
    name = "nse_mlflow"
    listeners = [sys.modules[__name__]]
