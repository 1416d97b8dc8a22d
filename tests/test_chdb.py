"""The migrations and the partition load also run on a current ClickHouse (chdb, in process)."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from include.nse import sources
from include.nse.warehouse import load, migrate, table_columns
from tests.helpers import DAY, NEXT_DAY, ChdbClient, bhavcopy_frame

chdb_session = pytest.importorskip("chdb.session")


@pytest.fixture(scope="module")
def chdb(tmp_path_factory):
    session = chdb_session.Session(str(tmp_path_factory.mktemp("chdb")))
    yield ChdbClient(session)
    session.close()


def volume_by_date(client) -> dict[dt.date, tuple[int, int]]:
    rows = client.execute(
        "SELECT trade_date, count(), sum(volume) FROM nse.cm_bhavcopy GROUP BY trade_date"
    )
    return {day: (n, total) for day, n, total in rows}


class TestOnCurrentClickHouse:
    def test_migrations_apply_once(self, chdb):
        """Every migration file applies, and a second run applies none."""
        version = chdb.execute("SELECT version()")[0][0]
        assert int(version.split(".")[0]) >= 24
        assert migrate(chdb, "nse") != []
        assert migrate(chdb, "nse") == []

    def test_ddl_matches_the_silver_schema(self, chdb):
        """Tables created by the same DDL have the silver columns plus loaded_at."""
        for name in sources.names():
            dataset = sources.get(name)
            expected = [(c.name, c.ch_type) for c in dataset.columns] + [("loaded_at", "DateTime")]
            assert table_columns(chdb, "nse", dataset.table) == expected

    def test_partition_load_is_idempotent(self, chdb):
        """The staged REPLACE PARTITION load, run twice, leaves one copy; empty clears a date."""
        dataset = sources.get("cm_bhavcopy")
        load(chdb, dataset, DAY, bhavcopy_frame(DAY, ["A", "B", "C"]), "nse")
        load(chdb, dataset, DAY, bhavcopy_frame(DAY, ["A", "B", "C"]), "nse")
        load(chdb, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, ["X"]), "nse")
        assert volume_by_date(chdb) == {DAY: (3, 303), NEXT_DAY: (1, 100)}
        assert any("REPLACE PARTITION '2024-07-05' FROM" in q for q in chdb.queries)
        load(chdb, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, []), "nse")
        assert volume_by_date(chdb) == {DAY: (3, 303)}
        assert chdb.execute("SELECT name FROM system.tables WHERE name LIKE '%__stage_%'") == []

    def test_blank_numbers_load_as_nulls(self, chdb):
        """After the blank-number migration a null close and volume load as nulls."""
        migrate(chdb, "nse")
        dataset = sources.get("cm_bhavcopy")
        day = dt.date(2024, 7, 9)
        frame = bhavcopy_frame(day, ["A", "B"]).with_columns(
            close=pl.when(pl.col("symbol") == "A").then(None).otherwise(pl.col("close")),
            volume=pl.when(pl.col("symbol") == "A").then(None).otherwise(pl.col("volume")),
        )
        load(chdb, dataset, day, frame, "nse")
        assert chdb.execute(
            "SELECT symbol, close, volume FROM nse.cm_bhavcopy WHERE trade_date = '2024-07-09' "
            "ORDER BY symbol"
        ) == [("A", None, None), ("B", 11.0, 101)]
