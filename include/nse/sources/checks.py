"""Data checks a dataset declares next to its parser, run on each silver partition.

A check names a Great Expectations 1.x expectation class and its arguments, so declaring checks
costs nothing at import time; `include/nse/quality.py` builds the suite from them (importing GX
only then) and runs it on the partition before it is loaded.

A *critical* check that fails stops the load: nothing reaches ClickHouse, bronze and silver stay
for inspection. A *warning* is recorded with the validation and the load goes on.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["critical", "warning"]
CRITICAL: Severity = "critical"
WARNING: Severity = "warning"

#: Suite parameter: rows in the previous trading day's silver partition of the same dataset.
PREVIOUS_ROWS = "previous_rows"
#: Suite parameter: the partition's trade date, as a one-element list.
TRADE_DATE = "trade_date"
#: Row-count bands around the previous trading day's count: outside the critical band the load
#: stops (half the rows missing), outside the warning band it is only recorded.
CRITICAL_ROW_BAND = (0.6, 1.7)
WARNING_ROW_BAND = (0.85, 1.2)


@dataclass(frozen=True)
class Check:
    """One expectation: its GX class name (`ExpectColumnValuesToNotBeNull`), kwargs, severity."""

    expectation: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    severity: Severity = CRITICAL

    @property
    def needs_previous_day(self) -> bool:
        """True when it compares with the previous trading day's partition."""
        return any(
            isinstance(value, Mapping) and PREVIOUS_ROWS in value.get("$PARAMETER", "")
            for value in self.kwargs.values()
        )


def not_null(*columns: str, severity: Severity = CRITICAL) -> list[Check]:
    return [Check("ExpectColumnValuesToNotBeNull", {"column": c}, severity) for c in columns]


def unique(columns: Iterable[str], severity: Severity = CRITICAL) -> Check:
    """At most one row per value of `columns` taken together (rows with a null count too);
    Great Expectations takes a single column through its own expectation."""
    columns = list(columns)
    if len(columns) == 1:
        return Check("ExpectColumnValuesToBeUnique", {"column": columns[0]}, severity)
    return Check("ExpectCompoundColumnsToBeUnique", {"column_list": columns}, severity)


def at_most(lower: str, upper: str, severity: Severity = CRITICAL) -> Check:
    """`lower <= upper` on every row where both have a value."""
    return Check(
        "ExpectColumnPairValuesAToBeGreaterThanB",
        {
            "column_A": upper,
            "column_B": lower,
            "or_equal": True,
            "ignore_row_if": "either_value_is_missing",
        },
        severity,
    )


def price_range(
    open_: str = "open",
    high: str = "high",
    low: str = "low",
    close: str = "close",
    *,
    close_severity: Severity = CRITICAL,
) -> list[Check]:
    """low <= open <= high, and low <= close <= high (the close's severity can differ)."""
    return [
        at_most(low, high),
        at_most(low, open_),
        at_most(open_, high),
        at_most(low, close, close_severity),
        at_most(close, high, close_severity),
    ]


def positive(*columns: str, severity: Severity = CRITICAL) -> list[Check]:
    """Above zero where there is a value."""
    return [
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": c, "min_value": 0, "strict_min": True},
            severity,
        )
        for c in columns
    ]


def non_negative(*columns: str, severity: Severity = CRITICAL) -> list[Check]:
    return [
        Check("ExpectColumnValuesToBeBetween", {"column": c, "min_value": 0}, severity)
        for c in columns
    ]


#: The largest finite float: a value past it either way is an infinity.
FLOAT_MAX = sys.float_info.max


def finite(*columns: str) -> list[Check]:
    """Every value (nulls aside) a real number: no infinity and no NaN, which no NSE file
    means. Always critical. The gate counts a NaN as unexpected here; Great Expectations' own
    pandas engine cannot, as pandas holds a null float as NaN."""
    return [
        Check(
            "ExpectColumnValuesToBeBetween",
            {"column": c, "min_value": -FLOAT_MAX, "max_value": FLOAT_MAX},
            CRITICAL,
        )
        for c in columns
    ]


def is_finite(check: Check) -> bool:
    """True for a check made by `finite`."""
    return (
        check.expectation == "ExpectColumnValuesToBeBetween"
        and check.kwargs.get("min_value") == -FLOAT_MAX
        and check.kwargs.get("max_value") == FLOAT_MAX
    )


def between(
    column: str, min_value: float, max_value: float, severity: Severity = CRITICAL
) -> Check:
    return Check(
        "ExpectColumnValuesToBeBetween",
        {"column": column, "min_value": min_value, "max_value": max_value},
        severity,
    )


def one_of(column: str, values: Iterable[str], severity: Severity = CRITICAL) -> Check:
    """Every value of `column` (nulls aside) is in `values`."""
    return Check(
        "ExpectColumnValuesToBeInSet", {"column": column, "value_set": sorted(values)}, severity
    )


def matches(column: str, regex: str, severity: Severity = CRITICAL) -> Check:
    return Check("ExpectColumnValuesToMatchRegex", {"column": column, "regex": regex}, severity)


def on_trade_date(column: str = "trade_date", severity: Severity = CRITICAL) -> Check:
    """Every row (nulls aside) is of the partition's own trade date."""
    return Check(
        "ExpectColumnValuesToBeInSet",
        {"column": column, "value_set": {"$PARAMETER": TRADE_DATE}},
        severity,
    )


def row_count_band(low: float, high: float, severity: Severity) -> Check:
    """Row count between `low` and `high` times the previous trading day's count."""
    return Check(
        "ExpectTableRowCountToBeBetween",
        {
            "min_value": {"$PARAMETER": f"{PREVIOUS_ROWS} * {low}"},
            "max_value": {"$PARAMETER": f"{PREVIOUS_ROWS} * {high}"},
        },
        severity,
    )


def rows_like_previous_day() -> list[Check]:
    """Row count within the critical and warning bands of the previous trading day's count."""
    return [
        row_count_band(*CRITICAL_ROW_BAND, CRITICAL),
        row_count_band(*WARNING_ROW_BAND, WARNING),
    ]


#: ISIN: country code, nine alphanumerics, a check digit; NSE lists Indian ones (IN...).
ISIN_REGEX = r"^IN[A-Z0-9]{9}[0-9]$"

#: Capital-market series seen in NSE's bhavcopies: equity (EQ, BE, BZ...), SME (SM, ST...),
#: bonds and bills (GB, GS, TB), trusts (IV, RR), and the families of debt and other series
#: named by a letter and a digit or letter (N1, NA, Y4, Z5, AP, BC, Q1, E1, W2...).
CM_SERIES = frozenset(
    {"EQ", "BE", "BZ", "BL", "BT", "SM", "ST", "SZ", "SO", "SG", "GB", "GS", "TB", "MF", "ME"}
    | {"IV", "RR", "IL", "IT", "DR", "AG", "IQ", "RB"}
    | {f"{family}{c}" for family in "ABDEHNPQWYZ" for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
)
