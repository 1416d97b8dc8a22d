"""Deadline alerts: a run not finished in time posts to Slack through the failure alerts' notifier.

`deadline_alert` gives a DAG Airflow's `DeadlineAlert`: counted from the run's logical date (an
end-of-day run's is its trading day at the scheduled time in Mumbai, so "2 h 30 after" reads
"by 21:00 IST" for an 18:30 run) or from when the run was queued (an asset-triggered run, which
has no schedule of its own). `NSE_DEADLINE_MINUTES_<DAG ID>` (upper case) overrides the interval
of one DAG, read when the DAG file is parsed.

When a deadline passes with the run unfinished, the triggerer calls `deadline_missed`, which
posts once through the Slack webhook notifier on `slack_alerts`. It stays quiet for backfill runs
and for runs created after their deadline had already passed (a rerun of an old date): neither
is late, only old.
"""

from __future__ import annotations

import datetime as dt
import logging
import os

log = logging.getLogger(__name__)

SLACK_CONN_ID = "slack_alerts"
ENV_PREFIX = "NSE_DEADLINE_MINUTES_"
IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")


def interval(dag_id: str, default: dt.timedelta) -> dt.timedelta:
    """`default`, or the minutes `NSE_DEADLINE_MINUTES_<DAG ID>` sets."""
    name = ENV_PREFIX + dag_id.upper()
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        minutes = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of minutes, not {value!r}") from None
    if minutes <= 0:
        raise ValueError(f"{name} must be more than 0 minutes, not {value!r}")
    return dt.timedelta(minutes=minutes)


def deadline_alert(dag_id: str, after: dt.timedelta, *, from_queued: bool = False):
    """The DAG's deadline: `after` its runs' logical date (or their queueing), then Slack."""
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    reference = (
        DeadlineReference.DAGRUN_QUEUED_AT if from_queued else DeadlineReference.DAGRUN_LOGICAL_DATE
    )
    return DeadlineAlert(
        reference=reference,
        interval=interval(dag_id, after),
        callback=AsyncCallback(deadline_missed, kwargs={"slack_conn_id": SLACK_CONN_ID}),
        name=f"{dag_id} finished in time",
    )


def _moment(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def message(context: dict) -> str | None:
    """The alert's text for a missed deadline; None for a run that is not late but old."""
    run = context.get("dag_run") or {}
    deadline = _moment((context.get("deadline") or {}).get("deadline_time"))
    queued = _moment(run.get("queued_at"))
    if run.get("run_type") == "backfill":
        return None
    if deadline is not None and queued is not None and queued > deadline:
        return None
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    logical = _moment(run.get("logical_date"))
    conf = run.get("conf") or {}
    trade_date = conf.get("trade_date") or (logical.astimezone(IST).date() if logical else None)
    base = os.environ.get("AIRFLOW__API__BASE_URL", "").rstrip("/")
    when = f"{deadline.astimezone(IST):%Y-%m-%d %H:%M} IST" if deadline else "its deadline"
    lines = [
        f":alarm_clock: {dag_id} has not finished by {when}",
        f"Run: {run_id} ({run.get('run_type', '?')}), state {run.get('state', '?')}",
    ]
    if trade_date:
        lines.append(f"Trade date: {trade_date}")
    if base:
        lines.append(f"Run page: {base}/dags/{dag_id}/runs/{run_id}")
    return "\n".join(lines)


async def deadline_missed(context: dict | None = None, slack_conn_id: str = SLACK_CONN_ID) -> str:
    """Post the missed deadline to Slack (in the triggerer); what was done, for the callback's
    record."""
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    text = message(context or {})
    if text is None:
        log.info("deadline passed for a backfill or an old date's run: no alert")
        return "not sent: a backfill or a run created after its deadline"
    await SlackWebhookNotifier(
        slack_webhook_conn_id=slack_conn_id, text=text, timeout=10
    ).async_notify(context)
    return "sent"
