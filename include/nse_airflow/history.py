"""The history backfill DAG: a range's trading days in chunks, one mapped task per chunk.

`history_dag` builds it: **plan** cuts the range into chunks of the trading calendar
(`include.nse.history.plan`); **load** (mapped, one task per chunk named by its range, in the
`nse_backfill` pool) loads each chunk's days through the gated chain, recording each day's
outcome in `nse.backfill_days` and going on past a bad day; at most `max_parallel_chunks` chunks
of a run load at once (a chunk whose turn has not come waits, rescheduled, without holding a pool
slot); **summarize** lists what was loaded, skipped and failed, and fails (so the Slack alert
carries the summary) when any day failed; **publish_<dataset>** emits each loaded dataset's asset
once for the whole range, with the range and its days, so downstream DAGs run once, not once per
day. A rerun of a range resumes: days loaded before from the same bronze are skipped unfetched.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task
from nse_alerts import SlackFailureAlert

from include.nse_airflow.tasks import (
    DEFAULT_ARGS,
    START_DATE,
    dataset_asset,
    pipeline_context,
    task_timeout,
)

log = logging.getLogger(__name__)

#: Datasets published per trading day, the ones a history load covers.
DATASETS = [
    "cm_bhavcopy",
    "cm_delivery",
    "fo_bhavcopy",
    "bulk_deals",
    "block_deals",
    "index_constituents",
]
POOL = "nse_backfill"
#: How often a chunk waiting for its turn looks again.
TURN_WAIT = dt.timedelta(seconds=15)
#: A chunk's days can be many: two hours per chunk before it is given up (and retried);
#: NSE_TASK_TIMEOUT_CHUNK_MINUTES changes it.
CHUNK_TIMEOUT = task_timeout("chunk")
#: A chunk in any other state (none yet, scheduled, queued, running, waiting its turn, waiting
#: to retry) is unfinished.
_FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")


def params() -> dict[str, Param]:
    return {
        "start": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First trade date of the range to load (required).",
        ),
        "end": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last trade date of the range to load (required).",
        ),
        "datasets": Param(
            DATASETS[:5],
            type="array",
            items={"type": "string", "enum": DATASETS},
            uniqueItems=True,
            minItems=1,
            description="Datasets to load, each on its own segment's trading days.",
        ),
        "chunk": Param(
            "month",
            enum=["month", "week", "day"],
            description="How the range is cut: one mapped task per calendar month, week or day.",
        ),
        "max_parallel_chunks": Param(
            2,
            type="integer",
            minimum=1,
            maximum=16,
            description="At most this many chunks of the run load at once (the nse_backfill "
            "pool bounds every run together).",
        ),
        "reload": Param(
            False,
            type="boolean",
            description="Load again days already loaded from the same bronze files.",
        ),
    }


def _range(context) -> tuple[dt.date, dt.date]:
    from airflow.sdk.exceptions import AirflowFailException

    from include.nse.dates import iso_date

    p = context["params"]
    if not (p.get("start") and p.get("end")):
        raise AirflowFailException("a history load needs its range: set the start and end params")
    try:
        return iso_date(p["start"], "start"), iso_date(p["end"], "end")
    except ValueError as e:
        raise AirflowFailException(str(e)) from None


def _results(loaded: Any) -> list[dict]:
    """The chunks' results that exist (a chunk that failed has none), read by index."""
    if not loaded:
        return []
    return [result for result in (loaded[i] for i in range(len(loaded))) if result]


@task(execution_timeout=task_timeout("plan"))
def plan(**context) -> list[dict]:
    """The range's chunks, each with every chosen dataset's trading days in it."""
    from include.nse import history

    start, end = _range(context)
    p = context["params"]
    chunks = history.plan(start, end, p["datasets"], p["chunk"])
    days = sum(len(d) for c in chunks for d in c.days.values())
    log.info("%d chunks, %d dataset-days from %s to %s", len(chunks), days, start, end)
    return [chunk.to_dict() for chunk in chunks]


