"""A clickhouse-driver client that tags every statement with the Airflow task that sends it."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from clickhouse_driver import Client

from nse_clickhouse_provider.query_ids import make_query_id


def _tagged(name: str) -> Callable[..., Any]:
    """`Client.<name>` with ``query_id``, however passed, defaulting to a task-tagged id."""
    method = getattr(Client, name)
    signature = inspect.signature(method)

    @functools.wraps(method)
    def tagged(self: Client, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        if not bound.arguments.get("query_id"):
            bound.arguments["query_id"] = make_query_id(name)
        return method(*bound.args, **bound.kwargs)

    return tagged


class TaggedClient(Client):
    """A `clickhouse_driver.Client` whose statements all carry a task-tagged query id.

    Each method that sends a statement gives it ``make_query_id(<method name>)`` as its
    ``query_id`` unless the caller passes one, so code that only knows the driver's API still
    leaves dag, task, run and try in ``system.query_log.query_id``. Ids are made per statement,
    when it is sent. Methods built on others (``query_dataframe`` runs ``execute``) tag once.
    """

    @staticmethod
    def new_query_id(purpose: str) -> str:
        """A task-tagged id for a statement sent below the methods tagged here (a caller that
        writes protocol packets itself, e.g. a Native-format insert)."""
        return make_query_id(purpose)

    execute = _tagged("execute")
    execute_iter = _tagged("execute_iter")
    execute_with_progress = _tagged("execute_with_progress")
    query_dataframe = _tagged("query_dataframe")
    insert_dataframe = _tagged("insert_dataframe")
    if hasattr(Client, "query_arrow"):  # clickhouse-driver 0.2.11 and later
        query_arrow = _tagged("query_arrow")
        query_arrow_stream = _tagged("query_arrow_stream")
