"""Index membership over time: questions for the warehouse's views over the daily snapshots.

Every list of a day lands in one trade-date partition of `nse.index_constituents` (the dataset's
`IndexLists` publication says which list can be which day's); membership history and the
day-to-day inclusions and exclusions are ClickHouse views over those snapshots
(`index_membership`, `index_changes`, in `include/sql/0007_index_constituents.sql`), so loading
days out of order or again changes nothing but the days loaded.
"""

from __future__ import annotations

import datetime as dt

from include.nse.names import identifier


# ---- questions for the warehouse ------------------------------------------------------------
def members_on(client, index_name: str, day: dt.date, database: str = "nse") -> list[str]:
    """Symbols in the index on `day`, by the snapshots loaded so far."""
    rows = client.execute(
        f"SELECT symbol FROM {identifier(database)}.index_membership "  # noqa: S608 — names pass identifier(), values are parameters
        "WHERE index_name = %(index)s AND valid_from <= %(day)s "
        "AND (valid_to > %(day)s OR valid_to IS NULL) ORDER BY symbol",
        {"index": index_name, "day": day},
    )
    return [symbol for (symbol,) in rows]


def changes_on(client, trade_date: dt.date, database: str = "nse") -> list[dict]:
    """Inclusions and exclusions that took effect with the day's snapshot, per index."""
    rows = client.execute(
        f"SELECT index_name, change, symbol FROM {identifier(database)}.index_changes "  # noqa: S608 — names pass identifier(), values are parameters
        "WHERE trade_date = %(day)s ORDER BY index_name, change, symbol",
        {"day": trade_date},
    )
    return [
        {"index_name": name, "change": change, "symbol": symbol} for name, change, symbol in rows
    ]
