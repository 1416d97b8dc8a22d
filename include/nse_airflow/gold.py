"""The combined market-data DAG: the day's gold computed on Spark once its data has landed.

`market_data_dag` builds it, scheduled on the end-of-day assets (CM bhavcopy, delivery and F&O
bhavcopy, each published by its load with the trade date, or once for a whole range by the
history DAG): **plan** finds the dates the triggering events name (or the run's `start`/`end`);
**gold** submits every gold job for that range in one Spark application through
`SparkSubmitOperator` and the `spark_default` connection (YARN in production, `local[2]` here),
shipping the jobs as a zip built from the checkout and checking at start that Spark runs where
the connection says; **load** (one mapped task per gold dataset) checks each partition the jobs
wrote through the quality gate and replaces it in ClickHouse; **summary** draws the last day's
market summary as a PNG in the lake, which the MLflow listener attaches to the run with every
task's numbers.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import re
import sys
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk import DAG, Asset, Param, get_current_context, task
from nse_alerts import SlackFailureAlert

from include.nse_airflow.deadlines import deadline_alert
from include.nse_airflow.tasks import DEFAULT_ARGS, START_DATE, dataset_asset

log = logging.getLogger(__name__)

SPARK_CONN_ID = "spark_default"
#: The end-of-day datasets whose landing makes a day's gold; deals and index lists are read
#: when present, not waited for.
TRIGGERS = ("cm_bhavcopy", "cm_delivery", "fo_bhavcopy")
#: In the order they run in one application.
JOBS = (
    "equity_eod",
    "equity_indicators",
    "equity_bars_weekly",
    "equity_bars_monthly",
    "fo_daily",
    "market_daily_summary",
)
INCLUDE = Path(__file__).resolve().parents[1]
RUN_SCRIPT = INCLUDE / "nse_gold" / "run.py"
#: Connection extras that size a submission, and the operator's attribute each sets.
SIZES = {
    "executor-memory": "_executor_memory",
    "executor-cores": "_executor_cores",
    "num-executors": "_num_executors",
    "driver-memory": "_driver_memory",
}
#: Local mode's driver JVM: quick to start, small collector (a day's rows are few).
LOCAL_JAVA = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
#: Settings for local mode: a few shuffle partitions suit a day's rows.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}
SPARK_TIMEOUT = dt.timedelta(hours=2)
#: A day's gold is due two hours after its data landed (about 21:30 IST after a 19:30 landing).
FINISH_WITHIN = dt.timedelta(hours=2)


def gold_asset(name: str) -> Asset:
    """Published when a gold dataset's partitions of a run are in ClickHouse."""
    return Asset(name=f"nse_gold_{name}", uri=f"clickhouse://nse/{name}")


def _dates_of(extra: dict) -> list[dt.date]:
    """The trade dates an asset event names: one day's load, or a history range's days."""
    if extra.get("trade_dates"):
        return [dt.date.fromisoformat(d) for d in extra["trade_dates"]]
    if extra.get("trade_date"):
        return [dt.date.fromisoformat(extra["trade_date"])]
    if extra.get("start") and extra.get("end"):
        return [dt.date.fromisoformat(extra["start"]), dt.date.fromisoformat(extra["end"])]
    return []


def run_range(params: dict, events: dict, fallback: dt.date) -> tuple[dt.date, dt.date]:
    """The range a run computes: its `start`/`end` params when given, else the span of the
    dates its triggering asset events name, else `fallback` (a run triggered by hand)."""
    start, end = params.get("start"), params.get("end")
    if start or end:
        first = dt.date.fromisoformat(start or end)
        last = dt.date.fromisoformat(end or start)
        if last < first:
            raise ValueError(f"end {last} is before start {first}")
        return first, last
    dates = [day for evs in events.values() for event in evs for day in _dates_of(event)]
    if dates:
        return min(dates), max(dates)
    return fallback, fallback


def run_folder(lake_root: Path, run_id: str) -> Path:
    """Where a run keeps its jobs' zip, calendar and report: `gold/_runs/<run id>/`."""
    return Path(lake_root) / "gold" / "_runs" / re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)


def _lake_root() -> Path:
    from include.nse_airflow.tasks import settings

    return Path(settings().lake_root)


@task
def plan() -> dict:
    from include.nse.dates import trade_date_of

    context = get_current_context()
    events = {
        getattr(asset, "name", str(asset)): [dict(e.extra or {}) for e in evs]
        for asset, evs in (context.get("triggering_asset_events") or {}).items()
    }
    moment = context.get("logical_date") or context["dag_run"].run_after
    start, end = run_range(dict(context["params"]), events, trade_date_of(None, moment))
    log.info(
        "gold for %s..%s (asset events: %s)", start, end, {k: len(v) for k, v in events.items()}
    )
    return {"start": start.isoformat(), "end": end.isoformat()}


