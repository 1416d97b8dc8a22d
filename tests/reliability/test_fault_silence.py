"""Silence as a fault: a trading day NSE does not publish, or answers with a block page, long
after its time. Driven for real: the equity DAG under `dag.test()` against the stand-in over
loopback, the lake, ClickHouse, and a Slack webhook receiver on loopback.

Each case checks that the day skips with its reason while it is silent, that Slack hears of it
once (not on every look, retry or rerun) and only after the configured time, that the message
says which silence it is, and that once NSE serves the file a rerun loads every row once.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path

import pytest

from include.nse import sources
from include.nse.dates import IST
from include.nse_standin.generate import generate
from tests.conftest import parse_dag
from tests.helpers import state, task_states, unzipped

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

DAY = dt.date(2024, 7, 8)
DAG_ID = "nse_cm_bhavcopy"
#: The equity DAG runs at 18:30 IST: its runs' logical time, and when NSE's files are due.
DUE = dt.datetime.combine(DAY, dt.time(18, 30), IST)
BHAVCOPY = sources.get("cm_bhavcopy").publication.paths(DAY)[-1]
DELIVERY = sources.get("cm_delivery").publication.paths(DAY)[-1]


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(DAY, DAY, root, symbols=40, datasets=["cm_bhavcopy", "cm_delivery"])
    return root


def _rows(raw: bytes) -> int:
    _, data = unzipped(raw)
    return sum(1 for line in data.splitlines()[1:] if line.strip())


def _alert_in(seconds: float) -> dt.datetime:
    """Make the day late `seconds` from now (NSE_SILENCE_AFTER_MINUTES counted from DUE); the
    tasks run in this process and read it at each fetch."""
    alert_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)
    os.environ["NSE_SILENCE_AFTER_MINUTES"] = str((alert_at - DUE).total_seconds() / 60)
    return alert_at


def _late_after_looks(lake: Path, looks: int, slack: list, seen: dict) -> threading.Thread:
    """Once the fetch has looked `looks` times (rescheduled between looks) with Slack silent,
    make the day late a second later; `seen` records Slack then and when it becomes late."""

    def watch() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if _fetches(lake, missing_ok=True)[looks - 1 :]:
                seen["slack_before"] = len(slack)
                seen["alert_at"] = _alert_in(1)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _run():
    dag = parse_dag(DAG_ID)
    run = dag.test(logical_date=DUE.astimezone(dt.UTC))
    return run, task_states(DAG_ID, run.run_id)


def _fetches(lake: Path, *, missing_ok: bool = False) -> list[dict]:
    path = lake / "silence" / "cm_bhavcopy" / f"trade_date={DAY}" / "fetches.json"
    if missing_ok and not path.exists():
        return []
    return json.loads(path.read_text())


def _loaded_once(env, nse_root: Path, ch_client, runs: int) -> int:
    """Once NSE serves the file, a rerun loads it: bronze holds it as served, ClickHouse its
    rows once, and the delivery file (served all along, loaded by every run) once too."""
    env["standin"].clear_faults()
    run, states = _run()
    assert state(run) == "success", states
    assert states["load_cm_bhavcopy"] == states["load_cm_delivery"] == "success"
    lake, db = env["lake"], env["database"]
    served = (nse_root / BHAVCOPY.lstrip("/")).read_bytes()
    folder = lake / "bronze" / "cm_bhavcopy" / f"trade_date={DAY}"
    assert (folder / Path(BHAVCOPY).name).read_bytes() == served
    expected = _rows(served)
    counts = dict(
        ch_client.execute(f"SELECT 'cm_bhavcopy', count() FROM {db}.cm_bhavcopy")
        + ch_client.execute(f"SELECT 'cm_delivery', count() FROM {db}.cm_delivery")
    )
    delivery = _rows((nse_root / DELIVERY.lstrip("/")).read_bytes())
    assert counts == {"cm_bhavcopy": expected, "cm_delivery": delivery}, (counts, runs)
    return expected


def test_block_page_alerts_once_after_its_time(
    nse_root, dag_env, slack, ch_client, monkeypatch, fault
):
    """NSE answers the bhavcopy with an HTML page and status 200, again and again (a bot
    challenge). Until the configured time the fetch looks again, rescheduled, and Slack hears
    nothing; then one alert says it is a block page, not a late file, with what the fetches
    got; the run skips the dataset with that reason. A rerun still blocked alerts no more; once
    NSE serves the file, a rerun loads it once."""
    standin = dag_env["standin"]
    standin.add_fault("html_200", BHAVCOPY, times=None)
    monkeypatch.setenv("NSE_SILENCE_POKE_MINUTES", "0.02")
    monkeypatch.setenv("NSE_SILENCE_AFTER_MINUTES", "0")  # restored after the test
    _alert_in(24 * 60)
    seen: dict = {}
    watcher = _late_after_looks(dag_env["lake"], 2, slack, seen)

    run, states = _run()
    watcher.join(1)
    assert states["fetch_cm_bhavcopy"] == "skipped", states
    assert states["load_cm_bhavcopy"] == "skipped" and states["load_cm_delivery"] == "success"
    fetches = _fetches(dag_env["lake"])
    assert len(fetches) >= 3 and all(f["blocked"] for f in fetches)
    assert seen["slack_before"] == 0  # two looks, rescheduled, before its time: no alert
    times = [dt.datetime.fromisoformat(f["at"]) for f in fetches]
    assert all(t < seen["alert_at"] for t in times[:-1]) and times[-1] >= seen["alert_at"]
    assert {f["reason"] for f in fetches} == {f"not published for {DAY}"}
    assert all(f"{BHAVCOPY} (HTML page (text/html" in f["url"] for f in fetches)
    assert len(slack) == 1, slack
    text = slack[0]["text"]
    head = text.splitlines()[0]
    assert head.startswith(f":no_entry: NSE is answering cm_bhavcopy for {DAY} with a block page")
    assert f"every one of {len(fetches)} fetch(es)" in head and "not a missing file" in head
    assert f"{standin.url}{BHAVCOPY} (HTML page (text/html" in text
    assert f"Task: {DAG_ID}.fetch_cm_bhavcopy, run {run.run_id}" in text

    # Still blocked: the rerun looks once (it is late), skips, and Slack hears no more.
    run, states = _run()
    assert states["fetch_cm_bhavcopy"] == "skipped" and len(slack) == 1
    assert len(_fetches(dag_env["lake"])) == len(fetches) + 1

    rows = _loaded_once(dag_env, nse_root, ch_client, runs=3)
    assert len(slack) == 1
    fault(
        "persistent block page (HTML with status 200)",
        outcome=f"skipped; one 'block page' alert after {len(fetches)} looks; then {rows} rows",
    )


def test_unpublished_past_its_time_alerts_once(
    nse_root, dag_env, slack, ch_client, monkeypatch, fault
):
    """The bhavcopy stays a 404 past its time: the first fetch to find it late alerts once,
    saying NSE has not published it (not a block page); the run skips; a rerun does not alert
    again; once published, a rerun loads it once."""
    standin = dag_env["standin"]
    standin.add_fault("html_404", BHAVCOPY, times=None)
    monkeypatch.setenv("NSE_SILENCE_AFTER_MINUTES", "0")
    _alert_in(-60)

    started = time.monotonic()
    _, states = _run()
    assert states["fetch_cm_bhavcopy"] == "skipped", states
    (fetch,) = _fetches(dag_env["lake"])
    assert fetch == {
        "at": fetch["at"],
        "blocked": False,
        "reason": f"not published for {DAY}",
        "url": f"{standin.url}{BHAVCOPY} (HTTP 404)",
    }
    assert len(slack) == 1, slack
    text = slack[0]["text"]
    assert text.startswith(
        f":hourglass: NSE has not published cm_bhavcopy for {DAY}: 1 fetch(es) since"
    )
    assert "block page" not in text and "found nothing" in text
    assert f"not published for {DAY} ({standin.url}{BHAVCOPY} (HTTP 404))" in text

    _run()
    assert len(slack) == 1 and len(_fetches(dag_env["lake"])) == 2

    rows = _loaded_once(dag_env, nse_root, ch_client, runs=3)
    assert len(slack) == 1
    fault(
        "unpublished (404) past its time",
        outcome=f"skipped; one 'not published' alert; then {rows} rows once "
        f"({time.monotonic() - started:.0f} s, 3 runs)",
    )
