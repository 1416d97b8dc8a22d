"""The quality gate between silver and the warehouse: each dataset's checks, run with GX.

Each silver partition is validated against its dataset's suite (`Dataset.checks` plus the key
not null and unique) in an ephemeral GX context, on the partition converted to pandas. Row-count
checks compare with the previous trading day's silver partition in the lake; with no earlier
partition they are skipped and the result says so. The result (GX's own JSON, with a summary) is
kept in the lake at `quality/<dataset>/trade_date=YYYY-MM-DD/validation.json`, and a summary row
goes to the warehouse table `quality_validations`. A failed critical check raises QualityError
after both are written, so the load never runs on a partition that failed.

Great Expectations takes seconds to import, so it is imported inside `validate_frame` only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from include.nse.errors import QualityError
from include.nse.lake import Lake, _atomic_write_bytes
from include.nse.sources.checks import (
    CRITICAL,
    PREVIOUS_ROWS,
    TRADE_DATE,
    Check,
    not_null,
    unique,
)
from include.nse.warehouse import identifier, insert_columns

if TYPE_CHECKING:
    from include.nse.sources.base import Dataset

log = logging.getLogger(__name__)

#: Unexpected values kept per failed expectation in the result and the error message.
SHOWN_VALUES = 5


@dataclass
class Outcome:
    """How one expectation went."""

    expectation: str
    severity: str
    kwargs: dict
    success: bool
    unexpected_count: int | None = None
    observed_value: object = None
    unexpected_values: list = field(default_factory=list)
    error: str | None = None

    def describe(self) -> str:
        args = ", ".join(
            f"{k}={v}" for k, v in self.kwargs.items() if k not in ("batch_id", "value_set")
        )
        found = (
            f"{self.unexpected_count} row(s), e.g. {self.unexpected_values[:SHOWN_VALUES]}"
            if self.unexpected_count
            else f"observed {self.observed_value}"
        )
        return f"{self.expectation}({args}): {self.error or found}"


@dataclass
class Report:
    """One validation of one silver partition."""

    dataset: str
    trade_date: dt.date
    rows: int
    outcomes: list[Outcome]
    #: Checks not run, and why (no previous partition to compare with).
    skipped: list[str] = field(default_factory=list)
    previous_trade_date: dt.date | None = None
    previous_rows: int | None = None
    seconds: float = 0.0
    path: str | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def critical_failed(self) -> list[Outcome]:
        return [o for o in self.failed if o.severity == CRITICAL]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.failed if o.severity != CRITICAL]

    @property
    def passed(self) -> bool:
        """True when no critical expectation failed: the partition may be loaded."""
        return not self.critical_failed

    @property
    def pass_rate(self) -> float:
        return (
            (len(self.outcomes) - len(self.failed)) / len(self.outcomes) if self.outcomes else 1.0
        )

    def stats(self) -> dict:
        """The small dict a task returns: counts, pass rate, where the result is."""
        return {
            "dataset": self.dataset,
            "trade_date": self.trade_date.isoformat(),
            "rows": self.rows,
            "expectations": len(self.outcomes),
            "failed": len(self.failed),
            "critical_failed": len(self.critical_failed),
            "warnings": [o.describe() for o in self.warnings],
            "skipped": len(self.skipped),
            "pass_rate": round(self.pass_rate, 4),
            "path": self.path,
            "seconds": self.seconds,
        }

    def error(self) -> QualityError:
        failures = "; ".join(o.describe() for o in self.critical_failed)
        return QualityError(
            f"{self.dataset} {self.trade_date}: {len(self.critical_failed)} critical "
            f"expectation(s) failed: {failures}. Result: {self.path}"
        )


def suite(dataset: Dataset) -> list[Check]:
    """The dataset's checks, after the key's: non-nullable key columns not null, key unique."""
    nullable = {c.name for c in dataset.columns if c.nullable}
    return [
        *not_null(*(c for c in dataset.key if c not in nullable)),
        unique(dataset.key),
        *dataset.checks,
    ]


def _context():
    """An ephemeral GX context: nothing on disk, no usage statistics, no progress bars."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def validate_frame(
    name: str,
    checks: list[Check],
    df: pl.DataFrame,
    trade_date: dt.date,
    *,
    previous_rows: int | None = None,
) -> tuple[Report, dict]:
    """Run `checks` on `df`; the report and GX's result as JSON-ready dict."""
    import great_expectations as gx

    started = time.monotonic()
    run = [c for c in checks if previous_rows is not None or not c.needs_previous_day]
    skipped = [
        f"{c.expectation}({c.kwargs}): no earlier silver partition to compare with"
        for c in checks
        if c not in run
    ]
    context = _context()
    batch = (
        context.data_sources.add_pandas("silver")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("partition")
    )
    expectations = [
        getattr(gx.expectations, c.expectation)(**c.kwargs, severity=c.severity) for c in run
    ]
    gx_suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}-{trade_date}", data=batch, suite=gx_suite)
    )
    result = definition.run(
        batch_parameters={"dataframe": df.to_pandas()},
        expectation_parameters={
            PREVIOUS_ROWS: previous_rows or 0,
            # A date column reaches pandas as datetime64, which compares with datetimes.
            TRADE_DATE: [dt.datetime.combine(trade_date, dt.time())],
        },
        result_format="SUMMARY",
    )
    outcomes = [_outcome(r) for r in result.results]
    report = Report(
        dataset=name,
        trade_date=trade_date,
        rows=df.height,
        outcomes=outcomes,
        skipped=skipped,
        previous_rows=previous_rows,
        seconds=round(time.monotonic() - started, 3),
    )
    return report, result.to_json_dict()


