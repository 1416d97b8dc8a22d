"""The tasks of every NSE DAG, and `nse_dag`, which chains them for the datasets a DAG names.

For a dataset published one file (or one set of files) per date the chain is

    fetch_<ds> [-> fetch_history_<ds>] -> parse_<ds> -> validate_<ds> -> load_<ds> -> <step>_<ds>...

`fetch_history` (past days from NSE's API, in the API's pool) exists for datasets whose archive
file holds the latest day only; the steps after the load are the dataset's own (`Dataset.after`).
A per-refresh list (option chains) plans its items in batches and maps fetch and parse over
them, then validates and loads the cycle at once and checks how much of it landed.

Every task resolves the same things from Airflow and hands them to `include.nse.pipeline`: the
trade date (the `trade_date` param, else the run's date in Mumbai), NSE's hosts (the
`nse_archives` and `nse_api` connections, else the environment), ClickHouse (the provider's
`ClickHouseHook`, so every statement is tagged with the task in `system.query_log`), the run's
params. Outcomes map to Airflow's vocabulary: a day NSE was closed or has not published skips
(the reason is the log's first line), a critical expectation or unreadable bytes fail without
retries (the same bytes fail the same way), anything else (the network, ClickHouse) is retried.
Parsing a DAG file imports only Airflow and `include.nse.catalog`; the library loads inside tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from contextlib import contextmanager
from typing import Any

from airflow.sdk import DAG, Asset, Param, get_current_context, task
from nse_alerts import SlackFailureAlert

from include.nse import catalog

log = logging.getLogger(__name__)

ARCHIVE_CONN_ID = "nse_archives"
API_CONN_ID = "nse_api"
CLICKHOUSE_CONN_ID = "clickhouse_default"
#: Pools bounding concurrent requests to each NSE host, across DAGs.
POOLS = {"archive": "nse_archives", "api": "nse_api"}
#: Variables holding a JSON list of a run's items when its param is empty.
ITEMS_VARIABLES = {"indices": "nse_indices", "underlyings": "nse_option_chain_underlyings"}
START_DATE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

#: Minutes each kind of task may run, per try (a fetch waiting for NSE to publish is
#: rescheduled and holds no slot between looks). `NSE_TASK_TIMEOUT_<KIND>_MINUTES` overrides one,
#: read when the DAG file is parsed. A fetch is bounded by its downloads (each within
#: NSE_HTTP_DEADLINE, tried NSE_HTTP_MAX_ATTEMPTS times), the others by a day's size.
TASK_TIMEOUT_MINUTES = {
    "fetch": 30,
    "parse": 20,
    "validate": 20,
    "load": 30,
    "after": 20,
    "plan": 10,
    "check": 10,
    # A history chunk: a month of one or more datasets' days, loaded through the whole chain.
    "chunk": 120,
}


def task_timeout(kind: str, cap: dt.timedelta | None = None) -> dt.timedelta:
    """A task kind's `execution_timeout`: its configured minutes, at most `cap` (a DAG's own
    bound, e.g. a snapshot's interval)."""
    name = f"NSE_TASK_TIMEOUT_{kind.upper()}_MINUTES"
    value = os.environ.get(name) or TASK_TIMEOUT_MINUTES[kind]
    try:
        minutes = float(value)
    except ValueError:
        minutes = 0
    if not minutes > 0:
        raise ValueError(f"{name} must be a number of minutes above 0, not {value!r}")
    timeout = dt.timedelta(minutes=minutes)
    return min(timeout, cap) if cap else timeout


#: Shared by every NSE DAG: retried with backoff, bounded in time, owned by the data team.
DEFAULT_ARGS = {
    "owner": "nse-data",
    "retries": 3,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=30),
    "execution_timeout": dt.timedelta(minutes=30),
    # Called on a task's final failure only, not on each retry.
    "on_failure_callback": SlackFailureAlert(),
}


def dataset_asset(name: str) -> Asset:
    """Published when a date's rows of `name` are in ClickHouse, for downstream DAGs."""
    return Asset(name=f"nse_{name}", uri=f"clickhouse://nse/{name}")


