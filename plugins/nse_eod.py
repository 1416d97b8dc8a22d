"""Building blocks of the end-of-day DAGs: one fetch -> parse -> validate -> load chain per dataset.

A DAG file picks its datasets and schedule and calls `dataset_chain` for each; the tasks here
are a few lines that hand the run's trade date to `nse_tasks`, which calls the library. Failure
alerts go to Slack (`nse_alerts`): tasks get them from `DEFAULT_ARGS`, and each DAG passes
`on_failure_callback=SlackFailureAlert()` for a run failing for another reason.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, task
from nse_alerts import SlackFailureAlert

#: Shared by every NSE DAG: retried with backoff, owned by the data team.
DEFAULT_ARGS = {
    "owner": "nse-data",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
    # Called on a task's final failure only, not on each retry.
    "on_failure_callback": SlackFailureAlert(),
}

#: NSE's archive host is shared by every DAG; the pool bounds concurrent downloads.
ARCHIVE_POOL = "nse_archives"
#: NSE's API host throttles harder; its pool bounds concurrent API calls across DAGs.
API_POOL = "nse_api"


def trade_date_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        description="Trade date to load (YYYY-MM-DD); empty means the run's own date.",
    )


def history_from_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        description=(
            "Backfill: also load every weekday from this date (YYYY-MM-DD) to the day before the "
            "trade date through NSE's historical API, one date at a time. Empty: no backfill."
        ),
    )


def dataset_asset(name: str) -> Asset:
    """Published when a date's rows of `name` are in ClickHouse, for downstream DAGs."""
    return Asset(name=f"nse_{name}", uri=f"clickhouse://nse/{name}")


@task(pool=ARCHIVE_POOL)
def fetch(dataset: str, **context) -> dict:
    """Fetch the day's file into bronze; skipped when NSE has not published it."""
    import nse_tasks

    return nse_tasks.fetch(dataset, nse_tasks.trade_date(context))


@task(pool=API_POOL)
def fetch_history(dataset: str, fetched: dict, **context) -> dict:
    """Fetch a past date from NSE's API when the archive's file of the latest day has moved past
    it; otherwise pass the archive's fetch on."""
    import nse_tasks

    return nse_tasks.fetch_history(dataset, nse_tasks.trade_date(context), fetched)


@task(pool=API_POOL)
def load_history(dataset: str, **context) -> dict:
    """Backfill from the `history_from` param through NSE's API; skipped when it is empty."""
    import nse_tasks

    return nse_tasks.load_history(
        dataset,
        nse_tasks.history_from(context),
        nse_tasks.trade_date(context),
        context["run_id"],
    )


@task
def parse(dataset: str, fetched: dict, **context) -> dict:
    """Parse the bronze file into a silver partition."""
    import nse_tasks

    return nse_tasks.parse(dataset, nse_tasks.trade_date(context))


@task
def validate(dataset: str, parsed: dict, **context) -> dict:
    """Check the silver partition against the dataset's expectations; a critical miss fails."""
    import nse_tasks

    return nse_tasks.validate(dataset, nse_tasks.trade_date(context), context["run_id"])


@task
def load(dataset: str, validated: dict, **context) -> dict:
    """Replace the date's rows in ClickHouse with the silver partition."""
    import nse_tasks

    return nse_tasks.load(dataset, nse_tasks.trade_date(context))


def dataset_chain(name: str, *, history: bool = False):
    """fetch_<name> >> parse_<name> >> validate_<name> >> load_<name>, the load publishing the
    dataset's asset.

    `history` is for datasets whose archive file holds only the latest day (bulk and block
    deals): fetch_history_<name>, in the API's pool, follows the fetch and calls NSE's API for a
    date that file has moved past; load_history_<name> backfills from the `history_from` param
    (see `history_from_param`), which the DAG must declare.
    """
    fetched = fetch.override(task_id=f"fetch_{name}")(dataset=name)
    if history:
        fetched = fetch_history.override(task_id=f"fetch_history_{name}")(
            dataset=name, fetched=fetched
        )
        load_history.override(task_id=f"load_history_{name}", outlets=[dataset_asset(name)])(
            dataset=name
        )
    parsed = parse.override(task_id=f"parse_{name}")(dataset=name, fetched=fetched)
    validated = validate.override(task_id=f"validate_{name}")(dataset=name, parsed=parsed)
    return load.override(task_id=f"load_{name}", outlets=[dataset_asset(name)])(
        dataset=name, validated=validated
    )