def _outcome(result) -> Outcome:
    config = result.expectation_config
    details = result.result or {}
    exception = result.exception_info or {}
    return Outcome(
        expectation=config.type,
        severity=str(getattr(config.severity, "value", config.severity)),
        kwargs={k: v for k, v in config.kwargs.items() if k != "batch_id"},
        # An expectation that could not be evaluated counts as failed.
        success=bool(result.success) and not exception.get("raised_exception"),
        unexpected_count=details.get("unexpected_count"),
        observed_value=details.get("observed_value"),
        unexpected_values=_plain(details.get("partial_unexpected_list") or [])[:SHOWN_VALUES],
        error=exception.get("exception_message") if exception.get("raised_exception") else None,
    )


def _plain(value):
    """numpy scalars, and lists or tuples of them, as Python values for messages and JSON."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def result_path(lake: Lake, dataset: str, trade_date: dt.date) -> Path:
    return lake.partition("quality", dataset, trade_date) / "validation.json"


def previous_partition(lake: Lake, dataset: str, trade_date: dt.date) -> dt.date | None:
    """The latest silver partition before `trade_date`: the previous trading day's, normally."""
    earlier = [d for d in lake.silver_dates(dataset) if d < trade_date]
    return earlier[-1] if earlier else None


def validate_partition(lake: Lake, dataset: Dataset, trade_date: dt.date) -> Report:
    """Validate the date's silver partition and keep the result in the lake; never raises on
    failed expectations (the caller records the report, then raises `report.error()`)."""
    df = lake.read_silver(dataset.name, trade_date)
    previous = previous_partition(lake, dataset.name, trade_date)
    previous_rows = (
        pl.scan_parquet(lake.silver_path(dataset.name, previous)).select(pl.len()).collect().item()
        if previous
        else None
    )
    report, gx_result = validate_frame(
        dataset.name, suite(dataset), df, trade_date, previous_rows=previous_rows
    )
    report.previous_trade_date = previous
    _keep(report, gx_result, result_path(lake, dataset.name, trade_date))
    return report


def validate_rows(
    lake: Lake, dataset: Dataset, df: pl.DataFrame, trade_date: dt.date, result_name: str
) -> Report:
    """Validate rows of `trade_date` that are not a whole silver partition (a cycle's new option
    chain snapshots), keeping the result as `result_name`.json beside the partitions' results;
    row-count checks are skipped. Never raises on failed expectations, like
    `validate_partition`."""
    report, gx_result = validate_frame(dataset.name, suite(dataset), df, trade_date)
    _keep(
        report,
        gx_result,
        result_path(lake, dataset.name, trade_date).with_name(f"{result_name}.json"),
    )
    return report


def _keep(report: Report, gx_result: dict, path: Path) -> None:
    """Write the validation's JSON to `path` and log how it went."""
    report.path = str(path)
    document = {"summary": _summary(report), "great_expectations": gx_result}
    _atomic_write_bytes(path, json.dumps(document, indent=2, default=str).encode() + b"\n")
    log.info(
        "%s %s: %d expectations, %d failed (%d critical), %d skipped",
        report.dataset,
        report.trade_date,
        len(report.outcomes),
        len(report.failed),
        len(report.critical_failed),
        len(report.skipped),
    )


def _summary(report: Report) -> dict:
    summary = asdict(report)
    summary.update(
        passed=report.passed,
        failed=len(report.failed),
        critical_failed=len(report.critical_failed),
        pass_rate=report.pass_rate,
    )
    return summary


def record(ch_client, report: Report, database: str = "nse", run_id: str = "") -> None:
    """Add the report's summary row to `quality_validations` (one row per validation)."""
    row = {
        "trade_date": [report.trade_date],
        "dataset": [report.dataset],
        "rows": [report.rows],
        "expectations": [len(report.outcomes)],
        "failed": [len(report.failed)],
        "critical_failed": [len(report.critical_failed)],
        "skipped": [len(report.skipped)],
        "result_path": [report.path or ""],
        "run_id": [run_id],
    }
    insert_columns(ch_client, f"{identifier(database)}.quality_validations", row)
