"""The quality gate and Slack alerts in a DAG under `dag.test()`: stand-in, lake, ClickHouse."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import zipfile

import pytest

from include.nse_standin.generate import generate
from tests.conftest import parse_dag
from tests.helpers import state, task_states

pytestmark = [pytest.mark.airflow, pytest.mark.clickhouse, pytest.mark.slow]

BROKEN, WARNED = dt.date(2024, 7, 5), dt.date(2024, 7, 4)


def _rewrite_legacy_fo(root, day: dt.date, change) -> None:
    """Apply `change(rows)` to a generated legacy F&O bhavcopy, in place."""
    mmm = day.strftime("%b").upper()
    name = f"fo{day:%d}{mmm}{day:%Y}bhav.csv"
    path = root / f"content/historical/DERIVATIVES/{day:%Y}/{mmm}/{name}.zip"
    with zipfile.ZipFile(path) as z:
        text = z.read(name).decode()
    reader = csv.reader(io.StringIO(text))
    header, rows = next(reader), list(reader)
    change([dict(zip(header, row, strict=True)) for row in rows], rows, header)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(name, out.getvalue())


def _first_traded(records: list[dict]) -> int:
    return next(i for i, r in enumerate(records) if float(r["HIGH"]) > float(r["LOW"]) > 0)


def _swap_high_low(records, rows, header) -> None:
    i, high, low = _first_traded(records), header.index("HIGH"), header.index("LOW")
    rows[i][high], rows[i][low] = rows[i][low], rows[i][high]


def _close_above_high(records, rows, header) -> None:
    """Only a warning for F&O: NSE's derivative close can lie outside the day's range."""
    i = _first_traded(records)
    rows[i][header.index("CLOSE")] = f"{float(records[i]['HIGH']) + 1:.2f}"


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(WARNED, BROKEN, root, symbols=300, datasets=["fo_bhavcopy"])
    _rewrite_legacy_fo(root, BROKEN, _swap_high_low)
    _rewrite_legacy_fo(root, WARNED, _close_above_high)
    return root


@pytest.fixture()
def dag():
    """A freshly parsed DAG for each test."""
    return parse_dag("nse_fo_bhavcopy")


def _run_at(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(13, 30), dt.UTC)


def _quality_rows(ch_client, db: str) -> list[tuple]:
    return ch_client.execute(
        f"SELECT trade_date, failed, critical_failed FROM {db}.quality_validations"
    )


def test_corrupted_day_loads_nothing_and_alerts_once(dag, dag_env, slack, ch_client):
    """High below low: validation fails, nothing is loaded, lake kept, one Slack message."""
    run = dag.test(logical_date=_run_at(BROKEN))
    assert state(run) == "failed"
    assert task_states(dag.dag_id, run.run_id) == {
        "fetch_fo_bhavcopy": "success",
        "parse_fo_bhavcopy": "success",
        "validate_fo_bhavcopy": "failed",
        "load_fo_bhavcopy": "upstream_failed",
    }
    db, lake = dag_env["database"], dag_env["lake"]
    assert ch_client.execute(f"SELECT count() FROM {db}.fo_bhavcopy") == [(0,)]
    [(day, failed, critical)] = _quality_rows(ch_client, db)
    assert day == BROKEN and critical >= 1 and failed >= critical
    partition = "fo_bhavcopy/trade_date=2024-07-05"
    assert (lake / f"bronze/{partition}/fo05JUL2024bhav.csv.zip").exists()
    assert (lake / f"silver/{partition}/part-0.parquet").exists()
    assert (lake / f"quality/{partition}/validation.json").exists()

    assert len(slack) == 1, slack
    assert slack[0]["path"] == "/T000/B000/XXX"
    text = slack[0]["text"]
    assert "Task failed: nse_fo_bhavcopy.validate_fo_bhavcopy" in text
    assert f"Run: {run.run_id}, try 1 of 4" in text
    assert "Trade date: 2024-07-05" in text
    assert "Error: AirflowFailException: fo_bhavcopy 2024-07-05: " in text
    assert "column_A=high, column_B=low" in text
    assert (
        "Log: http://airflow.example:8080/dags/nse_fo_bhavcopy/runs/"
        f"{run.run_id.replace(':', '%3A').replace('+', '%2B')}/tasks/validate_fo_bhavcopy"
        "?try_number=1"
    ) in text


def test_warning_only_day_loads_and_records_it(dag, dag_env, slack, ch_client):
    """A close above the high is a warning for F&O: the day loads, the warning is recorded."""
    run = dag.test(logical_date=_run_at(WARNED))
    assert state(run) == "success"
    db = dag_env["database"]
    assert ch_client.execute(f"SELECT count() > 0 FROM {db}.fo_bhavcopy") == [(1,)]
    assert _quality_rows(ch_client, db) == [(WARNED, 1, 0)]
    assert slack == []


def test_alert_without_connection_warns_once(monkeypatch, caplog):
    """Without a `slack_alerts` webhook token an alert logs one warning and sends nothing."""
    from nse_alerts import SlackFailureAlert

    monkeypatch.setenv(
        "AIRFLOW_CONN_SLACK_ALERTS",
        json.dumps({"conn_type": "slackwebhook", "host": "http://127.0.0.1:9"}),
    )
    with caplog.at_level(logging.DEBUG):
        SlackFailureAlert()({"reason": "timed_out", "run_id": "r", "params": {}})
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in problems] == [
        "Slack alert not sent: connection 'slack_alerts' is missing or has no webhook token"
    ]
