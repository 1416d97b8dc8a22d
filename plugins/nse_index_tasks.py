"""Glue for the index constituents DAG: one fetch per index, then one snapshot for the day.

The generic chain (`nse_eod.dataset_chain`) fetches one file per trade date; constituents are
one list per index, so the fetches here are per index (mapped in the DAG) and the parse gathers
them into the day's single silver partition, which the shared validate and load tasks then
handle like any other dataset's.
"""

from __future__ import annotations

import datetime as dt
import logging

from nse_tasks import settings, warehouse_client

log = logging.getLogger(__name__)

#: Airflow Variable holding a JSON list of index names, used when the run's param is empty.
INDICES_VARIABLE = "nse_indices"


def index_names(context) -> list[str]:
    """The `indices` param, else the `nse_indices` Variable, else the library's default list."""
    from airflow.sdk import Variable

    from include.nse.sources import index_constituents as source

    names = (context.get("params") or {}).get("indices") or Variable.get(
        INDICES_VARIABLE, default=None, deserialize_json=True
    )
    names = list(names or source.DEFAULT_INDICES)
    for name in names:
        source.index(name)  # an unknown name fails the run here, listing the known ones
    return names


def fetch_archive(index_name: str, day: dt.date) -> dict:
    from include.nse import index_membership
    from include.nse.client import NSEClient
    from include.nse.lake import Lake

    s = settings()
    with NSEClient(s) as client:
        fetched = index_membership.fetch_archive(client, Lake(s.lake_root), index_name, day)
    if not fetched["path"]:
        log.info("%s for %s: %s", index_name, day, fetched["reason"])
    return fetched


def fetch_api(archived: dict, day: dt.date) -> dict:
    """The API's list where the archive host had none; otherwise the archive's fetch as it is."""
    if archived["path"] or not archived["try_api"]:
        return archived
    from include.nse import index_membership
    from include.nse.client import NSEClient
    from include.nse.lake import Lake

    s = settings()
    with NSEClient(s) as client:
        fetched = index_membership.fetch_api(client, Lake(s.lake_root), archived["index_name"], day)
    if not fetched["path"]:
        log.info("%s for %s: %s", archived["index_name"], day, fetched["reason"])
    return fetched


def parse(day: dt.date, fetched: list[dict]) -> dict:
    """The day's lists into its silver partition; skipped when no index has a list for it."""
    from airflow.sdk.exceptions import AirflowSkipException

    from include.nse import index_membership
    from include.nse.errors import NotPublished
    from include.nse.lake import Lake

    try:
        return index_membership.lists_to_silver(Lake(settings().lake_root), day, fetched)
    except NotPublished as e:
        raise AirflowSkipException(str(e)) from e


def changes(day: dt.date) -> dict:
    """The inclusions and exclusions the day's snapshot shows against the one before."""
    from include.nse import index_membership

    with warehouse_client() as (client, database):
        found = index_membership.changes_on(client, day, database)
    for change in found:
        log.info("%(index_name)s: %(change)s of %(symbol)s", change)
    return {"trade_date": day.isoformat(), "changes": found}
