"""
### NSE index constituents

Files one snapshot per trade date of the members of each NIFTY index (the `indices` param, else
the `nse_indices` Variable, else NIFTY 50, NEXT 50, 100, 200, 500, MIDCAP 100, BANK, IT and
FINANCIAL SERVICES):

1. **fetch**, per index, the list that can be the trade date's: the archive host's current list
   (`ind_nifty50list.csv`) when its Last-Modified day is not after the trade date; for a past
   date, on a month's last trading day, the monthly weightage archive (`mcwb_<mon><yy>.zip`,
   NIFTY 50 and NEXT 50, with weights); NSE's API for an index whose list the archive host does
   not have, when the API's list is of the trade date. Each list is kept in bronze in its own
   folder (`index=<slug>`);
2. **parse** the day's lists into one silver partition, **validate** it, and **load** it into
   `nse.index_constituents`, replacing that date's snapshot;
3. **changes**: log the day's inclusions and exclusions (`nse.index_changes`).

Membership history is the ClickHouse view `nse.index_membership` (valid_from, valid_to) over
the snapshots, so reruns and out-of-order backfills leave the same history. Members of NIFTY 50
on a day: `python -m include.nse members "NIFTY 50" --date 2025-06-30`, or `SELECT symbol FROM
nse.index_membership WHERE index_name = 'NIFTY 50' AND valid_from <= '2025-06-30' AND (valid_to
> '2025-06-30' OR valid_to IS NULL)`.

Runs at 20:00 Asia/Kolkata on CM trading days. NSE's lists are current-only files, so a backfill
(`airflow backfill create --dag-id nse_index_constituents ...`) files a snapshot on each month's
last trading day from the monthly archive and skips the other days, saying why in the fetch log.
"""

from __future__ import annotations

import datetime as dt

from nse_timetable import TradingDayTimetable

from include.nse_airflow import nse_dag

DATASETS = ["index_constituents"]
SCHEDULE = TradingDayTimetable(at=dt.time(20, 0), segment="CM", timezone="Asia/Kolkata")
#: Due by 22:30 IST; later, Slack hears of it (NSE_DEADLINE_MINUTES_NSE_INDEX_CONSTITUENTS).
FINISH_WITHIN = dt.timedelta(hours=2, minutes=30)

dag = nse_dag(
    "nse_index_constituents",
    datasets=DATASETS,
    schedule=SCHEDULE,
    finish_within=FINISH_WITHIN,
    doc_md=__doc__,
    tags=["nse", "indices", "end-of-day"],
)
