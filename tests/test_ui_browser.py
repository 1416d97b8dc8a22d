"""The Airflow UI as its users see it, in Debian's Chromium driven by Playwright: the login (the
FAB auth manager, as in the compose stack), the DAG list, a run triggered from the trigger form
succeeding against the NSE stand-in, a holiday's skip reason, and the connection forms.

Airflow runs whole (api-server, scheduler, dag-processor, triggerer) in a home of its own with
a created user; the stand-in serves a few generated days. Screenshots of each page are kept in
.local/ui-screenshots/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.airflow_harness import Airflow, airflow_env, free_port
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.conftest import PROJECT_ROOT, new_database

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

EQUITY = "nse_cm_bhavcopy"
#: A day the stand-in serves, and Muharram, a Wednesday NSE was closed.
TRADING_DAY, HOLIDAY = dt.date(2024, 7, 16), dt.date(2024, 7, 17)
HOLIDAY_NAME = "Moharram"
SCREENSHOTS = PROJECT_ROOT / ".local" / "ui-screenshots"
USER = "admin"
RUN_TIMEOUT = 300
#: Milliseconds a page may take to show what a test waits for.
PAGE_TIMEOUT = 60_000


def chromium() -> str:
    """Debian's Chromium (`scripts/chromium.sh install`, a prerequisite of `make test`)."""
    found = subprocess.run(
        [str(PROJECT_ROOT / "scripts/chromium.sh"), "path"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.fail("Chromium is not installed: run `scripts/chromium.sh install`")
    return found.stdout.strip()


@contextmanager
def airflow_ui(work: Path, server: dict, database: str) -> Iterator[Airflow]:
    """Airflow with the FAB login and a user of its own, its every component running, the
    project's settings applied, the stand-in serving the days around the holiday."""
    generate(
        TRADING_DAY - dt.timedelta(days=1),
        HOLIDAY,
        work / "nse",
        symbols=40,
        datasets=["cm_bhavcopy", "cm_delivery"],
        holidays=[HOLIDAY],
    )
    with StandIn(work / "nse") as standin:
        port = free_port()
        env = airflow_env(
            work / "airflow",
            port,
            {
                "NSE_LAKE_ROOT": str(work / "lake"),
                "NSE_ARCHIVE_BASE_URL": standin.url,
                "NSE_API_BASE_URL": standin.url,
                "CLICKHOUSE_HOST": server["host"],
                "CLICKHOUSE_PORT": str(server["port"]),
                "CLICKHOUSE_USER": server["user"],
                "CLICKHOUSE_PASSWORD": server["password"],
                "CLICKHOUSE_DATABASE": database,
                "NSE_MLFLOW_ENABLED": "false",
                "NSE_HTTP_BACKOFF_INITIAL": "0.05",
                # Only the runs the tests trigger: not each DAG's latest scheduled slot.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                # The DAG files do not change during the tests: parsed once per start.
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            },
        )
        airflow = Airflow(work / "airflow", env)
        airflow.password = secrets.token_urlsafe(12)
        airflow.url = env["AIRFLOW__API__BASE_URL"]
        airflow.standin = standin
        airflow.run("db", "migrate")
        airflow.start("api-server")
        try:
            airflow.run("scripts/apply_airflow_settings.py", "airflow_settings.yaml")
            airflow.run("dags", "reserialize")
            airflow.run(
                "users",
                "create",
                "--role",
                "Admin",
                "--username",
                USER,
                "--password",
                airflow.password,
                "--firstname",
                "UI",
                "--lastname",
                "Test",
                "--email",
                "ui-test@example.com",
            )
            for name in ("scheduler", "dag-processor", "triggerer"):
                airflow.start(name)
            airflow.wait_http(airflow.url + "/api/v2/monitor/health", 180)
            yield airflow
        finally:
            airflow.stop()


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, clickhouse_server):
    work = tmp_path_factory.mktemp("ui")
    with (
        new_database(clickhouse_server) as database,
        airflow_ui(work, clickhouse_server, database) as running,
    ):
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium(),
            headless=True,
            args=["--disable-background-networking", "--disable-component-update", "--no-sandbox"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(airflow, browser):
    """A logged-in page: the FAB login form, filled as a user would."""
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT)
    page = context.new_page()
    page.goto(airflow.url + "/")
    page.wait_for_url(re.compile(r"/auth/login"))
    page.locator("input[name=username]").fill(USER)
    page.locator("input[name=password]").fill(airflow.password)
    _shot(page, "login")
    page.get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    try:
        yield page
    finally:
        context.close()


def _shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def _run_state(airflow: Airflow, run_id: str) -> str | None:
    with sqlite3.connect(
        f"file:{airflow.home / 'airflow.db'}?mode=ro", uri=True, timeout=30
    ) as con:
        row = con.execute(
            "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (EQUITY, run_id)
        ).fetchone()
    return row[0] if row else None


def _wait_for_run(airflow: Airflow, run_id: str) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        airflow.check_daemons()
        state = _run_state(airflow, run_id)
        if state in ("success", "failed"):
            return state
        time.sleep(1)
    raise TimeoutError(f"{EQUITY} run {run_id} did not finish within {RUN_TIMEOUT} s")


def _trigger(page, airflow: Airflow, trade_date: dt.date, run_id: str) -> str:
    """Trigger the equity DAG from its trigger form for `trade_date`; the run's final state."""
    page.goto(f"{airflow.url}/dags/{EQUITY}")
    page.get_by_role("button", name=re.compile("^trigger", re.I)).first.click()
    form = page.get_by_role("dialog")
    form.locator("#element_trade_date").fill(trade_date.isoformat())
    form.get_by_text("Advanced Options").click()
    form.locator("input[name=dagRunId]").fill(run_id)
    _shot(page, f"trigger-{trade_date}")
    form.get_by_role("button", name=re.compile("^trigger$", re.I)).click()
    page.wait_for_url(re.compile(f"/runs/{run_id}"))
    return _wait_for_run(airflow, run_id)


def _task_log(page, airflow: Airflow, run_id: str, task_id: str) -> str:
    """The task's log as its page shows it, once the log has been drawn."""
    page.goto(f"{airflow.url}/dags/{EQUITY}/runs/{run_id}/tasks/{task_id}")
    page.get_by_text("Post Execute").first.wait_for()
    _shot(page, f"log-{run_id}-{task_id}")
    return page.locator("body").inner_text()


def test_login_shows_every_project_dag_without_import_errors(airflow, page):
    """After the FAB login the DAG list holds each DAG file's DAG, and no import error."""
    page.goto(airflow.url + "/dags")
    expected = sorted(p.stem for p in (PROJECT_ROOT / "dags").glob("nse_*.py"))
    page.get_by_text(f"{len(expected)} Dags", exact=True).wait_for()
    for dag_id in expected:
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    _shot(page, "dags")
    assert page.get_by_text(re.compile("import error", re.I)).count() == 0


def test_run_triggered_from_the_form_loads_the_day(airflow, page, clickhouse_server):
    """A run triggered from the form with a trade date succeeds against the stand-in; the load
    task's log says how many rows it loaded, as many as ClickHouse holds; the validate task's
    log says what was checked in a few lines, without Great Expectations' own chatter."""
    from clickhouse_driver import Client

    run_id = f"ui_{TRADING_DAY:%Y%m%d}"
    assert _trigger(page, airflow, TRADING_DAY, run_id) == "success"
    client = Client(**clickhouse_server)
    try:
        [(rows,)] = client.execute(
            f"SELECT count() FROM {airflow.env['CLICKHOUSE_DATABASE']}.cm_bhavcopy "
            "WHERE trade_date = %(day)s",
            {"day": TRADING_DAY},
        )
    finally:
        client.disconnect()
    assert rows > 0
    log = _task_log(page, airflow, run_id, "load_cm_bhavcopy")
    assert re.search(rf"loaded {rows} rows into \S+\.cm_bhavcopy for {TRADING_DAY}", log), log
    log = _task_log(page, airflow, run_id, "validate_cm_bhavcopy")
    assert f"cm_bhavcopy {TRADING_DAY}: {rows} rows" in log, log
    assert "checked expect_compound_columns_to_be_unique: trade_date+symbol+series" in log
    assert "Skipping registering" not in log
    assert len(log.splitlines()) < 150


def test_holiday_run_names_the_holiday_as_the_skip_reason(airflow, page):
    """A run for Muharram skips its fetch, the holiday named in the first line of the task's own
    log (outside the collapsed groups Airflow adds)."""
    run_id = f"ui_{HOLIDAY:%Y%m%d}"
    _trigger(page, airflow, HOLIDAY, run_id)
    log = _task_log(page, airflow, run_id, "fetch_cm_bhavcopy")
    page.get_by_text("Skipped", exact=True).first.wait_for()
    reason = (
        f"NSE's CM segment was closed on Wednesday {HOLIDAY} (holiday: {HOLIDAY_NAME}): "
        "no cm_bhavcopy to load"
    )
    assert reason in log, log
    assert "not published" not in log
    assert page.get_by_text(reason).is_visible(), "the reason is in a collapsed group"


def test_connection_forms_offer_clickhouse_and_show_the_nse_hosts(airflow, page):
    """The add form offers the `clickhouse` type with its own fields; `nse_api` opens with its
    host (the stand-in's URL); testing `clickhouse_default` reaches the server."""
    page.goto(airflow.url + "/connections")
    page.get_by_role("button", name=re.compile("add connection", re.I)).first.click()
    form = page.get_by_role("dialog")
    form.get_by_role("combobox").first.click()
    page.keyboard.type("ClickHouse")
    page.get_by_role("option", name="ClickHouse", exact=True).click()
    # The standard fields open first, relabelled for ClickHouse; the provider's own below.
    form.locator("input[name=host]").wait_for()
    for label in ("Host", "Port", "Database", "User", "Password"):
        assert form.locator("label").get_by_text(label, exact=True).is_visible(), label
    _shot(page, "connection-add-clickhouse")
    form.get_by_role("button", name="Extra Fields", exact=True).click()
    for label in ("Secure (TLS)", "Connect timeout (seconds)", "Compression", "Settings"):
        form.locator("label").get_by_text(label).first.wait_for()
    _shot(page, "connection-add-clickhouse-extras")
    form.get_by_role("button", name="Close").click()

    row = page.get_by_role("row").filter(has_text="nse_api")
    row.get_by_role("button", name="Edit Connection").click()
    form = page.get_by_role("dialog")
    host = form.locator("input[name=host]")
    host.wait_for()
    _shot(page, "connection-nse-api")
    assert host.input_value() == airflow.standin.url
    form.get_by_role("button", name="Close").click()

    row = page.get_by_role("row").filter(has_text="clickhouse_default")
    row.get_by_role("button", name="Test Connection").click()
    page.get_by_text(re.compile(r"Connected to ClickHouse \d+")).first.wait_for()
    _shot(page, "connection-test-clickhouse")
