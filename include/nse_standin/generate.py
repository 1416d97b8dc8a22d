"""Realistic NSE files for any range of trade dates, laid out as NSE's hosts serve them.

Tests, benchmarks and the demo need a month of NSE data without calling NSE. `generate` walks
the market (`market.py`) over the range and hands each trading day to every dataset's writer,
which puts that day's files under the output directory by URL path, so the stand-in in
`server.py` can serve it as it is. Adding a dataset is one writer function and one entry in
`WRITERS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from include.nse_standin.deals import write_block_deals, write_bulk_deals
from include.nse_standin.equities import write_cm_bhavcopy, write_cm_delivery
from include.nse_standin.fo import write_fo_bhavcopy
from include.nse_standin.holidays import write_holidays
from include.nse_standin.indices import write_index_constituents
from include.nse_standin.market import EPOCH, Session, Universe, Written, sessions, trading_days

#: dataset name -> writer of one trading day's files for it.
WRITERS: dict[str, Callable[[Session, Path], list[Written]]] = {
    "cm_bhavcopy": write_cm_bhavcopy,
    "cm_delivery": write_cm_delivery,
    "fo_bhavcopy": write_fo_bhavcopy,
    "bulk_deals": write_bulk_deals,
    "block_deals": write_block_deals,
    "index_constituents": write_index_constituents,
    "holidays": write_holidays,
}


@dataclass
class GenerateReport:
    """What `generate` wrote: the trading days, and files and rows per dataset."""

    trading_days: list[dt.date]
    files: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "trading_days": len(self.trading_days),
            "first_day": self.trading_days[0].isoformat() if self.trading_days else None,
            "last_day": self.trading_days[-1].isoformat() if self.trading_days else None,
            "files": self.files,
            "rows": self.rows,
        }


def generate(
    start: dt.date,
    end: dt.date,
    out: Path,
    *,
    seed: int = 7,
    symbols: int = 2400,
    datasets: Iterable[str] | None = None,
    holidays: Iterable[dt.date] = frozenset(),
    weekend_sessions: Iterable[dt.date] = frozenset(),
) -> GenerateReport:
    """Write every trading day's files from `start` to `end` under `out`, in NSE's URL layout:
    every weekday but `holidays`, and the `weekend_sessions` (days NSE opened on a weekend).

    `symbols` is the number of listed securities; on a day about 92% of them trade and appear
    in the files. The same arguments write the same bytes.
    """
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    if start < EPOCH:
        raise ValueError(f"{start}: generated files start at {EPOCH} (the layout NSE used then)")
    names = list(WRITERS) if datasets is None else list(datasets)
    unknown = [name for name in names if name not in WRITERS]
    if unknown:
        raise ValueError(f"unknown datasets {unknown}; known: {', '.join(WRITERS)}")
    holidays, weekend_sessions = frozenset(holidays), frozenset(weekend_sessions)
    days = trading_days(start, end, holidays, weekend_sessions)
    report = GenerateReport(days, dict.fromkeys(names, 0), dict.fromkeys(names, 0))
    if not days:
        return report
    out = Path(out)
    universe = Universe.build(seed, symbols)
    for session in sessions(universe, seed, days, holidays, weekend_sessions):
        for name in names:
            for written in WRITERS[name](session, out):
                report.files[name] += 1
                report.rows[name] += written.rows
    return report
