"""Slack alerts: a task's final failure, a DAG run failing for another reason, and silence (a
trading day NSE has not published, or answers with a block page, long after its time).

Built on the Slack provider's webhook notifier and the `slack_alerts` connection (type
`slackwebhook`; the password holds the webhook token, the host the webhook base URL, or the
password the whole webhook URL). `include.nse_airflow` sets it on every NSE DAG and task.
Retries are not alerted: Airflow calls `on_failure_callback` only when no try is left. A DAG run
that failed because a task failed was already alerted by that task, so the DAG-level alert speaks
only for the other causes (a run timing out, for one). A silence alert is sent by the fetch task
that finds the date late, once per date (`include.nse.silence` keeps the claim). Without a
usable connection an alert logs one warning and sends nothing; a failure to send is logged and
never fails anything.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from airflow.sdk import BaseNotifier

log = logging.getLogger(__name__)

SLACK_CONN_ID = "slack_alerts"
#: Seconds to wait for Slack; an alert must not hold a worker for long.
SLACK_TIMEOUT = 10
#: The DAG-level reason when a task's failure failed the run (that task sent its own alert).
TASK_FAILURE = "task_failure"


class SlackFailureAlert(BaseNotifier):
    """Posts who failed, where, why and the log link to the `slack_alerts` webhook."""

    def __init__(self, slack_conn_id: str = SLACK_CONN_ID):
        super().__init__()
        self.slack_conn_id = slack_conn_id

    def notify(self, context) -> None:
        if context.get("reason") == TASK_FAILURE:
            return
        send(message(context), context, self.slack_conn_id)


def send(text: str, context, slack_conn_id: str = SLACK_CONN_ID) -> bool:
    """Post `text` to the webhook. False, with one warning logged, when the connection is
    missing or Slack refuses: an alert never fails what sends it."""
    if not _configured(slack_conn_id):
        return False
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    try:
        SlackWebhookNotifier(
            slack_webhook_conn_id=slack_conn_id, text=text, timeout=SLACK_TIMEOUT
        ).notify(context)
    except Exception as e:
        log.warning("Slack alert not sent: %s: %s", type(e).__name__, e)
        return False
    return True


def _configured(slack_conn_id: str) -> bool:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        token = BaseHook.get_connection(slack_conn_id).password
    except AirflowNotFoundException:
        token = None
    if not (token or "").strip():
        log.warning(
            "Slack alert not sent: connection %r is missing or has no webhook token", slack_conn_id
        )
        return False
    return True


def silence_message(context, text: str, *, blocked: bool) -> str:
    """A silence alert: what `include.nse.silence` says of the date, then the task, run and log."""
    ti = context.get("ti")
    dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", "?")
    mark = ":no_entry:" if blocked else ":hourglass:"
    head, *rest = text.splitlines()
    return "\n".join(
        [
            f"{mark} {head}",
            *rest,
            f"Task: {dag_id}.{getattr(ti, 'task_id', '?')}, run {context.get('run_id') or '?'}",
            f"Log: {getattr(ti, 'log_url', '?')}",
        ]
    )


def message(context) -> str:
    """The alert's text: DAG, task, run, try, trade date, the error's first line, the log link."""
    from include.nse.dates import trade_date_of

    ti = context.get("ti")
    dag_run = context.get("dag_run")
    dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", "?")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", "?")
    reason = context.get("reason")
    try:
        moment = context.get("logical_date") or dag_run.run_after
        day = trade_date_of((context.get("params") or {}).get("trade_date"), moment).isoformat()
    except (KeyError, AttributeError, TypeError, ValueError):
        day = "unknown"
    if reason:
        lines = [f":red_circle: DAG run failed: {dag_id} ({reason})", f"Run: {run_id}"]
        link = f"{_base_url()}/dags/{quote(dag_id)}/runs/{quote(run_id)}"
    else:
        lines = [
            f":red_circle: Task failed: {dag_id}.{ti.task_id}",
            f"Run: {run_id}, try {ti.try_number} of {ti.max_tries + 1}",
        ]
        link = ti.log_url
    lines.append(f"Trade date: {day}")
    if error := context.get("exception"):
        first = (str(error).strip().splitlines() or [""])[0]
        lines.append(f"Error: {type(error).__name__}: {first}")
    lines.append(f"Log: {link}")
    return "\n".join(lines)


def _base_url() -> str:
    from airflow.sdk.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