def trade_date_param() -> Param:
    """YYYY-MM-DD in a text box, as the run's configuration JSON and the command line write it.

    The trigger form draws a top-level `format: date` as the browser's date picker, which shows
    the browser's locale (mm/dd/yyyy for many) whatever the description says; under `allOf`
    the same check holds and the form draws a text box, so what a user types is what is sent.
    """
    return Param(
        None,
        type=["null", "string"],
        allOf=[{"format": "date"}],
        description="Trade date to load, as YYYY-MM-DD (e.g. 2024-07-05); empty means the "
        "run's own date.",
    )


# ---- what a task takes from Airflow -----------------------------------------------------------
def trade_date(context) -> dt.date:
    """The trade date a run is for: its `trade_date` param, else its logical date in Mumbai."""
    from include.nse.dates import trade_date_of

    params = context.get("params") or {}
    moment = context.get("logical_date") or context["dag_run"].run_after
    return trade_date_of(params.get("trade_date"), moment)


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

    changes = {}
    if url := _conn_url(ARCHIVE_CONN_ID):
        changes["archive_base_url"] = url
    if url := _conn_url(API_CONN_ID):
        changes["api_base_url"] = url
    return Settings.from_env().with_(**changes)


def warehouse():
    """ClickHouse through the provider's hook: the connection's schema is the database."""
    from nse_clickhouse_provider.hooks.clickhouse import ClickHouseHook

    from include.nse.warehouse import Warehouse

    hook = ClickHouseHook(CLICKHOUSE_CONN_ID)
    database = hook.get_connection(CLICKHOUSE_CONN_ID).schema or "nse"
    # Connected to `default`, which always exists, so the first load can create the database.
    return Warehouse(lambda: hook.get_client(database="default"), database)


def pipeline_context(context, *, with_warehouse: bool = True):
    from include.nse.pipeline import Context

    return Context(
        settings(),
        warehouse() if with_warehouse else None,
        run_id=context.get("run_id") or "",
        options=dict(context.get("params") or {}),
    )


def _costed(result: dict) -> dict:
    """A task's result with the CPU its process has used so far (forked for the task by the
    executor, so its start-up and the DAG file's parse count too; under `dag.test()` the
    whole test process)."""
    return result | {"cpu_seconds": round(time.process_time(), 3)}


def _dataset(name: str):
    from include.nse import sources

    return sources.get(name)


class Retried(Exception):
    """A failure worth another try (NSE's hosts, ClickHouse, a connection, the file system),
    named with the dataset and date, so the last line of the task's log says what and which."""


@contextmanager
def outcomes(dataset: str, day: dt.date | None):
    """The library's outcomes as Airflow's: skipped, failed without retries, or retried."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from clickhouse_driver.errors import Error as ClickHouseError

    from include.nse.errors import FetchError, NotPublished, ParseError, QualityError
    from include.nse.sources.option_chain import CoverageError

    what = f"{dataset} for {day}" if day else dataset
    try:
        yield
    except NotPublished as e:
        # An HTML page with a success status is how NSE says "not here" and how a block page
        # looks: the reason says both.
        state = "is blocked or not published yet" if e.blocked else "is not published yet"
        reason = f"{what} {state}: {e.reason} ({e.url})"
        log.info("%s", reason)
        raise AirflowSkipException(reason) from e
    except QualityError as e:
        # Its message already starts with the dataset and the date.
        raise AirflowFailException(str(e)) from e
    except (ParseError, CoverageError) as e:
        raise AirflowFailException(f"{what}: {e}") from e
    except FetchError as e:
        raise Retried(f"{what}: {e}") from e
    except ClickHouseError as e:
        reason = " ".join(str(e).split("Stack trace:")[0].split()) or type(e).__name__
        raise Retried(f"{what}: ClickHouse failed: {reason}") from e
    except OSError as e:
        if e.filename:
            raise Retried(f"{what}: cannot use the lake at {e.filename}: {e.strerror}") from e
        raise Retried(f"{what}: connection lost: {type(e).__name__}: {e}") from e
    except EOFError as e:
        raise Retried(f"{what}: connection lost: {type(e).__name__}: {e}") from e


def _skip_unless_published_on(name: str, day: dt.date) -> None:
    """Skip, naming the cause, a run for a day the dataset's segment did not trade."""
    from airflow.sdk.exceptions import AirflowSkipException

    from include.nse.calendar import default_calendar

    segment = catalog.shape(name).segment
    if segment is None:
        return
    info = default_calendar().classify(day, segment)
    if not info.is_trading_day:
        why = f"{info.kind}: {info.description}" if info.description else info.kind
        reason = f"NSE's {segment} segment was closed on {day:%A} {day} ({why}): no {name} to load"
        log.info("%s", reason)
        raise AirflowSkipException(reason)


