"""What a scheduler may know of each dataset without importing it: how its tasks are shaped.

DAG files are parsed often and must stay light, so they cannot import a dataset's module (and
polars with it) to learn which host its fetch calls, whether past days come from the API, whether
a run covers a list of items, or which steps follow the load. Each dataset's `Shape` says so
here; `include.nse.sources.get` checks that the dataset's own definition agrees, so the two
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    module: str
    #: The host a fetch calls: "archive" or "api".
    host: str = "archive"
    #: True when a past date's files come from the API after the archive's file moved on.
    history: bool = False
    #: The run's list of items (indices, underlyings) when it covers one.
    items: str | None = None
    #: True when a run is a list of snapshots, fetched and parsed in mapped batches.
    per_item: bool = False
    #: Steps after the load, in order.
    after: tuple[str, ...] = ()
    #: (step, asset) pairs: a step that publishes an asset besides the dataset's own, which the
    #: load publishes.
    publishes: tuple[tuple[str, str], ...] = ()
    #: The trading-calendar segment whose days the dataset is published on; None for data not
    #: published per trading day.
    segment: str | None = "CM"


_SHAPES = {
    "cm_bhavcopy": Shape("include.nse.sources.cm_bhavcopy"),
    "cm_delivery": Shape("include.nse.sources.cm_delivery"),
    "fo_bhavcopy": Shape("include.nse.sources.fo_bhavcopy", segment="FO"),
    "index_constituents": Shape(
        "include.nse.sources.index_constituents", items="indices", after=("changes",)
    ),
    "bulk_deals": Shape("include.nse.sources.bulk_deals", history=True),
    "block_deals": Shape("include.nse.sources.block_deals", history=True),
    "option_chain": Shape(
        "include.nse.sources.option_chain",
        host="api",
        items="underlyings",
        per_item=True,
        after=("analytics", "charts"),
        segment="FO",
    ),
    "holidays": Shape(
        "include.nse.sources.holidays",
        host="api",
        after=("refresh_calendar",),
        publishes=(("refresh_calendar", "trading_calendar"),),
        segment=None,
    ),
}


def names() -> list[str]:
    return list(_SHAPES)


def shape(name: str) -> Shape:
    try:
        return _SHAPES[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(_SHAPES)}") from None
