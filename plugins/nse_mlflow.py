"""MLflow tracking of every DAG run: an Airflow plugin whose listeners log runs, tasks and results.

One MLflow experiment per DAG (named after it) and one MLflow run per DAG run. Task events fire in
the process running the task and DAG-run events in the scheduler, so no process holds the MLflow
run: each finds it by its tags (`airflow.dag_id`, `airflow.run_id`) and creates it when missing.
Two tasks racing to create it both keep the one with the smallest id and delete their own.

Logged per task: duration, try number and every number in the small stats dict the task returns
(rows, bytes, seconds, the quality pass rate...), as `<task_id>.<name>`; the files it lists under
`artifacts` (the validation JSON) and the PNG charts of its dataset and date in the gold lake.
Per run: the params, tags (Airflow version, bundle name and version, run type, logical date),
and at the end the run's status and duration.

Configuration: the tracking URI is `MLFLOW_TRACKING_URI`, else the Airflow variable
`mlflow_tracking_uri`; with neither, or `NSE_MLFLOW_ENABLED=false`, the plugin does nothing.
MLflow being down, slow or misconfigured never fails a task nor holds it long: an HTTP server is
probed first (one connect, 1 s), MLflow's own HTTP timeout and retries are bounded unless set
(`MLFLOW_HTTP_REQUEST_TIMEOUT=3`, `MLFLOW_HTTP_REQUEST_MAX_RETRIES=0`), the MLflow calls run in
a thread given `NSE_MLFLOW_TIMEOUT` seconds (default 10) in all, and any failure is one warning.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import sys
import threading
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
    return float(os.environ.get("NSE_MLFLOW_TIMEOUT", "10"))


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


def track(what: str, read, work) -> None:
    """When tracking is on and MLflow answers: `read()` the facts to log here (Airflow objects
    stay in this thread), then `work(client, facts)` in a thread within the time budget. A
    failure or an overrun is one warning."""
    uri = tracking_uri() if enabled() else None
    if not uri or not reachable(uri):
        return
    try:
        facts = read()
    except Exception as e:
        log.warning("MLflow: could not read what to record of %s: %s", what, e)
        return
    for name, value in HTTP_BOUNDS.items():
        os.environ.setdefault(name, value)
    failures: list[BaseException] = []

    def target():
        try:
            from mlflow import MlflowClient

            work(MlflowClient(tracking_uri=uri), facts)
        except Exception as e:
            failures.append(e)

    thread = threading.Thread(target=target, name=f"mlflow {what}", daemon=True)
    thread.start()
    thread.join(budget_seconds())
    if thread.is_alive():
        log.warning(
            "MLflow (%s) did not finish %s within %s s; left behind", uri, what, budget_seconds()
        )
    elif failures:
        log.warning("MLflow (%s) could not record %s: %s", uri, what, failures[0])


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


def _dag_run_facts(dag_run, params: dict | None = None) -> dict:
    """What the MLflow run needs of a DAG run, read in the caller's thread (ORM or SDK object)."""
    import airflow

    logical_date = getattr(dag_run, "logical_date", None)
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "start_time": _millis(getattr(dag_run, "start_date", None)),
        "end_time": _millis(getattr(dag_run, "end_date", None)),
        "params": {k: v for k, v in (params or getattr(dag_run, "conf", None) or {}).items()},
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
    """Files a task's result lists, and the charts of its dataset and date in the gold lake."""
    if not isinstance(result, dict):
        return []
    paths = [p for p in result.get("artifacts") or [] if p and os.path.isfile(p)]
    if result.get("dataset") and result.get("trade_date"):
        from include.nse.config import Settings

        gold = Settings.from_env().lake_root / "gold" / str(result["dataset"])
        paths += sorted(str(p) for p in gold.glob(f"trade_date={result['trade_date']}/*.png"))
    return paths


def _task_facts(task_instance, state: str, error) -> dict:
    context = task_instance.get_template_context()
    result = task_instance.xcom_pull(task_ids=task_instance.task_id) if state == "success" else None
    started = getattr(task_instance, "start_date", None)
    ended = getattr(task_instance, "end_date", None) or dt.datetime.now(dt.UTC)
    metrics = {"duration_s": (ended - started).total_seconds() if started else None}
    metrics |= {"try_number": task_instance.try_number, "failed": float(state != "success")}
    metrics |= _numbers(result)
    return {
        "dag_run": _dag_run_facts(context["dag_run"], dict(context.get("params") or {})),
        "task_id": task_instance.task_id,
        "metrics": {k: v for k, v in metrics.items() if v is not None},
        "artifacts": _artifacts(result),
        "error": (str(error).strip().splitlines() or [""])[0][:500] if error else None,
    }


def log_task(client, facts: dict) -> None:
    from mlflow.entities import Metric, RunTag

    run = find_or_create_run(client, facts["dag_run"])
    task_id, now = facts["task_id"], _millis(None)
    metrics = [Metric(f"{task_id}.{k}", v, now, 0) for k, v in facts["metrics"].items()]
    tags = [RunTag(f"{task_id}.error", facts["error"])] if facts["error"] else []
    client.log_batch(run, metrics=metrics, tags=tags)
    for path in facts["artifacts"]:
        client.log_artifact(run, path, artifact_path=task_id)


def finish_run(client, facts: dict, status: str) -> None:
    run = find_or_create_run(client, facts)
    duration = (facts["end_time"] - facts["start_time"]) / 1000
    client.log_metric(run, "dag_run.duration_s", duration)
    client.set_terminated(run, status, end_time=facts["end_time"])


# ---- listeners ---------------------------------------------------------------------------------
def _warm_up() -> None:
    """Import MLflow while the task runs, so tracking its end costs little."""
    if enabled() and os.environ.get("MLFLOW_TRACKING_URI"):
        threading.Thread(target=lambda: __import__("mlflow"), daemon=True).start()


def _task_event(task_instance, state: str, error=None) -> None:
    track(
        f"task {task_instance.task_id}",
        lambda: _task_facts(task_instance, state, error),
        log_task,
    )


def _dag_run_event(dag_run, status: str) -> None:
    track(
        f"run {dag_run.run_id}",
        lambda: _dag_run_facts(dag_run),
        lambda client, facts: finish_run(client, facts, status),
    )


@hookimpl
def on_task_instance_running(previous_state, task_instance):
    _warm_up()


@hookimpl
def on_task_instance_success(previous_state, task_instance):
    _task_event(task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error):
    _task_event(task_instance, "failed", error)


@hookimpl
def on_dag_run_success(dag_run, msg):
    _dag_run_event(dag_run, "FINISHED")


@hookimpl
def on_dag_run_failed(dag_run, msg):
    _dag_run_event(dag_run, "FAILED")


class NseMlflowPlugin(AirflowPlugin):
    name = "nse_mlflow"
    listeners = [sys.modules[__name__]]
