"""The quality gate between silver and the warehouse: each dataset's checks, judged by Great
Expectations on metrics computed once in polars.

Each silver partition is validated against its dataset's suite (`suite`: the key not null and
unique, every float column finite, then `Dataset.checks`). Great Expectations' own pandas engine
converts the partition to pandas and scans it once per expectation, which costs about a second for
one day of F&O and ten for a month: more than loading it. So the metrics every expectation asks for
(row counts, null counts, unexpected counts and a few unexpected values, in GX's metric vocabulary:
`column_values.between.unexpected_count`, ...) are computed here with polars, all counts of a
partition in one pass, and handed to each GX expectation's `_validate`, the step GX's validator
runs once it has resolved the metrics the expectation declared. GX still decides every verdict (its
`mostly`, strictness and vacuous-truth rules) and writes the record (its validation result JSON). A
test runs the same suites through GX's pandas engine and checks that both give the same verdicts
and counts, but for a NaN: pandas holds a null float as NaN, so GX's engine takes every NaN for a
null, while here the finite checks (`checks.finite`, on every float column) count it as what it is:
a value that cannot be true.

Row-count checks compare with the previous silver partition of the same dataset; with none they
are skipped and the report says so. The result (GX's JSON with a summary) is kept in the lake at
`quality/<dataset>/trade_date=YYYY-MM-DD/validation.json`, and a summary row goes to the
warehouse table `quality_validations`. Great Expectations takes seconds to import, so it is
imported on first use only.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from include.nse.errors import QualityError
from include.nse.lake import Lake, write_json
from include.nse.names import identifier
from include.nse.sources.checks import (
    CRITICAL,
    PREVIOUS_ROWS,
    TRADE_DATE,
    Check,
    finite,
    is_finite,
    not_null,
    unique,
)
from include.nse.warehouse import insert_columns

if TYPE_CHECKING:
    from include.nse.sources.base import Dataset

log = logging.getLogger(__name__)

#: Unexpected values kept per failed expectation in the result and the error message.
SHOWN_VALUES = 5
#: Unexpected values handed to GX per expectation (GX's SUMMARY format keeps 20).
PARTIAL_VALUES = 20
RUNTIME = {"result_format": "SUMMARY"}


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

    def subject(self) -> str:
        """What it looked at, in a word: a column, columns taken together, a pair, the table."""
        kwargs = self.kwargs
        if "column" in kwargs:
            return str(kwargs["column"])
        if "column_list" in kwargs:
            return "+".join(map(str, kwargs["column_list"]))
        if "column_A" in kwargs:
            sign = ">=" if kwargs.get("or_equal") else ">"
            return f"{kwargs['column_A']}{sign}{kwargs['column_B']}"
        return "table"


@dataclass
class Report:
    """One validation of one silver partition (or of one cycle's rows of a date)."""

    dataset: str
    trade_date: dt.date
    rows: int
    outcomes: list[Outcome]
    skipped: list[str] = field(default_factory=list)
    previous_rows: int | None = None
    previous_trade_date: dt.date | None = None
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

    def summary_lines(self) -> list[str]:
        """What a log shows: what was checked, then each failure on a line of its own."""
        head = (
            f"{self.dataset} {self.trade_date}: {self.rows} rows, {len(self.outcomes)} "
            f"expectations, {len(self.critical_failed)} critical and {len(self.warnings)} "
            f"warning failed, {len(self.skipped)} skipped"
        )
        checked: dict[str, list[str]] = {}
        for o in self.outcomes:
            subjects = checked.setdefault(o.expectation, [])
            if o.subject() not in subjects:
                subjects.append(o.subject())
        return [
            head,
            *(f"  checked {kind}: {', '.join(subjects)}" for kind, subjects in checked.items()),
            *(f"  critical: {o.describe()}" for o in self.critical_failed),
            *(f"  warning: {o.describe()}" for o in self.warnings),
            *(f"  skipped: {s}" for s in self.skipped),
        ]

    def error(self) -> QualityError:
        failures = "; ".join(o.describe() for o in self.critical_failed)
        return QualityError(
            f"{self.dataset} {self.trade_date}: {len(self.critical_failed)} critical "
            f"expectation(s) failed: {failures}. Result: {self.path}"
        )


def suite(dataset: Dataset) -> list[Check]:
    """The dataset's checks, after the key's (non-nullable key columns not null, key unique)
    and every float column's (finite: no NaN, no infinity)."""
    nullable = {c.name for c in dataset.columns if c.nullable}
    return [
        *not_null(*(c for c in dataset.key if c not in nullable)),
        unique(dataset.key),
        *finite(*(c.name for c in dataset.columns if c.dtype.is_float())),
        *dataset.checks,
    ]


# ---- parameters ------------------------------------------------------------------------------
def _resolve(value: Any, parameters: Mapping[str, Any]) -> Any:
    """A check argument with `{"$PARAMETER": "name"}` or `"name * factor"` replaced."""
    if not (isinstance(value, Mapping) and "$PARAMETER" in value):
        return value
    name, _, factor = (part.strip() for part in value["$PARAMETER"].partition("*"))
    resolved = parameters[name]
    return resolved * float(factor) if factor else resolved


def _needs(check: Check) -> set[str]:
    return {
        v["$PARAMETER"].partition("*")[0].strip()
        for v in check.kwargs.values()
        if isinstance(v, Mapping) and "$PARAMETER" in v
    }


# ---- metrics, in GX's vocabulary, computed with polars ----------------------------------------
def _missing(frame: pl.DataFrame, column: str) -> pl.Expr:
    """Null, as GX's pandas engine sees it: NaN counts as missing too."""
    expr = pl.col(column).is_null()
    return expr | pl.col(column).is_nan() if frame.schema[column].is_float() else expr


class _Metrics:
    """The metrics of one frame's expectations: condition expressions first, every count of the
    frame in one polars pass, then a few unexpected values for the conditions that found any."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self._conditions: dict[str, tuple[pl.Expr, pl.Expr, list[str]]] = {}
        self._counts: dict[str, int] = {}

    def condition(
        self, metric: str, domain: Mapping, values: Mapping | None, *, nan_is_value: bool = False
    ) -> str:
        """Register the condition behind a map metric; its key for `count` and `values`.
        `nan_is_value`: a NaN counts as a value, not as missing (for `finite` checks)."""
        kind = metric.rsplit(".", 1)[0]
        domain = {k: v for k, v in domain.items() if v is not None and k != "batch_id"}
        values = {k: v for k, v in (values or {}).items() if k != "result_format"}
        key = repr((kind, sorted(domain.items()), sorted(values.items(), key=str), nan_is_value))
        if key not in self._conditions:
            self._conditions[key] = self._build(kind, domain, values, nan_is_value)
        return key

    def _build(
        self, kind: str, domain: dict, values: dict, nan_is_value: bool = False
    ) -> tuple[pl.Expr, pl.Expr, list[str]]:
        """(rows in the domain, rows unexpected, columns shown) of one condition."""
        f = self.frame
        if kind.startswith("column_values."):
            column = domain["column"]
            c = pl.col(column)
            present = ~(c.is_null() if nan_is_value else _missing(f, column))
            if kind == "column_values.nonnull":
                return pl.lit(True), ~present, [column]
            if kind == "column_values.between":
                low, high = values.get("min_value"), values.get("max_value")
                # A NaN counted as a value is in no range.
                ok = ~c.is_nan() if nan_is_value and f.schema[column].is_float() else pl.lit(True)
                if low is not None:
                    ok = ok & (c > low if values.get("strict_min") else c >= low)
                if high is not None:
                    ok = ok & (c < high if values.get("strict_max") else c <= high)
                return present, present & ~ok, [column]
            if kind == "column_values.in_set":
                allowed = pl.Series(list(values["value_set"]), dtype=f.schema[column])
                return present, present & ~c.is_in(allowed), [column]
            if kind == "column_values.unique":
                return present, present & c.is_duplicated(), [column]
            if kind == "column_values.match_regex":
                return present, present & ~c.str.contains(values["regex"]), [column]
        if kind == "column_pair_values.a_greater_than_b":
            a, b = domain["column_A"], domain["column_B"]
            inside = _pair_domain(f, a, b, domain.get("ignore_row_if", "both_values_are_missing"))
            ok = pl.col(a) >= pl.col(b) if values.get("or_equal") else pl.col(a) > pl.col(b)
            return inside, inside & ~ok.fill_null(False), [a, b]
        if kind == "compound_columns.unique":
            columns = list(domain["column_list"])
            missing = [_missing(f, c) for c in columns]
            if domain.get("ignore_row_if", "all_values_are_missing") == "any_value_is_missing":
                inside = ~pl.any_horizontal(missing)
            else:
                inside = ~pl.all_horizontal(missing)
            repeated = pl.struct(columns).is_duplicated()
            return inside, inside & repeated, columns
        raise NotImplementedError(f"no polars metric for {kind!r}")

    def _count_all(self) -> None:
        pending = [k for k in self._conditions if k not in self._counts]
        if not pending:
            return
        exprs = []
        for n, key in enumerate(pending):
            inside, unexpected, _ = self._conditions[key]
            exprs += [inside.sum().alias(f"d{n}"), unexpected.sum().alias(f"u{n}")]
        row = self.frame.select(exprs).row(0)
        for n, key in enumerate(pending):
            self._counts[key] = (int(row[2 * n]), int(row[2 * n + 1]))

    def counts(self, key: str) -> tuple[int, int]:
        """(rows in the domain, unexpected rows) of a registered condition."""
        self._count_all()
        return self._counts[key]

    def values(self, key: str, kind: str) -> list:
        """The first unexpected values, shaped as GX's pandas engine gives them."""
        if not self.counts(key)[1]:
            return []
        _, unexpected, columns = self._conditions[key]
        rows = self.frame.filter(unexpected).select(columns).head(PARTIAL_VALUES)
        if kind == "compound_columns.unique":
            return rows.to_dicts()
        if kind == "column_pair_values.a_greater_than_b":
            return [tuple(r) for r in rows.rows()]
        return rows.to_series().to_list()


def _pair_domain(frame: pl.DataFrame, a: str, b: str, ignore: str) -> pl.Expr:
    missing_a, missing_b = _missing(frame, a), _missing(frame, b)
    if ignore == "either_value_is_missing":
        return ~(missing_a | missing_b)
    if ignore == "both_values_are_missing":
        return ~(missing_a & missing_b)
    return pl.lit(True)


def _metric(metrics: _Metrics, configuration, *, nan_is_value: bool = False) -> Any:
    """The value of one metric GX asks for, by its name and kwargs."""
    name = configuration.metric_name
    if name == "table.row_count":
        return metrics.frame.height
    kind, _, suffix = name.rpartition(".")
    key = metrics.condition(
        name,
        configuration.metric_domain_kwargs,
        configuration.metric_value_kwargs,
        nan_is_value=nan_is_value,
    )
    if suffix == "unexpected_count":
        return metrics.counts(key)[1]
    if suffix == "filtered_row_count":
        return metrics.counts(key)[0]
    if suffix == "unexpected_values":
        return metrics.values(key, kind)
    if suffix in ("unexpected_index_list", "unexpected_index_query"):
        return None  # asked for with SUMMARY, used only by COMPLETE results with index columns
    raise NotImplementedError(f"no polars metric for {name!r}")


# ---- validation ------------------------------------------------------------------------------
def _gx():
    """Great Expectations, imported on first use, its registration chatter kept out of logs."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


_EXPECTATIONS: dict[tuple[str, str, str], tuple[Any, dict]] = {}


def _expectation(kind: str, kwargs: dict, severity: str):
    """A GX expectation and the metrics it needs (name -> configuration), made once per distinct
    configuration: building them costs GX far more than judging a day's metrics."""
    key = (kind, repr(sorted(kwargs.items())), severity)
    if key not in _EXPECTATIONS:
        if len(_EXPECTATIONS) > 4096:
            _EXPECTATIONS.clear()
        expectation = getattr(_gx().expectations, kind)(**kwargs, severity=severity)
        needed = expectation.get_validation_dependencies(runtime_configuration=dict(RUNTIME))
        _EXPECTATIONS[key] = expectation, dict(needed.metric_configurations)
    return _EXPECTATIONS[key]


def validate_frame(
    name: str,
    checks: Iterable[Check],
    df: pl.DataFrame,
    trade_date: dt.date,
    *,
    previous_rows: int | None = None,
) -> tuple[Report, dict]:
    """Run `checks` on `df`; the report and GX's validation result as a JSON-ready dict."""
    _gx()
    started = time.monotonic()
    parameters = {TRADE_DATE: [trade_date]}
    if previous_rows is not None:
        parameters[PREVIOUS_ROWS] = previous_rows
    checks = list(checks)
    run = [c for c in checks if _needs(c) <= parameters.keys()]
    skipped = [
        f"{c.expectation}({dict(c.kwargs)}): no earlier silver partition to compare with"
        for c in checks
        if c not in run
    ]
    metrics = _Metrics(df)
    expectations = [
        _expectation(
            c.expectation, {k: _resolve(v, parameters) for k, v in c.kwargs.items()}, c.severity
        )
        for c in run
    ]
    # A finite check counts a NaN as a value (not a number), where GX's pandas engine, like
    # the other checks, takes it for a missing one: pandas holds a null float as NaN.
    nan_is_value = [is_finite(c) for c in run]
    for (_, needed), nan in zip(expectations, nan_is_value, strict=True):
        for mc in needed.values():  # every condition first, so one pass counts them all
            if mc.metric_name != "table.row_count":
                metrics.condition(
                    mc.metric_name,
                    mc.metric_domain_kwargs,
                    mc.metric_value_kwargs,
                    nan_is_value=nan,
                )
    results = []
    for (expectation, needed), nan in zip(expectations, nan_is_value, strict=True):
        values = {name: _metric(metrics, mc, nan_is_value=nan) for name, mc in needed.items()}
        raw = expectation._validate(metrics=values, runtime_configuration=dict(RUNTIME))
        results.append(expectation._build_evr(raw_response=raw))
    # GX's suite result as its `to_json_dict` gives it, without the deep copy of every result
    # that method makes first (half the gate's time on a day of F&O); a test keeps them equal.
    document = {
        "success": all(r.success for r in results),
        "results": [r.to_json_dict() for r in results],
        "suite_name": name,
        "suite_parameters": {},
        "statistics": _statistics(results),
        "meta": {"trade_date": trade_date.isoformat(), "engine": "polars metrics"},
        "id": None,
    }
    report = Report(
        dataset=name,
        trade_date=trade_date,
        rows=df.height,
        outcomes=[_outcome(r) for r in results],
        skipped=skipped,
        previous_rows=previous_rows,
        seconds=round(time.monotonic() - started, 3),
    )
    return report, document


def _statistics(results: list) -> dict:
    passed = sum(bool(r.success) for r in results)
    return {
        "evaluated_expectations": len(results),
        "successful_expectations": passed,
        "unsuccessful_expectations": len(results) - passed,
        "success_percent": 100.0 * passed / len(results) if results else None,
    }


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


def result_path(lake: Lake, dataset: str, trade_date: dt.date, name: str = "validation") -> Path:
    return lake.partition("quality", dataset, trade_date) / f"{name}.json"


def previous_partition(lake: Lake, dataset: str, trade_date: dt.date) -> dt.date | None:
    """The latest silver partition before `trade_date`: the previous trading day's, normally."""
    earlier = [d for d in lake.silver_dates(dataset) if d < trade_date]
    return earlier[-1] if earlier else None


def validate_partition(
    lake: Lake, dataset: Dataset, trade_date: dt.date, df: pl.DataFrame | None = None
) -> Report:
    """Validate the date's silver partition (`df` when the caller holds it already) and keep
    the result in the lake; never raises on failed expectations (the caller records the
    report, then raises `report.error()`)."""
    df = lake.read_silver(dataset.name, trade_date) if df is None else df
    previous = previous_partition(lake, dataset.name, trade_date)
    report, document = validate_frame(
        dataset.name,
        suite(dataset),
        df,
        trade_date,
        previous_rows=lake.silver_rows(dataset.name, previous) if previous else None,
    )
    report.previous_trade_date = previous
    keep(report, document, result_path(lake, dataset.name, trade_date))
    return report


def validate_rows(
    lake: Lake, dataset: Dataset, df: pl.DataFrame, trade_date: dt.date, result_name: str
) -> Report:
    """Validate rows of `trade_date` that are not a whole silver partition (a cycle's new option
    chain snapshots), keeping the result as `result_name`.json beside the partitions' results;
    row-count checks are skipped. Never raises on failed expectations."""
    report, document = validate_frame(dataset.name, suite(dataset), df, trade_date)
    keep(report, document, result_path(lake, dataset.name, trade_date, result_name))
    return report


def keep(report: Report, document: dict, path: Path) -> None:
    """Write the validation's JSON to `path` and log what was checked and what failed."""
    report.path = str(path)
    # Compact: a month of days writes these on the hot path; `python -m json.tool` shows them.
    write_json(path, {"summary": _summary(report), "great_expectations": document}, indent=None)
    for line in report.summary_lines():
        log.info("%s", line)


def _summary(report: Report) -> dict:
    summary = asdict(report)
    summary.update(
        passed=report.passed,
        failed=len(report.failed),
        critical_failed=len(report.critical_failed),
        pass_rate=report.pass_rate,
    )
    return summary


def record(ch_client, reports: Iterable[Report], database: str = "nse", run_id: str = "") -> int:
    """Add each report's summary row to `quality_validations` in one insert; rows added."""
    reports = list(reports)
    rows = {
        "trade_date": [r.trade_date for r in reports],
        "dataset": [r.dataset for r in reports],
        "rows": [r.rows for r in reports],
        "expectations": [len(r.outcomes) for r in reports],
        "failed": [len(r.failed) for r in reports],
        "critical_failed": [len(r.critical_failed) for r in reports],
        "skipped": [len(r.skipped) for r in reports],
        "result_path": [r.path or "" for r in reports],
        "run_id": [run_id] * len(reports),
    }
    return insert_columns(ch_client, f"{identifier(database)}.quality_validations", rows)
