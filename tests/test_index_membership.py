"""Membership history from daily snapshots, in ClickHouse 18.16 (the server) and current (chdb).

The history and the changes are views over the snapshot table, so they are checked after loads
in order, out of order and repeated; expectations come from set differences of the snapshots.
"""

from __future__ import annotations

import datetime as dt
import itertools

import polars as pl
import pytest

from include.nse import index_membership
from include.nse.sources.index_constituents import DATASET
from include.nse.warehouse import load, migrate
from tests.helpers import ChdbClient

D1, D2, D3, D4 = (dt.date(2024, 7, d) for d in (1, 2, 4, 5))
#: Day -> index -> members. NIFTY IT has no snapshot on D2 and D3: no evidence either way.
SNAPSHOTS = {
    D1: {"NIFTY 50": ["A", "B", "C"], "NIFTY IT": ["X", "Y"]},
    D2: {"NIFTY 50": ["A", "B", "D"]},
    D3: {"NIFTY 50": ["A", "B", "C", "E"]},
    D4: {"NIFTY 50": ["A", "C", "E"], "NIFTY IT": ["X", "Y"]},
}


def snapshot(day: dt.date) -> pl.DataFrame:
    rows = [(index, symbol) for index, symbols in SNAPSHOTS[day].items() for symbol in symbols]
    return DATASET.conform(
        pl.DataFrame(
            {
                "trade_date": [day] * len(rows),
                "index_name": [index for index, _ in rows],
                "symbol": [symbol for _, symbol in rows],
                "company_name": [f"{symbol} Ltd." for _, symbol in rows],
                "industry": [None] * len(rows),
                "series": ["EQ"] * len(rows),
                "isin": [None] * len(rows),
                "weight": [None] * len(rows),
                "as_of": [day] * len(rows),
                "source_format": ["csv"] * len(rows),
            }
        )
    )


def expected_changes() -> set[tuple]:
    """(index, day, symbol, change) from consecutive snapshots of each index."""
    found = set()
    for index in ("NIFTY 50", "NIFTY IT"):
        days = [day for day in sorted(SNAPSHOTS) if index in SNAPSHOTS[day]]
        for before, after in itertools.pairwise(days):
            old, new = set(SNAPSHOTS[before][index]), set(SNAPSHOTS[after][index])
            found |= {(index, after, s, "inclusion") for s in new - old}
            found |= {(index, after, s, "exclusion") for s in old - new}
    return found


def changes(client, database: str) -> set[tuple]:
    return set(
        client.execute(
            f"SELECT index_name, trade_date, symbol, change FROM {database}.index_changes"
        )
    )


def load_days(client, database: str, days) -> None:
    for day in days:
        load(client, DATASET, day, snapshot(day), database)


class TestOnServer:
    @pytest.fixture()
    def db(self, ch_client, ch_database) -> str:
        migrate(ch_client, ch_database)
        return ch_database

    def test_inclusions_and_exclusions(self, ch_client, db):
        """Each snapshot that differs from its index's previous one records who came and went."""
        load_days(ch_client, db, sorted(SNAPSHOTS))
        assert changes(ch_client, db) == expected_changes()
        assert index_membership.changes_on(ch_client, D2, db) == [
            {"index_name": "NIFTY 50", "change": "exclusion", "symbol": "C"},
            {"index_name": "NIFTY 50", "change": "inclusion", "symbol": "D"},
        ]

    def test_members_on_a_date(self, ch_client, db):
        """One query answers who was in an index on a day, between snapshots too."""
        load_days(ch_client, db, sorted(SNAPSHOTS))
        assert index_membership.members_on(ch_client, "NIFTY 50", D2, db) == ["A", "B", "D"]
        # 3 July has no snapshot: the 2 July list holds until the next one.
        assert index_membership.members_on(ch_client, "NIFTY 50", dt.date(2024, 7, 3), db) == [
            "A",
            "B",
            "D",
        ]
        assert index_membership.members_on(ch_client, "NIFTY 50", D4, db) == ["A", "C", "E"]
        assert index_membership.members_on(ch_client, "NIFTY 50", dt.date(2024, 6, 28), db) == []
        assert index_membership.members_on(ch_client, "NIFTY IT", D3, db) == ["X", "Y"]

    def test_validity_intervals(self, ch_client, db):
        """C leaves on D2 and returns on D3: two intervals, the second still open."""
        load_days(ch_client, db, sorted(SNAPSHOTS))
        rows = ch_client.execute(
            f"SELECT valid_from, valid_to, from_first_snapshot FROM {db}.index_membership "
            "WHERE index_name = 'NIFTY 50' AND symbol = 'C' ORDER BY valid_from"
        )
        assert rows == [(D1, D2, 1), (D3, None, 0)]

    def test_out_of_order_and_repeated_loads(self, ch_client, db):
        """Days loaded backwards, one of them twice, give the same history as in order."""
        load_days(ch_client, db, [D4, D2, D3, D2, D1])
        assert changes(ch_client, db) == expected_changes()
        history = f"SELECT * FROM {db}.index_membership ORDER BY index_name, symbol, valid_from"
        backwards = ch_client.execute(history)
        load_days(ch_client, db, sorted(SNAPSHOTS))
        assert ch_client.execute(history) == backwards
        assert ch_client.execute(f"SELECT count() FROM {db}.index_constituents") == [
            (sum(len(s) for day in SNAPSHOTS.values() for s in day.values()),)
        ]

    def test_reloading_a_day_with_another_list(self, ch_client, db):
        """A day reloaded with a corrected list replaces its snapshot, and the changes follow."""
        load_days(ch_client, db, sorted(SNAPSHOTS))
        corrected = snapshot(D2).filter(pl.col("symbol") != "D")
        load(ch_client, DATASET, D2, corrected, db)
        assert ("NIFTY 50", D2, "D", "inclusion") not in changes(ch_client, db)
        assert index_membership.members_on(ch_client, "NIFTY 50", D2, db) == ["A", "B"]


def test_same_history_on_current_clickhouse(tmp_path):
    """The views give the same changes on a current ClickHouse (chdb) as on 18.16."""
    chdb_session = pytest.importorskip("chdb.session")
    session = chdb_session.Session(str(tmp_path / "chdb"))
    try:
        client = ChdbClient(session)
        migrate(client, "nse")
        load_days(client, "nse", [D3, D1, D4, D2])
        assert changes(client, "nse") == expected_changes()
        assert index_membership.members_on(client, "NIFTY 50", dt.date(2024, 7, 3)) == [
            "A",
            "B",
            "D",
        ]
    finally:
        session.close()