def _items(name: str, context) -> list[str]:
    """The run's items: its param, else the Variable, else the dataset's default list."""
    import json

    from airflow.sdk import Variable

    param = catalog.shape(name).items
    chosen = (context.get("params") or {}).get(param)
    if not chosen:
        configured = Variable.get(ITEMS_VARIABLES[param], default=None)
        chosen = json.loads(configured) if configured else None
    if not chosen:
        from include.nse.lake import Lake

        chosen = _dataset(name).publication.default_items(Lake(settings().lake_root))
    return list(dict.fromkeys(chosen))


# ---- the tasks --------------------------------------------------------------------------------
@task
def fetch(dataset: str, **context) -> dict:
    """Fetch the day's files into bronze; skipped when NSE was closed or has not published."""
    from include.nse import pipeline
    from include.nse.errors import InHistory, NotPublished

    day = trade_date(context)
    _skip_unless_published_on(dataset, day)
    shape = catalog.shape(dataset)
    items = tuple(_items(dataset, context)) if shape.items else ()
    with outcomes(dataset, day):
        try:
            return _costed(
                pipeline.fetch(
                    pipeline_context(context, with_warehouse=False),
                    _dataset(dataset),
                    pipeline_request(day, items, history=not shape.history),
                )
            )
        except InHistory as e:
            log.info("%s", e)
            return {"dataset": dataset, "trade_date": day.isoformat(), "in_history": str(e)}
        except NotPublished as e:
            _watch_for_silence(dataset, day, e, context)
            raise


def _watch_for_silence(dataset: str, day: dt.date, error, context) -> None:
    """A date NSE has not published: looked at again (the task rescheduled, holding no slot)
    until it is late, when the first fetch to find it so alerts on Slack, once for the date,
    and the run skips. A DAG without a time of day (triggered by hand) only skips."""
    from airflow.sdk.exceptions import AirflowRescheduleException

    from include.nse import silence
    from include.nse.lake import Lake

    timetable = context["dag"].timetable
    at = getattr(timetable, "at", None)
    if at is None:
        return
    s = settings()
    lake = Lake(s.lake_root)
    zone = getattr(timetable, "timezone", None)
    due = dt.datetime.combine(day, at).replace(tzinfo=zone or dt.UTC)
    now = dt.datetime.now(dt.UTC)
    watch = silence.record(lake, dataset, day, error, due=due, settings=s, now=now)
    if not watch.late(now):
        again = min(now + dt.timedelta(minutes=s.silence_poke_minutes), watch.alert_at)
        log.info(
            "%s for %s is not published yet (%s); looking again at %s, alerting from %s",
            dataset,
            day,
            error.reason,
            again.isoformat(timespec="seconds"),
            watch.alert_at.isoformat(timespec="seconds"),
        )
        raise AirflowRescheduleException(again)
    if watch.history(now) or not silence.claim_alert(lake, dataset, day):
        return
    import nse_alerts

    text = nse_alerts.silence_message(context, watch.message(now), blocked=watch.blocked)
    if nse_alerts.send(text, context):
        log.info("alerted on Slack: %s", text.splitlines()[0])
    else:
        silence.release_alert(lake, dataset, day)


def pipeline_request(day: dt.date, items: tuple[str, ...] = (), *, history: bool = True):
    from include.nse.sources.base import Request

    return Request(day, items, history)