class GoldSubmitOperator(SparkSubmitOperator):
    """`SparkSubmitOperator` for the gold jobs: builds their zip and the trading calendar into
    the run's folder, passes the planned range, the lake and the master the connection names
    (the job refuses to run anywhere else), and sends the Python of this environment."""

    def __init__(self, *, plan_task_id: str = "plan", **kwargs) -> None:
        super().__init__(
            application=str(RUN_SCRIPT),
            conn_id=SPARK_CONN_ID,
            name="nse_gold",
            **kwargs,
        )
        self.plan_task_id = plan_task_id

    def prepare(self, start: dt.date, end: dt.date, lake_root: Path, run_id: str):
        """Set up the submission of every job over `start`..`end`; returns the hook that runs
        it (its command line is the one `execute` runs)."""
        from include.nse.calendar import default_calendar
        from include.nse_gold import local

        folder = run_folder(lake_root, run_id)
        folder.mkdir(parents=True, exist_ok=True)
        package = local.build_zip(folder / "nse_gold.zip")
        # The calendar runs past `end`: a bar is dated by its period's last trading day, and
        # the roll-over counts trading days to the next expiry.
        calendar = local.write_calendar(
            folder / "calendar.txt",
            default_calendar().trading_days(
                start - dt.timedelta(days=800), end + dt.timedelta(days=100)
            ),
        )
        report = folder / "report.jsonl"
        report.unlink(missing_ok=True)
        conn = self._connection()
        extra = conn.extra_dejson
        master = f"{conn.host or 'yarn'}:{conn.port}" if conn.port else conn.host or "yarn"
        local = master.startswith("local")
        cluster = (self._deploy_mode or extra.get("deploy-mode")) == "cluster"
        self.py_files = str(package)
        if cluster:
            self.files = str(calendar)
        self.application_args = [
            *JOBS,
            "--start",
            start.isoformat(),
            "--end",
            end.isoformat(),
            "--lake-root",
            str(lake_root),
            "--calendar",
            calendar.name if cluster else str(calendar),
            "--expect-master",
            "local" if local else master.split(":", 1)[0],
            "--report",
            str(report),
        ]
        # Sizes and settings from the connection: a cluster's are its operators' business.
        for key, attribute in SIZES.items():
            if extra.get(key) is not None:
                setattr(self, attribute, str(extra[key]))
        self.conf = (
            {**LOCAL_CONF, **(extra.get("conf") or {})} if local else dict(extra.get("conf") or {})
        )
        if local:
            # This environment's Python and spark-submit (pip's pyspark), a quick JVM start.
            self.conf.setdefault("spark.driver.extraJavaOptions", LOCAL_JAVA)
            python = sys.executable
            self.env_vars = {
                "PYSPARK_PYTHON": python,
                "PYSPARK_DRIVER_PYTHON": python,
                "SPARK_HOME": str(Path(importlib.util.find_spec("pyspark").origin).parent),
                "PATH": f"{Path(python).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            }
        else:
            # The cluster's own Python runs the executors (and the driver in cluster mode).
            self.conf.setdefault("spark.pyspark.python", extra.get("pyspark-python", "python3"))
            self.env_vars = None
        self._hook = None
        return self._get_hook()

    def _connection(self):
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(self._conn_id)

    def execute(self, context) -> None:
        planned = context["ti"].xcom_pull(task_ids=self.plan_task_id)
        self.prepare(
            dt.date.fromisoformat(planned["start"]),
            dt.date.fromisoformat(planned["end"]),
            _lake_root(),
            context["run_id"],
        )
        super().execute(context)


@task(map_index_template="{{ name }}")
def load(name: str) -> dict:
    from include.nse.pipeline import Context
    from include.nse_airflow.tasks import pipeline_context
    from include.nse_gold import publish

    context = get_current_context()
    ctx: Context = pipeline_context(context)
    report = run_folder(ctx.lake.root, context["run_id"]) / "report.jsonl"
    dates = publish.written(report).get(name)
    if dates is None:
        raise publish.ReportError(f"{report}: no line for {name}; its job did not run")
    with ctx.database() as (client, database):
        done = publish.gate_and_load(ctx.lake, name, dates, client, database, ctx.run_id)
    log.info("%s: %d rows over %d dates into %s", name, done["rows"], done["dates"], done["table"])
    return done


@task
def summary(loaded: list[dict]) -> dict:
    from include.nse.lake import Lake
    from include.nse_gold import publish

    lake = Lake(_lake_root())
    report = run_folder(lake.root, get_current_context()["run_id"]) / "report.jsonl"
    days = list(publish.written(report)["market_daily_summary"])
    if not days:
        return {"charts": 0, "artifacts": []}
    chart = publish.draw_summary(lake, days[-1])
    log.info("market summary of %s: %s", days[-1], chart)
    return {
        "charts": 1,
        "chart": str(chart),
        "artifacts": [str(chart)],
        "gold_rows": sum(d["rows"] for d in loaded),
        "gold_dates": max((d["dates"] for d in loaded), default=0),
    }


def params() -> dict[str, Param]:
    # A text box taking YYYY-MM-DD, as `trade_date_param` explains.
    date = {"type": ["null", "string"], "allOf": [{"format": "date"}]}
    return {
        "start": Param(
            None,
            **date,
            description="First trade date to compute, as YYYY-MM-DD; empty: the events' dates.",
        ),
        "end": Param(
            None,
            **date,
            description="Last trade date to compute, as YYYY-MM-DD; empty: the same as start.",
        ),
    }


def market_data_dag(dag_id: str, **kwargs) -> DAG:
    schedule = dataset_asset(TRIGGERS[0])
    for name in TRIGGERS[1:]:
        schedule = schedule & dataset_asset(name)
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        on_failure_callback=SlackFailureAlert(),
        params=params(),
        deadline=deadline_alert(dag_id, FINISH_WITHIN, from_queued=True),
        **kwargs,
    ) as dag:
        planned = plan()
        gold = GoldSubmitOperator(task_id="gold", execution_timeout=SPARK_TIMEOUT)
        loads = load.expand(name=list(JOBS))
        planned >> gold >> loads
        summary.override(outlets=[gold_asset(name) for name in JOBS])(loads)
    return dag