def _wait_for_turn(context, limit: int) -> None:
    """Reschedule this chunk while `limit` chunks before it (by map index) are unfinished.

    Then at most `limit` chunks of a run ever load at once, whatever order the scheduler starts
    them in and however their checks interleave: of the chunks loading at a moment, the one with
    the highest index went ahead with at most `limit - 1` unfinished chunks before it, and every
    other loading chunk is one of those. The lowest unfinished chunk always may go, so the run
    never stalls, and chunks load in the calendar's order.
    """
    from airflow.sdk.exceptions import AirflowRescheduleException

    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id])
    ahead = [
        key
        for key, state in states.get(ti.run_id, {}).items()
        if str(getattr(state, "value", state)) not in _FINISHED
        and int(key.rsplit("_", 1)[1]) < ti.map_index
    ]
    if len(ahead) >= limit:
        log.info(
            "%d chunks before this one are unfinished (at most %d load at once): waiting",
            len(ahead),
            limit,
        )
        raise AirflowRescheduleException(dt.datetime.now(dt.UTC) + TURN_WAIT)


@task(pool=POOL, map_index_template="{{ chunk_label }}", execution_timeout=CHUNK_TIMEOUT)
def load(chunk: dict, **context) -> dict:
    """Load the chunk's days, every dataset through the gated chain; bad days are recorded."""
    from include.nse import history

    get_current_context()["chunk_label"] = f"{chunk['label']} ({chunk['first']}..{chunk['last']})"
    _wait_for_turn(context, context["params"]["max_parallel_chunks"])
    outcomes = history.load_chunk(
        pipeline_context(context),
        history.Chunk.from_dict(chunk),
        reload=context["params"]["reload"],
    )
    summary = history.summarize(outcomes)
    log.info(
        "%s: %d loaded, %d skipped, %d not published, %d failed",
        chunk["label"],
        summary["loaded"],
        summary["skipped"],
        summary["not_published"],
        summary["failed"],
    )
    return summary | {
        "chunk": chunk["label"],
        "outcomes": [
            {k: v for k, v in o.to_dict().items() if k not in ("files", "bronze")} for o in outcomes
        ],
    }


@task(trigger_rule="all_done", execution_timeout=task_timeout("check"))
def summarize(planned: list[dict], loaded: Any, **context) -> dict:
    """What the run did, chunk by chunk; failed when any day or chunk failed, so the alert
    names them."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.nse import history

    results = _results(loaded)
    done = {result["chunk"] for result in results}
    summary = history.summarize(o for result in results for o in result["outcomes"])
    summary["chunks"] = len(planned)
    summary["chunks_failed"] = [c["label"] for c in planned if c["label"] not in done]
    start, end = _range(context)
    log.info("history %s..%s: %s", start, end, {k: v for k, v in summary.items()})
    if summary["failed_days"] or summary["chunks_failed"]:
        named = "; ".join(
            f"{d['dataset']} {d['trade_date']}: "
            + (d["error"] or "").removeprefix(f"{d['dataset']} {d['trade_date']}: ")[:160]
            for d in summary["failed_days"][:10]
        )
        raise AirflowFailException(
            f"{len(summary['failed_days'])} of {summary['days']} days failed"
            + (
                f", chunks {', '.join(summary['chunks_failed'])} did not finish"
                if summary["chunks_failed"]
                else ""
            )
            + f" ({summary['loaded']} loaded, {summary['skipped']} skipped); {named}"
        )
    return summary


@task(trigger_rule="all_done", execution_timeout=task_timeout("check"))
def publish(dataset: str, loaded: Any, **context) -> dict:
    """The dataset's asset, once for the range, when any of its days loaded; skipped otherwise."""
    from airflow.sdk.exceptions import AirflowSkipException

    days = sorted(
        o["trade_date"]
        for result in _results(loaded)
        for o in result["outcomes"]
        if o["dataset"] == dataset and o["status"] == "loaded"
    )
    if dataset not in context["params"]["datasets"] or not days:
        raise AirflowSkipException(f"no day of {dataset} loaded in this run")
    start, end = _range(context)
    extra = {"start": start.isoformat(), "end": end.isoformat(), "trade_dates": days}
    context["outlet_events"][dataset_asset(dataset)].extra = extra
    return {"dataset": dataset, "days": len(days), "first": days[0], "last": days[-1]}


def history_dag(dag_id: str, *, doc_md: str, tags: list[str]) -> DAG:
    """The history backfill DAG; triggered by hand (or the REST API) with its params."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=2,
        default_args=DEFAULT_ARGS,
        on_failure_callback=SlackFailureAlert(),
        doc_md=doc_md,
        tags=tags,
        params=params(),
    ) as dag:
        planned = plan()
        loaded = load.expand(chunk=planned)
        summarize(planned, loaded)
        for name in DATASETS:
            publish.override(task_id=f"publish_{name}", outlets=[dataset_asset(name)])(
                dataset=name, loaded=loaded
            )
    return dag
