"""`nse_market_data` under `dag.test()`: real `spark-submit --master local[2]` over a lake that the
gated chain filled from the stand-in, gold checked and loaded into a real ClickHouse, a rerun of
the loads leaving one copy; the range its asset events name; and the exact command line the operator
builds for a YARN connection."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path

import pytest

from include.nse import history, pipeline, sources
from include.nse.calendar import default_calendar
from include.nse.lake import Lake
from include.nse.warehouse import Warehouse, connector
from include.nse_airflow.gold import JOBS, GoldSubmitOperator, run_folder, run_range
from include.nse_gold import publish
from include.nse_gold.datasets import DATASETS, read_partition
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.conftest import parse_dag
from tests.helpers import standin_settings, state, task_states

FIRST, LAST = dt.date(2024, 7, 1), dt.date(2024, 7, 12)
DAY = dt.date(2024, 7, 11)
LOADED = ("cm_bhavcopy", "cm_delivery", "fo_bhavcopy", "bulk_deals", "block_deals")


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(FIRST, LAST, root, symbols=40, datasets=list(LOADED))
    return root


@pytest.fixture(scope="module")
def landed(nse_root, tmp_path_factory, clickhouse_server):
    """Two weeks of the end-of-day datasets through the gated chain into a lake and a database
    of the module's own."""
    from tests.conftest import new_database

    lake = tmp_path_factory.mktemp("market") / "lake"

    with new_database(clickhouse_server) as database, StandIn(nse_root) as standin:
        ctx = pipeline.Context(
            standin_settings(standin.url, lake_root=lake),
            Warehouse(connector(**clickhouse_server), database),
        )
        for name in LOADED:
            dataset = sources.get(name)
            days = default_calendar().trading_days(FIRST, LAST, dataset.segment or "CM")
            outcomes = history.load_days(ctx, dataset, days)
            assert {o.status for o in outcomes} == {"loaded"}, [o for o in outcomes if o.error]
        yield {"lake": lake, "database": database}


@pytest.fixture()
def market_env(landed, monkeypatch, airflow_db, clickhouse_server):
    from tests.conftest import clickhouse_connection

    monkeypatch.setenv("NSE_LAKE_ROOT", str(landed["lake"]))
    monkeypatch.setenv(
        "AIRFLOW_CONN_CLICKHOUSE_DEFAULT",
        clickhouse_connection(clickhouse_server, landed["database"]),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": "local[2]"})
    )
    monkeypatch.setenv("NSE_MLFLOW_ENABLED", "false")
    return landed


def _gold_counts(ch_client, database: str) -> dict[str, dict[dt.date, int]]:
    return {
        name: dict(
            ch_client.execute(
                f"SELECT trade_date, count() FROM {database}.{name} GROUP BY trade_date"
            )
        )
        for name in JOBS
    }


@pytest.mark.slow
@pytest.mark.clickhouse
def test_a_day_of_gold_lands_in_clickhouse_once(market_env, ch_client):
    """A run for one day computes every gold dataset on Spark, checks and loads each date the
    jobs wrote (the day, and its week's and month's bars), draws the summary; loading the run's
    dates again replaces the same partitions."""
    lake, database = market_env["lake"], market_env["database"]
    run = parse_dag("nse_market_data").test(run_conf={"start": DAY.isoformat()})
    assert state(run) == "success"
    states = task_states("nse_market_data", run.run_id)
    assert set(states.values()) == {"success"}, states

    report = [json.loads(line) for line in (run_folder(lake, run.run_id) / "report.jsonl").open()]
    written = {doc["job"]: sorted(doc["rows"]) for doc in report}
    assert list(written) == list(JOBS)
    counts = _gold_counts(ch_client, database)
    for name, dates in written.items():
        assert dates, name
        for day in dates:
            # What ClickHouse holds of each date is exactly the gold partition Spark wrote.
            expected = read_partition(lake, name, dt.date.fromisoformat(day)).height
            assert counts[name][dt.date.fromisoformat(day)] == expected > 0, (name, day)
    assert written["equity_eod"] == [DAY.isoformat()]
    # The week's bar is dated by the week's last trading day, the month's by the month's.
    assert written["equity_bars_weekly"] == ["2024-07-12"]
    assert written["equity_bars_monthly"] == ["2024-07-31"]
    summary = lake / "gold/market_summary_chart" / f"trade_date={DAY}" / "market_summary.png"
    assert summary.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    validations = list((lake / "quality/equity_indicators").rglob("validation.json"))
    assert validations

    # A rerun's loads (its Spark side rewrites each date's files: tests/test_gold_jobs.py) leave
    # each date's rows once.
    report_path = run_folder(lake, run.run_id) / "report.jsonl"
    for name, dates in publish.written(report_path).items():
        publish.gate_and_load(Lake(lake), name, dates, ch_client, database, "rerun")
    assert _gold_counts(ch_client, database) == counts
    for name in JOBS:
        key = ", ".join(DATASETS[name].key)
        (dupes,) = ch_client.execute(
            f"SELECT count() FROM (SELECT {key} FROM {database}.{name} GROUP BY {key} "
            "HAVING count() > 1)"
        )[0]
        assert dupes == 0, name


