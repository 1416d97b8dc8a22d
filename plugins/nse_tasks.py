"""Glue between Airflow task contexts and the `include.nse` library.

DAG files call these few functions; they resolve the trade date, settings and clients from
Airflow (params, connections, the environment) and hand them to the library, which never
reads Airflow's configuration itself.
"""

from __future__ import annotations

import datetime as dt
import logging
from contextlib import contextmanager
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

IST = ZoneInfo("Asia/Kolkata")

#: Connections that may override where NSE's hosts are (e.g. a stand-in or a proxy).
ARCHIVE_CONN_ID = "nse_archives"
API_CONN_ID = "nse_api"


def trade_date(context) -> dt.date:
    """The trade date a run is for: the `trade_date` param if set, else the run's IST date."""
    value = (context.get("params") or {}).get("trade_date")
    if value:
        return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(IST).date()


def _conn_url(conn_id: str) -> str | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if not conn.host:
        return None
    if "://" in conn.host:
        return conn.host.rstrip("/")
    scheme = conn.schema or "https"
    port = f":{conn.port}" if conn.port else ""
    return f"{scheme}://{conn.host}{port}"


def settings():
    """Library settings from NSE_* variables, with host URLs from connections when defined."""
    from include.nse.config import Settings

    s = Settings.from_env()
    changes = {}
    if url := _conn_url(ARCHIVE_CONN_ID):
        changes["archive_base_url"] = url
    if url := _conn_url(API_CONN_ID):
        changes["api_base_url"] = url
    return s.with_(**changes)


def fetch(dataset_name: str, day: dt.date) -> dict:
    """Fetch to bronze; a file NSE has not published yet skips the task (and what follows)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from include.nse import sources
    from include.nse.client import NSEClient
    from include.nse.errors import InHistory, NotPublished
    from include.nse.lake import Lake
    from include.nse.pipeline import fetch_to_bronze

    s = settings()
    with NSEClient(s) as client:
        try:
            return fetch_to_bronze(
                client, Lake(s.lake_root), sources.get(dataset_name), day, history=False
            )
        except NotPublished as e:
            raise AirflowSkipException(f"{dataset_name} for {day} is not published yet: {e}") from e
        except InHistory as e:
            # For `fetch_history`, which calls the API in the API's pool.
            return {"dataset": dataset_name, "trade_date": day.isoformat(), "in_history": str(e)}


def fetch_history(dataset_name: str, day: dt.date, fetched: dict) -> dict:
    """Fetch a date from NSE's API if the archive fetch found it is history, else pass it on."""
    if "in_history" not in fetched:
        return fetched
    log.info("%s: %s", dataset_name, fetched["in_history"])
    return _fetch_from_api(dataset_name, day)


def history_from(context) -> dt.date | None:
    value = (context.get("params") or {}).get("history_from")
    return dt.date.fromisoformat(str(value)) if value else None


def load_history(dataset_name: str, first: dt.date | None, day: dt.date, run_id: str) -> dict:
    """Land each weekday from `first` to the day before `day` from NSE's API, one date at a
    time through the daily parse, validation and load; skipped when `first` is None."""
    from airflow.sdk.exceptions import AirflowSkipException

    if first is None:
        raise AirflowSkipException("no history_from: the run loads its trade date only")
    count = (day - first).days
    loaded = {}
    for past in (first + dt.timedelta(days=n) for n in range(count)):
        if past.weekday() >= 5:
            continue
        try:
            _fetch_from_api(dataset_name, past)
        except AirflowSkipException as e:
            log.info("%s", e)
            continue
        parse(dataset_name, past)
        validate(dataset_name, past, run_id)
        loaded[past.isoformat()] = load(dataset_name, past)["rows"]
    return {"dataset": dataset_name, "days": len(loaded), "rows": loaded}


def _fetch_from_api(dataset_name: str, day: dt.date) -> dict:
    from airflow.sdk.exceptions import AirflowSkipException

    from include.nse import sources
    from include.nse.client import NSEClient
    from include.nse.errors import NotPublished
    from include.nse.lake import Lake
    from include.nse.pipeline import fetch_history_to_bronze

    s = settings()
    with NSEClient(s) as client:
        try:
            return fetch_history_to_bronze(
                client, Lake(s.lake_root), sources.get(dataset_name), day
            )
        except NotPublished as e:
            raise AirflowSkipException(f"{dataset_name} for {day} is not published: {e}") from e


def parse(dataset_name: str, day: dt.date) -> dict:
    from include.nse import sources
    from include.nse.lake import Lake
    from include.nse.pipeline import bronze_to_silver

    return bronze_to_silver(Lake(settings().lake_root), sources.get(dataset_name), day)


@contextmanager
def warehouse_client():
    """A ClickHouse client and database, the schema created or migrated first.

    The database is the `clickhouse_default` connection's schema field, `nse` when empty.
    """
    from clickhouse_hook import ClickHouseHook

    from include.nse import warehouse

    hook = ClickHouseHook()
    database = hook.get_connection(hook.clickhouse_conn_id).schema or "nse"
    # Connected to `default`, which always exists, so the first load can create the database.
    with hook.get_client(database="default") as client:
        warehouse.migrate(client, database)
        yield client, database


def validate(dataset_name: str, day: dt.date, run_id: str = "") -> dict:
    """Run the dataset's expectations on the silver partition; record the result in the lake
    and ClickHouse. A failed critical expectation fails the task without retries (the same
    bytes fail the same way), so nothing is loaded and the failure alert goes out at once.
    """
    from airflow.sdk.exceptions import AirflowFailException

    from include.nse import quality, sources
    from include.nse.lake import Lake

    report = quality.validate_partition(Lake(settings().lake_root), sources.get(dataset_name), day)
    with warehouse_client() as (client, database):
        quality.record(client, report, database, run_id=run_id)
    for warning in report.warnings:
        log.warning("%s %s: warning: %s", dataset_name, day, warning.describe())
    if not report.passed:
        raise AirflowFailException(str(report.error()))
    return report.stats() | {"artifacts": [report.path]}


def load(dataset_name: str, day: dt.date) -> dict:
    """Replace the date's rows in ClickHouse, creating the schema first when it is missing."""
    from include.nse import sources
    from include.nse.lake import Lake
    from include.nse.pipeline import silver_to_warehouse

    with warehouse_client() as (client, database):
        return silver_to_warehouse(
            client, Lake(settings().lake_root), sources.get(dataset_name), day, database
        )
