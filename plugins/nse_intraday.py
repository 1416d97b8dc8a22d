"""Glue between the intraday option chain DAG and `include.nse.option_chain`.

Each function resolves settings, the lake and ClickHouse from Airflow (connections, Variables,
the environment) and calls the library with them.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)

#: Variable holding a JSON list of underlyings, used when the run's param is empty.
UNDERLYINGS_VARIABLE = "nse_option_chain_underlyings"


def _lake():
    from nse_tasks import settings

    from include.nse.lake import Lake

    return Lake(settings().lake_root)


def underlyings(chosen: list[str] | None) -> list[str]:
    """The run's param if set, else the Variable if set, else indices plus F&O stocks."""
    from airflow.sdk import Variable

    from include.nse import option_chain

    if chosen:
        return list(dict.fromkeys(chosen))
    configured = Variable.get(UNDERLYINGS_VARIABLE, default=None)
    if configured:
        return list(dict.fromkeys(json.loads(configured)))
    return option_chain.underlyings(_lake())


def fetch(batch: list[str]) -> dict:
    from nse_tasks import settings

    from include.nse import option_chain
    from include.nse.client import NSEClient

    with NSEClient(settings()) as client:
        return option_chain.fetch_batch(client, _lake(), batch)


def store(fetched: dict) -> dict:
    from include.nse import option_chain

    return option_chain.store_batch(_lake(), fetched)


def load(parts: list[str], run_id: str = "") -> dict:
    """Validate the cycle's new silver rows, then load them and their analytics into ClickHouse,
    creating the schema when missing. A failed critical expectation fails the task without
    retries before anything is loaded; the silver files stay in the lake."""
    from airflow.sdk.exceptions import AirflowFailException
    from nse_tasks import warehouse_client

    from include.nse import option_chain, quality

    lake = _lake()
    reports = option_chain.validate_parts(lake, parts)
    with warehouse_client() as (client, database):
        for report in reports:
            quality.record(client, report, database, run_id=run_id)
            for warning in report.warnings:
                log.warning("option chain %s: warning: %s", report.trade_date, warning.describe())
        failed = [str(report.error()) for report in reports if not report.passed]
        if failed:
            raise AirflowFailException(" ".join(failed))
        loaded = option_chain.load_parts(client, lake, parts, database)
    return loaded | {
        "pass_rate": min((report.pass_rate for report in reports), default=1.0),
        "warnings": [w.describe() for report in reports for w in report.warnings],
        "artifacts": [report.path for report in reports],
    }


def charts(names: list[str]) -> list[str]:
    from include.nse import option_chain

    lake = _lake()
    return [str(option_chain.chart_latest(lake, name)) for name in names]


def coverage(expected: list[str], stored: list[dict], max_missing_share: float) -> dict:
    """Fail the task (and so alert) when more than `max_missing_share` of underlyings failed."""
    from airflow.sdk.exceptions import AirflowFailException

    from include.nse import option_chain

    failed = {name: reason for batch in stored for name, reason in batch["failed"].items()}
    landed = {name for batch in stored for name in (*batch["stored"], *batch["stale"])}
    # A batch whose tasks failed outright reports nothing: its underlyings are missing too.
    for name in expected:
        if name not in landed and name not in failed:
            failed[name] = "no result from its batch"
    share = option_chain.missing_share(expected, failed)
    summary = {
        "expected": len(expected),
        "stored": sum(len(batch["stored"]) for batch in stored),
        "stale": sum(len(batch["stale"]) for batch in stored),
        "failed": failed,
        "missing_share": round(share, 4),
    }
    log.info("option chain cycle: %s", json.dumps(summary))
    if share > max_missing_share:
        raise AirflowFailException(
            f"{len(failed)} of {len(expected)} underlyings missing ({share:.1%} > "
            f"{max_missing_share:.1%}): {', '.join(sorted(failed))}"
        )
    return summary