def test_the_range_comes_from_params_then_asset_events():
    day = dt.date(2024, 7, 11)
    events = {
        "nse_cm_bhavcopy": [{"trade_date": "2024-07-10"}, {"trade_date": "2024-07-11"}],
        "nse_cm_delivery": [{"trade_date": "2024-07-11"}],
        "nse_fo_bhavcopy": [
            {
                "start": "2024-01-01",
                "end": "2024-06-28",
                "trade_dates": ["2024-01-01", "2024-06-28"],
            }
        ],
    }
    assert run_range({}, events, day) == (dt.date(2024, 1, 1), dt.date(2024, 7, 11))
    assert (
        run_range({}, {"nse_cm_bhavcopy": [{"trade_date": "2024-07-10"}]}, day)
        == (dt.date(2024, 7, 10),) * 2
    )
    assert (
        run_range({"start": "2024-07-01", "end": None}, events, day) == (dt.date(2024, 7, 1),) * 2
    )
    assert run_range({}, {}, day) == (day, day)
    with pytest.raises(ValueError, match="end 2024-07-01 is before start 2024-07-05"):
        run_range({"start": "2024-07-05", "end": "2024-07-01"}, {}, day)


def test_the_yarn_command_line(monkeypatch, tmp_path, airflow_db):
    """For a YARN connection the operator submits to YARN in its deploy mode and queue, sizes
    from the connection's extras, the jobs as a zip, and asks the job to check for YARN."""
    conn = {
        "conn_type": "spark",
        "host": "yarn",
        "extra": {
            "deploy-mode": "cluster",
            "queue": "analytics",
            "spark-binary": "spark-submit",
            "executor-memory": "4g",
            "executor-cores": 2,
            "num-executors": 8,
            "pyspark-python": "/usr/bin/python3.11",
            "conf": {"spark.sql.shuffle.partitions": "200"},
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps(conn))
    operator = GoldSubmitOperator(task_id="gold")
    hook = operator.prepare(DAY, DAY, tmp_path / "lake", "scheduled__2024-07-11T13:00:00+00:00")
    command = hook._build_spark_submit_command(operator.application)
    folder = tmp_path / "lake/gold/_runs/scheduled__2024-07-11T13_00_00+00_00"
    print("\n" + shlex.join(command))
    assert command == [
        "spark-submit",
        "--master",
        "yarn",
        "--conf",
        "spark.sql.shuffle.partitions=200",
        "--conf",
        "spark.pyspark.python=/usr/bin/python3.11",
        "--files",
        str(folder / "calendar.txt"),
        "--py-files",
        str(folder / "nse_gold.zip"),
        "--num-executors",
        "8",
        "--executor-cores",
        "2",
        "--executor-memory",
        "4g",
        "--name",
        "nse_gold",
        "--queue",
        "analytics",
        "--deploy-mode",
        "cluster",
        str(Path("include/nse_gold/run.py").resolve()),
        *JOBS,
        "--start",
        "2024-07-11",
        "--end",
        "2024-07-11",
        "--lake-root",
        str(tmp_path / "lake"),
        "--calendar",
        "calendar.txt",
        "--expect-master",
        "yarn",
        "--report",
        str(folder / "report.jsonl"),
    ]