@task
def fetch_history(dataset: str, fetched: dict, **context) -> dict:
    """Fetch a past date from NSE's API when the archive's latest-day file has moved past it;
    otherwise pass the archive's fetch on."""
    from include.nse import pipeline

    if "in_history" not in fetched:
        return fetched
    day = trade_date(context)
    with outcomes(dataset, day):
        return _costed(
            pipeline.fetch(
                pipeline_context(context, with_warehouse=False),
                _dataset(dataset),
                pipeline_request(day),
                history=True,
            )
        )


@task
def parse(dataset: str, fetched: dict, **context) -> dict:
    """The bronze files into the silver partition (or a batch's new snapshots into parts)."""
    from include.nse import pipeline

    day = trade_date(context)
    if catalog.shape(dataset).per_item:
        get_current_context()["batch_label"] = ",".join(fetched.get("items", []))
    with outcomes(dataset, day):
        return _costed(
            pipeline.parse(
                pipeline_context(context, with_warehouse=False), _dataset(dataset), day, fetched
            )
        )


def _gathered(parsed: Any) -> dict:
    """One result for the whole cycle from a mapped task's results (a plain result as it is)."""
    if isinstance(parsed, dict):
        return parsed
    batches = [batch for batch in parsed if batch]
    return {
        "trade_date": next((b["trade_date"] for b in batches if b.get("trade_date")), None),
        "silver": [path for batch in batches for path in batch["silver"]],
        "rows": sum(batch["rows"] for batch in batches),
    }


@task
def validate(dataset: str, parsed: Any, **context) -> dict:
    """Check what parse wrote against the dataset's expectations; a critical miss fails."""
    from include.nse import pipeline

    with outcomes(dataset, trade_date(context)):
        return _costed(
            pipeline.validate(pipeline_context(context), _dataset(dataset), _gathered(parsed))
        )


@task
def load(dataset: str, validated: dict, **context) -> dict:
    """Make ClickHouse hold what the gate passed."""
    from include.nse import pipeline

    day = trade_date(context)
    with outcomes(dataset, day):
        loaded = pipeline.load(pipeline_context(context), _dataset(dataset), validated)
    # Downstream DAGs scheduled on the asset read the date from its event.
    context["outlet_events"][dataset_asset(dataset)].extra = {"trade_date": day.isoformat()}
    return _costed(loaded)


@task
def after_step(dataset: str, step: str, loaded: dict, **context) -> dict:
    """One of the dataset's own steps after the load."""
    from include.nse import pipeline

    with outcomes(dataset, trade_date(context)):
        return _costed(
            pipeline.after_step(pipeline_context(context), _dataset(dataset), step, loaded)
        )


@task
def plan(dataset: str, **context) -> list[list[str]]:
    """The run's items (param, Variable, or the dataset's default list), in batches."""
    from include.nse.sources.option_chain import batches

    _skip_unless_published_on(dataset, trade_date(context))
    return batches(_items(dataset, context), context["params"]["batch_size"])


@task(map_index_template="{{ batch_label }}")
def fetch_batch(dataset: str, batch: list[str], **context) -> dict:
    """Fetch one batch of the run's items into bronze; an item that fails is recorded."""
    from include.nse import pipeline

    get_current_context()["batch_label"] = ",".join(batch)
    day = trade_date(context)
    with outcomes(dataset, day):
        fetched = pipeline.fetch(
            pipeline_context(context, with_warehouse=False),
            _dataset(dataset),
            pipeline_request(day, tuple(batch)),
        )
    return _costed(fetched | {"items": batch})


