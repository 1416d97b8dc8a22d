"""The history backfill DAG under `dag.test()`: a bad day is named and the rest load; a rerun
fetches only what failed; each dataset's asset is published once for the range."""

from __future__ import annotations

import datetime as dt

import pytest

from include.nse import sources
from include.nse.calendar import default_calendar
from include.nse_standin.generate import generate
from tests.conftest import parse_dag
from tests.helpers import blank_field, read_records, state, task_result, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 7, 8), dt.date(2024, 7, 19)
HOLIDAY, BROKEN = dt.date(2024, 7, 17), dt.date(2024, 7, 11)
CONF = {
    "start": FIRST.isoformat(),
    "end": LAST.isoformat(),
    "datasets": ["cm_bhavcopy", "fo_bhavcopy"],
    "chunk": "week",
}


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(
        FIRST, LAST, root, symbols=80, holidays=[HOLIDAY], datasets=["cm_bhavcopy", "fo_bhavcopy"]
    )
    return root


def _file(root, name: str, day: dt.date):
    return root / sources.get(name).publication.paths(day)[-1].lstrip("/")


def _counts(ch_client, database: str, table: str) -> dict[dt.date, int]:
    return dict(
        ch_client.execute(f"SELECT trade_date, count() FROM {database}.{table} GROUP BY trade_date")
    )


def _asset_events(dag_id: str, run_id: str) -> dict[str, dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_dag_id == dag_id, AssetEvent.source_run_id == run_id)
        ).all()
    return dict(rows)


def test_a_bad_day_is_named_the_rest_load_and_a_rerun_resumes(nse_root, dag_env, ch_client, slack):
    """Two weeks of equity and F&O, one equity day broken: every other day loads, the run fails
    naming the day (and Slack hears it), each chunk is a mapped task named by its range; once
    the day is mended a rerun fetches only it and succeeds, publishing each dataset's asset once
    with the range's days."""
    broken = _file(nse_root, "cm_bhavcopy", BROKEN)
    good = broken.read_bytes()
    broken.write_bytes(blank_field(good, 2, "ClsPric"))
    db, standin = dag_env["database"], dag_env["standin"]
    cm_days = default_calendar().trading_days(FIRST, LAST, "CM")
    fo_days = default_calendar().trading_days(FIRST, LAST, "FO")
    try:
        run = parse_dag("nse_history_backfill").test(run_conf=CONF)
        assert state(run) == "failed"
        states = task_states("nse_history_backfill", run.run_id)
        assert states["summarize"] == "failed" and states["publish_cm_bhavcopy"] == "success"
        assert states["publish_block_deals"] == "skipped"
        expected = {
            d: len(read_records(_file(nse_root, "cm_bhavcopy", d).read_bytes())) for d in cm_days
        }
        assert _counts(ch_client, db, "cm_bhavcopy") == {
            d: n for d, n in expected.items() if d != BROKEN
        }
        assert sorted(_counts(ch_client, db, "fo_bhavcopy")) == fo_days
        (alert,) = [m["text"] for m in slack if "summarize" in m["text"]]
        assert f"1 of {len(cm_days) + len(fo_days)} days failed" in alert
        assert f"cm_bhavcopy {BROKEN}" in alert
        chunks = [
            task_result("nse_history_backfill", run.run_id, "load", i)["chunk"] for i in (0, 1)
        ]
        assert chunks == ["2024-W28", "2024-W29"]

        broken.write_bytes(good)
        standin.clear_log()
        rerun = parse_dag("nse_history_backfill").test(
            run_conf=CONF, logical_date=dt.datetime.now(dt.UTC)
        )
        assert state(rerun) == "success"
        fetched = {entry["path"].rsplit("/", 1)[-1] for entry in standin.request_log}
        assert fetched == {broken.name}
        assert _counts(ch_client, db, "cm_bhavcopy") == expected
        summary = task_result("nse_history_backfill", rerun.run_id, "summarize")
        assert (summary["loaded"], summary["skipped"], summary["failed"]) == (
            1,
            len(cm_days) + len(fo_days) - 1,
            0,
        )
        events = _asset_events("nse_history_backfill", rerun.run_id)
        assert events == {
            "nse_cm_bhavcopy": {
                "start": FIRST.isoformat(),
                "end": LAST.isoformat(),
                "trade_dates": [BROKEN.isoformat()],
            }
        }
        ledger = ch_client.execute(
            f"SELECT status, count() FROM {db}.backfill_days GROUP BY status ORDER BY status"
        )
        assert dict(ledger) == {
            "failed": 1,
            "loaded": len(cm_days) + len(fo_days),
            "skipped": len(cm_days) + len(fo_days) - 1,
        }
    finally:
        broken.write_bytes(good)
