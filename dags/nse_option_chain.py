"""
### NSE intraday option chain

Snapshots the option chain of every F&O underlying every few minutes while the F&O market is
open (09:15 to 15:30 Asia/Kolkata, trading days only, from the trading calendar). NSE only
serves the current chain, so a missed snapshot is lost: runs do not catch up, and a run must
finish well inside its interval.

1. **plan** the underlyings (the `underlyings` param, else the `nse_option_chain_underlyings`
   Variable, else the five index underlyings plus every stock with options in the latest F&O
   bhavcopy held) and cut them into batches of `batch_size`;
2. **fetch** each batch (one mapped task per batch, named by its underlyings, in the `nse_api`
   pool that bounds every DAG's requests to NSE's API host): each underlying's expiries, then
   each expiry's chain, every response kept in bronze. An underlying that keeps failing is
   recorded and the batch goes on;
3. **store** each batch's responses as silver; a response whose exchange timestamp has not
   moved since the last one stored is recorded as stale and not stored again;
4. **load** the new snapshots into ClickHouse (`nse.option_chain`) and their analytics (PCR,
   max pain, ATM strike and IV, put-call IV spread, OI totals and build-up) into gold and
   `nse.option_chain_analytics`; a snapshot loaded twice stays one copy. The new rows pass the
   dataset's expectations first: a critical failure loads nothing and fails the task;
5. **chart** the open interest by strike of the `chart_underlyings` (the indices by default);
6. **check coverage**: fails the run, and so alerts, when more than `max_missing_share` of the
   underlyings are missing.

The interval is `NSE_OPTION_CHAIN_EVERY_MINUTES` in the environment (default 5), read when the
DAG file is parsed.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import Asset, Param, dag, get_current_context, task
from nse_alerts import SlackFailureAlert
from nse_eod import DEFAULT_ARGS
from nse_timetable import TradingSessionTimetable

#: Read from the environment, not a Variable: the schedule is fixed when the file is parsed,
#: and parsing must not query the metadata database.
EVERY = dt.timedelta(minutes=int(os.environ.get("NSE_OPTION_CHAIN_EVERY_MINUTES") or 5))
SCHEDULE = TradingSessionTimetable(
    every=EVERY, start=dt.time(9, 15), end=dt.time(15, 30), segment="FO", timezone="Asia/Kolkata"
)
API_POOL = "nse_api"
INDEX_UNDERLYINGS = ["NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50"]
#: A snapshot's retries must fit inside its interval: short waits, few of them.
RETRY_ARGS = {
    **DEFAULT_ARGS,
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=15),
    "max_retry_delay": dt.timedelta(minutes=1),
}
OPTION_CHAIN = Asset(name="nse_option_chain", uri="clickhouse://nse/option_chain")


@task
def plan(**context) -> list[list[str]]:
    """The run's underlyings, in batches."""
    import nse_intraday

    from include.nse.option_chain import batches

    params = context["params"]
    names = nse_intraday.underlyings(params["underlyings"])
    return batches(names, params["batch_size"])


@task(pool=API_POOL, map_index_template="{{ batch_label }}")
def fetch(batch: list[str]) -> dict:
    """Fetch every expiry's chain of the batch's underlyings into bronze."""
    import nse_intraday

    get_current_context()["batch_label"] = ",".join(batch)
    return nse_intraday.fetch(batch)


@task(map_index_template="{{ batch_label }}")
def store(fetched: dict) -> dict:
    """Parse the batch's responses into silver, skipping stale ones."""
    import nse_intraday

    names = [f["underlying"] for f in fetched["fetched"]] + list(fetched["failed"])
    get_current_context()["batch_label"] = ",".join(names)
    return nse_intraday.store(fetched)


@task(outlets=[OPTION_CHAIN])
def load(stored: list[dict], **context) -> dict:
    """Validate the cycle's new snapshots, then load them and their analytics into ClickHouse."""
    import nse_intraday

    parts = [part for batch in stored for part in batch["parts"]]
    return nse_intraday.load(parts, context["run_id"])


@task
def chart(stored: list[dict], **context) -> list[str]:
    """Draw the OI-by-strike chart of the chosen underlyings that have a snapshot."""
    import nse_intraday

    landed = {name for batch in stored for name in (*batch["stored"], *batch["stale"])}
    chosen = context["params"]["chart_underlyings"]
    return nse_intraday.charts([name for name in chosen if name in landed])


@task(trigger_rule="all_done")
def check_coverage(
    planned: list[list[str]], stored: list[dict], loaded: dict | None, **context
) -> dict:
    """Fail the run when more than the allowed share of underlyings is missing, or when the
    load did not land the cycle (its own failure says why)."""
    import nse_intraday
    from airflow.sdk.exceptions import AirflowFailException

    if loaded is None:
        raise AirflowFailException("the load task landed nothing this cycle; see its log")
    expected = [name for batch in planned for name in batch]
    results = [batch for batch in stored if batch]
    return nse_intraday.coverage(expected, results, context["params"]["max_missing_share"])


@dag(
    dag_id="nse_option_chain",
    schedule=SCHEDULE,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=dt.timedelta(minutes=15),
    default_args=RETRY_ARGS,
    on_failure_callback=SlackFailureAlert(),
    doc_md=__doc__,
    tags=["nse", "derivatives", "intraday"],
    params={
        "underlyings": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Underlyings to snapshot; empty means the Variable, else indices + "
            "F&O stocks.",
        ),
        "batch_size": Param(
            25, type="integer", minimum=1, description="Underlyings per mapped fetch task."
        ),
        "max_missing_share": Param(
            0.1,
            type="number",
            minimum=0,
            maximum=1,
            description="Fail the run when more than this share of underlyings is missing.",
        ),
        "chart_underlyings": Param(
            INDEX_UNDERLYINGS,
            type="array",
            items={"type": "string"},
            description="Underlyings whose OI chart is drawn each cycle.",
        ),
    },
)
def nse_option_chain():
    planned = plan()
    stored = store.expand(fetched=fetch.expand(batch=planned))
    loaded = load(stored)
    charted = chart(stored)
    charted >> check_coverage(planned, stored, loaded)


nse_option_chain()
