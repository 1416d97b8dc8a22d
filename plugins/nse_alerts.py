"""Slack alerts on failure: a task's final failure, and a DAG run failing for another reason.

Built on the Slack provider's webhook notifier and the `slack_alerts` connection (type
`slackwebhook`; the password holds the webhook token, the host the webhook base URL, or the
password the whole webhook URL). `include.nse_airflow` sets it on every NSE DAG and task.
Retries are not alerted: Airflow calls `on_failure_callback` only when no try is left. A DAG run
that failed because a task failed was already alerted by that task, so the DAG-level alert speaks
only for the other causes (a run timing out, for one). Without a usable connection an alert logs
one warning and sends nothing; a failure to send is logged and never fails anything.
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
        if context.get("reason") == TASK_FAILURE or not self._configured():
            return
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        SlackWebhookNotifier(
            slack_webhook_conn_id=self.slack_conn_id, text=message(context), timeout=SLACK_TIMEOUT
        ).notify(context)

    def _configured(self) -> bool:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            token = BaseHook.get_connection(self.slack_conn_id).password
        except AirflowNotFoundException:
            token = None
        if not (token or "").strip():
            log.warning(
                "Slack alert not sent: connection %r is missing or has no webhook token",
                self.slack_conn_id,
            )
            return False
        return True


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
