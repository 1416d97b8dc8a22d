"""Query ids and client names that say which Airflow task try sent a query."""

from __future__ import annotations

import os
import re
import uuid

#: Longest query id we send; ClickHouse keeps it in system.query_log and in every server log line.
MAX_QUERY_ID_LENGTH = 128
_UNSAFE_QUERY_ID_CHARS = re.compile(r"[^A-Za-z0-9_:-]+")


def task_tags() -> dict[str, str] | None:
    """dag_id, task_id, run_id and try_number of the running Airflow task; None outside one."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        tags = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "try_number": ti.try_number,
        }
    except Exception:  # not inside a task: fall back to what the task runner exports
        tags = {
            "dag_id": os.environ.get("AIRFLOW_CTX_DAG_ID"),
            "task_id": os.environ.get("AIRFLOW_CTX_TASK_ID"),
            "run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
            "try_number": os.environ.get("AIRFLOW_CTX_TRY_NUMBER"),
        }
    if not (tags["dag_id"] and tags["task_id"]):
        return None
    return {key: str(value or "") for key, value in tags.items()}


def safe(text: str) -> str:
    """`text` with runs of characters outside `[A-Za-z0-9_:-]` replaced by `_`."""
    return _UNSAFE_QUERY_ID_CHARS.sub("_", text)


def make_query_id(suffix: str = "") -> str:
    """A unique query id that says which task ran the query, to find it in system.query_log.

    Inside a task: `<dag_id>.<task_id>.<run_id>.<try_number>[.<suffix>].<8 hex>`, characters
    outside `[A-Za-z0-9_:-]` replaced by `_` and the task part shortened to keep the id within
    `MAX_QUERY_ID_LENGTH`. Outside a task: `[<suffix>.]<uuid4>`.
    """
    tags = task_tags()
    if tags is None:
        return f"{safe(suffix)}.{uuid.uuid4()}" if suffix else str(uuid.uuid4())
    tail = ".".join(filter(None, [safe(suffix), uuid.uuid4().hex[:8]]))
    head = ".".join(safe(value) for value in tags.values())
    return f"{head[: MAX_QUERY_ID_LENGTH - len(tail) - 1]}.{tail}"


def default_client_name() -> str:
    """`airflow:<dag_id>.<task_id>.<run_id>.<try_number>` inside a task, `airflow` outside."""
    tags = task_tags()
    if tags is None:
        return "airflow"
    return "airflow:" + ".".join(safe(value) for value in tags.values())
