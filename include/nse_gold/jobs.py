"""Job name -> job: a function of (spark, lake_root, start, end, calendar) returning the rows it
wrote per gold date. Each job writes the gold dataset of its name."""

from __future__ import annotations

from .equity_bars import equity_bars_monthly, equity_bars_weekly
from .equity_eod import equity_eod
from .equity_indicators import equity_indicators
from .fo_daily import fo_daily
from .market_daily_summary import market_daily_summary

JOBS = {
    job.__name__: job
    for job in (
        equity_eod,
        equity_indicators,
        equity_bars_weekly,
        equity_bars_monthly,
        fo_daily,
        market_daily_summary,
    )
}
#: Jobs that need the trading calendar (`--calendar`).
NEEDS_CALENDAR = frozenset({"equity_bars_weekly", "equity_bars_monthly", "fo_daily"})