@task(trigger_rule="all_done")
def check_coverage(dataset: str, planned: list, parsed: list, loaded: Any, **context) -> dict:
    """Fail the run when more than the allowed share of items is missing, or when the load did
    not land the cycle (its own failure says why)."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.nse.sources.option_chain import coverage

    # Runs whatever happened upstream: on a closed day everything before it was skipped.
    _skip_unless_published_on(dataset, trade_date(context))
    if loaded is None:
        raise AirflowFailException("the load task landed nothing this cycle; see its log")
    expected = [name for batch in planned for name in batch]
    with outcomes(dataset, trade_date(context)):
        return coverage(
            expected, [batch for batch in parsed if batch], context["params"]["max_missing_share"]
        )


# ---- the builder ------------------------------------------------------------------------------
def _chain(name: str, cap: dt.timedelta | None = None) -> None:
    shape = catalog.shape(name)
    pool = POOLS[shape.host]

    def bounded(kind: str) -> dict:
        return {"execution_timeout": task_timeout(kind, cap)}

    if shape.per_item:
        planned = plan.override(task_id=f"plan_{name}", **bounded("plan"))(dataset=name)
        fetched = (
            fetch_batch.override(task_id=f"fetch_{name}", pool=pool, **bounded("fetch"))
            .partial(dataset=name)
            .expand(batch=planned)
        )
        parsed = (
            parse.override(
                task_id=f"parse_{name}",
                map_index_template="{{ batch_label }}",
                **bounded("parse"),
            )
            .partial(dataset=name)
            .expand(fetched=fetched)
        )
    else:
        fetched = fetch.override(task_id=f"fetch_{name}", pool=pool, **bounded("fetch"))(
            dataset=name
        )
        if shape.history:
            fetched = fetch_history.override(
                task_id=f"fetch_history_{name}", pool=POOLS["api"], **bounded("fetch")
            )(dataset=name, fetched=fetched)
        parsed = parse.override(task_id=f"parse_{name}", **bounded("parse"))(
            dataset=name, fetched=fetched
        )
    validated = validate.override(task_id=f"validate_{name}", **bounded("validate"))(
        dataset=name, parsed=parsed
    )
    loaded = load.override(
        task_id=f"load_{name}", outlets=[dataset_asset(name)], **bounded("load")
    )(dataset=name, validated=validated)
    published = dict(shape.publishes)
    last = loaded
    for step in shape.after:
        outlets = [dataset_asset(published[step])] if step in published else []
        last = after_step.override(task_id=f"{step}_{name}", outlets=outlets, **bounded("after"))(
            dataset=name, step=step, loaded=loaded
        )
    if shape.per_item:
        last >> check_coverage.override(task_id=f"check_coverage_{name}", **bounded("check"))(
            dataset=name, planned=planned, parsed=parsed, loaded=loaded
        )


def _params(datasets: list[str]) -> dict[str, Param]:
    shapes = [catalog.shape(name) for name in datasets]
    params: dict[str, Param] = {}
    if not any(s.per_item for s in shapes):
        params["trade_date"] = trade_date_param()
    for s in shapes:
        if s.items == "indices":
            params["indices"] = Param(
                None,
                type=["null", "array"],
                items={"type": "string"},
                description=(
                    "Index names as NSE spells them (NIFTY 50, NIFTY BANK...); empty means the "
                    "nse_indices Variable, else the default list."
                ),
            )
        if s.per_item:
            params |= per_item_params()
    return params


def per_item_params() -> dict[str, Param]:
    return {
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
            ["NIFTY", "BANKNIFTY", "FINNIFTY", "MIDCPNIFTY", "NIFTYNXT50"],
            type="array",
            items={"type": "string"},
            description="Underlyings whose OI chart is drawn each cycle.",
        ),
    }


def nse_dag(
    dag_id: str,
    *,
    datasets: list[str],
    schedule,
    doc_md: str,
    tags: list[str],
    max_active_runs: int = 4,
    default_args: dict | None = None,
    finish_within: dt.timedelta | None = None,
    **dag_kwargs,
) -> DAG:
    """A DAG loading `datasets` on `schedule`: each dataset's chain side by side. With
    `finish_within`, a run unfinished that long after its logical date alerts on Slack."""
    if finish_within is not None:
        from include.nse_airflow.deadlines import deadline_alert

        dag_kwargs["deadline"] = deadline_alert(dag_id, finish_within)
    with DAG(
        dag_id=dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=max_active_runs,
        default_args={**DEFAULT_ARGS, **(default_args or {})},
        on_failure_callback=SlackFailureAlert(),
        doc_md=doc_md,
        tags=tags,
        params=_params(datasets),
        **dag_kwargs,
    ) as dag:
        for name in datasets:
            _chain(name, (default_args or {}).get("execution_timeout"))
    return dag
