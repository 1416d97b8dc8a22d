"""The warehouse migrates once, loads a trade date (or a year) idempotently, adds only new
snapshots, and matches the silver schema."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import time

import polars as pl
import pytest

from include.nse import sources
from include.nse.warehouse import (
    SQL_DIR,
    MigrationError,
    drop_stale_stages,
    insert_new,
    load,
    migrate,
    query_polars,
    server_epoch,
    split_statements,
    table_columns,
)
from tests.helpers import DAY, NEXT_DAY, bhavcopy_frame, create_stages, stage_tables

pytestmark = pytest.mark.clickhouse

MIGRATIONS = sorted(p.name for p in SQL_DIR.glob("*.sql"))


def counts(client, database: str) -> dict[dt.date, tuple[int, int]]:
    """trade_date -> (rows, sum of volume) in cm_bhavcopy."""
    rows = client.execute(
        f"SELECT trade_date, count(), sum(volume) FROM {database}.cm_bhavcopy "
        "GROUP BY trade_date ORDER BY trade_date"
    )
    return {day: (n, total) for day, n, total in rows}


class FailingOn:
    """A client that raises instead of running queries containing `text`."""

    def __init__(self, text: str, client):
        self.text, self.client = text, client

    def execute(self, query, *args, **kwargs):
        if self.text in query:
            raise ConnectionError("connection lost")
        return self.client.execute(query, *args, **kwargs)


class Recording:
    """A client that runs every query and keeps its text."""

    def __init__(self, client):
        self.client, self.queries = client, []

    def execute(self, query, *args, **kwargs):
        self.queries.append(query)
        return self.client.execute(query, *args, **kwargs)


@pytest.fixture()
def migrated(ch_client, ch_database):
    migrate(ch_client, ch_database)
    return ch_database


class TestSplitStatements:
    def test_splits_at_line_end_semicolons_and_drops_comment_lines(self):
        """Only `;` at the end of a line separates; comment-only chunks vanish."""
        sql = "-- head; note;\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Log;\n\n-- tail\n"
        assert split_statements(sql + "SELECT 1;  \n-- done;\n") == [
            "CREATE TABLE a (x String DEFAULT ';')\nENGINE = Log",
            "SELECT 1",
        ]


class TestMigrate:
    def test_second_run_is_a_no_op(self, ch_client, ch_database):
        """The first run applies every file and records it; the second applies nothing."""
        assert migrate(ch_client, ch_database) == MIGRATIONS
        assert migrate(ch_client, ch_database) == []
        recorded = ch_client.execute(
            f"SELECT name, length(sha256), applied_at > toDateTime(0) "
            f"FROM {ch_database}.schema_migrations ORDER BY name"
        )
        assert recorded == [(name, 64, 1) for name in MIGRATIONS]

    def test_applies_only_new_files(self, ch_client, ch_database, tmp_path):
        """A file added later is applied on the next run, alone."""
        sql_dir = tmp_path / "sql"
        shutil.copytree(SQL_DIR, sql_dir)
        migrate(ch_client, ch_database, sql_dir)
        (sql_dir / "9999_extra.sql").write_text(
            "CREATE TABLE IF NOT EXISTS {db}.extra (x UInt8) ENGINE = Log;\n"
            "INSERT INTO {db}.extra SELECT 1;\n"
        )
        assert migrate(ch_client, ch_database, sql_dir) == ["9999_extra.sql"]
        assert ch_client.execute(f"SELECT x FROM {ch_database}.extra") == [(1,)]

    def test_changed_applied_file_is_refused(self, ch_client, ch_database, tmp_path):
        """Editing an applied file stops the run before anything else is applied."""
        sql_dir = tmp_path / "sql"
        shutil.copytree(SQL_DIR, sql_dir)
        migrate(ch_client, ch_database, sql_dir)
        changed = sql_dir / MIGRATIONS[1]
        changed.write_text(changed.read_text() + "\n-- edited\n")
        (sql_dir / "9999_extra.sql").write_text("CREATE TABLE {db}.extra (x UInt8) ENGINE = Log;\n")
        with pytest.raises(MigrationError, match=MIGRATIONS[1]):
            migrate(ch_client, ch_database, sql_dir)
        assert table_columns(ch_client, ch_database, "extra") == []

    def test_creates_the_database(self, ch_client, ch_database):
        """A database that does not exist yet is created."""
        other = f"{ch_database}_new"
        try:
            assert migrate(ch_client, other) == MIGRATIONS
        finally:
            ch_client.execute(f"DROP DATABASE IF EXISTS {other}")


class TestTableColumns:
    @pytest.mark.parametrize("name", sources.names())
    def test_ddl_matches_the_silver_schema(self, ch_client, migrated, name):
        """Each dataset table has exactly the silver columns and types, in order, plus loaded_at."""
        dataset = sources.get(name)
        expected = [(c.name, c.ch_type) for c in dataset.columns] + [("loaded_at", "DateTime")]
        assert table_columns(ch_client, migrated, dataset.table) == expected


class TestLoad:
    def test_rerun_leaves_exactly_one_copy(self, ch_client, migrated):
        """Loading the same date twice leaves the second frame only, and no staging table."""
        dataset = sources.get("cm_bhavcopy")
        load(ch_client, dataset, DAY, bhavcopy_frame(DAY, ["A", "B", "C"]), migrated)
        stats = load(
            ch_client, dataset, DAY, bhavcopy_frame(DAY, ["A", "B", "C"], volume=1000), migrated
        )
        assert counts(ch_client, migrated) == {DAY: (3, 1000 + 1001 + 1002)}
        assert stats["table"] == f"{migrated}.cm_bhavcopy"
        assert stats["trade_date"] == "2024-07-05"
        assert stats["rows"] == 3
        assert stats["partitions"] == ["2024-07-05"]
        assert stage_tables(ch_client, migrated) == []

    def test_round_trips_values_and_nulls(self, ch_client, migrated):
        """What comes back equals the frame that went in, nulls included; loaded_at is set."""
        dataset = sources.get("cm_bhavcopy")
        frame = bhavcopy_frame(DAY, ["A", "B", "C", "D"])
        load(ch_client, dataset, DAY, frame, migrated)
        back = query_polars(
            ch_client,
            f"SELECT * FROM {migrated}.cm_bhavcopy WHERE trade_date = %(d)s ORDER BY symbol",
            {"d": DAY},
        )
        assert back.drop("loaded_at").equals(frame)
        assert back.get_column("loaded_at").null_count() == 0

    def test_second_date_leaves_the_first_alone(self, ch_client, migrated):
        """Loading and reloading another date does not change the first date's rows."""
        dataset = sources.get("cm_bhavcopy")
        load(ch_client, dataset, DAY, bhavcopy_frame(DAY, ["A", "B"]), migrated)
        load(ch_client, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, ["X"]), migrated)
        load(ch_client, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, ["X", "Y"]), migrated)
        assert counts(ch_client, migrated) == {DAY: (2, 201), NEXT_DAY: (2, 201)}

    def test_empty_frame_clears_the_date(self, ch_client, migrated):
        """An empty frame leaves the date with zero rows and other dates untouched."""
        dataset = sources.get("cm_bhavcopy")
        load(ch_client, dataset, DAY, bhavcopy_frame(DAY, ["A", "B"]), migrated)
        load(ch_client, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, ["X"]), migrated)
        stats = load(ch_client, dataset, DAY, bhavcopy_frame(DAY, []), migrated)
        assert stats["rows"] == 0
        assert counts(ch_client, migrated) == {NEXT_DAY: (1, 100)}
        load(ch_client, dataset, DAY, bhavcopy_frame(DAY, []), migrated)

    def test_frame_with_two_dates_is_refused(self, ch_client, migrated):
        """Rows of another date are refused before anything is written."""
        dataset = sources.get("cm_bhavcopy")
        load(ch_client, dataset, DAY, bhavcopy_frame(DAY, ["A"]), migrated)
        frame = pl.concat([bhavcopy_frame(DAY, ["A"]), bhavcopy_frame(NEXT_DAY, ["B"])])
        with pytest.raises(ValueError, match="2024-07-08"):
            load(ch_client, dataset, DAY, frame, migrated)
        assert counts(ch_client, migrated) == {DAY: (1, 100)}
        assert stage_tables(ch_client, migrated) == []

    def test_frame_for_another_date_is_refused(self, ch_client, migrated):
        """A frame whose rows all belong to another date is refused too."""
        dataset = sources.get("cm_bhavcopy")
        with pytest.raises(ValueError, match="one trade date at a time"):
            load(ch_client, dataset, DAY, bhavcopy_frame(NEXT_DAY, ["A"]), migrated)

    def test_wrong_columns_are_refused(self, ch_client, migrated):
        """Missing and unexpected columns are both named in the error."""
        dataset = sources.get("cm_bhavcopy")
        frame = bhavcopy_frame(DAY, ["A"]).drop("isin").with_columns(pl.lit(1).alias("extra"))
        with pytest.raises(ValueError, match=r"missing \['isin'\], unexpected \['extra'\]"):
            load(ch_client, dataset, DAY, frame, migrated)
        assert counts(ch_client, migrated) == {}

    def test_nulls_in_non_nullable_columns_are_refused(self, ch_client, migrated):
        """A null symbol (a key column) is refused with the column's name, not a driver error."""
        dataset = sources.get("cm_bhavcopy")
        frame = bhavcopy_frame(DAY, ["A"]).with_columns(pl.lit(None, pl.String).alias("symbol"))
        with pytest.raises(ValueError, match=r"non-nullable column\(s\) \['symbol'\]"):
            load(ch_client, dataset, DAY, frame, migrated)
        assert counts(ch_client, migrated) == {}

    def test_blank_numbers_load_as_nulls(self, ch_client, migrated):
        """Numbers NSE left blank (null in silver, passed by the gate) reach the table as nulls."""
        dataset = sources.get("cm_bhavcopy")
        blank = ["open", "close", "volume", "turnover"]
        frame = bhavcopy_frame(DAY, ["A", "B"]).with_columns(
            pl.when(pl.col("symbol") == "B").then(pl.col(blank)).otherwise(None)
        )
        load(ch_client, dataset, DAY, frame, migrated)
        back = query_polars(
            ch_client,
            f"SELECT symbol, {', '.join(blank)} FROM {migrated}.cm_bhavcopy ORDER BY symbol",
        )
        assert back.rows() == [("A", None, None, None, None), ("B", 10.0, 11.0, 101, 1e6)]

    def test_failed_replace_drops_the_stage_and_keeps_the_date(self, ch_client, migrated):
        """When the swap fails, the date keeps its rows and no staging table is left."""
        dataset = sources.get("cm_bhavcopy")
        load(ch_client, dataset, DAY, bhavcopy_frame(DAY, ["A"]), migrated)
        with pytest.raises(ConnectionError, match="lost"):
            load(
                FailingOn("REPLACE PARTITION", ch_client),
                dataset,
                DAY,
                bhavcopy_frame(DAY, ["B", "C"]),
                migrated,
            )
        assert counts(ch_client, migrated) == {DAY: (1, 100)}
        assert stage_tables(ch_client, migrated) == []

    def test_stage_left_by_a_dead_load_is_dropped(self, ch_client, migrated):
        """A staging table an hour old (its load died) goes with the next load of the table;
        a fresh one, a load still at work, stays."""
        old = f"cm_bhavcopy__stage_{int(time.time()) - 2 * 3600}_0123abcd"
        fresh = f"cm_bhavcopy__stage_{int(time.time())}_4567abcd"
        create_stages(ch_client, migrated, old, fresh)
        load(ch_client, sources.get("cm_bhavcopy"), DAY, bhavcopy_frame(DAY, ["A"]), migrated)
        assert stage_tables(ch_client, migrated) == [fresh]

    def test_stage_of_an_earlier_server_start_is_dropped_however_fresh(self, ch_client, migrated):
        """A stage whose epoch token is not the server's current one was made before the server
        last started: the next load drops it though it is a second old. A stage of the current
        start stays, and the load's own stage carries the current token."""
        epoch = server_epoch(ch_client, migrated)
        assert server_epoch(ch_client, migrated) == epoch  # one token per start
        other = "0123abcd" if epoch != "0123abcd" else "4567cdef"
        now = int(time.time())
        earlier, current = (
            f"cm_bhavcopy__stage_{now}_{other}_89abcdef",
            f"cm_bhavcopy__stage_{now}_{epoch}_fedcba98",
        )
        create_stages(ch_client, migrated, earlier, current)
        client = Recording(ch_client)
        load(client, sources.get("cm_bhavcopy"), DAY, bhavcopy_frame(DAY, ["A"]), migrated)
        assert stage_tables(ch_client, migrated) == [current]
        (created,) = [q for q in client.queries if q.startswith("CREATE TABLE")]
        assert re.fullmatch(
            rf"CREATE TABLE {migrated}\.cm_bhavcopy__stage_\d{{10}}_{epoch}_[0-9a-f]{{8}} "
            rf"AS {migrated}\.cm_bhavcopy",
            created,
        ), created

    def test_stale_stages_of_a_whole_database_are_dropped(self, ch_client, migrated):
        """Housekeeping's call: stale stages of every table of the database go, fresh ones
        and tables that only look like stages stay; `older_than` sets what is stale."""
        now = int(time.time())
        old = [
            f"cm_bhavcopy__stage_{now - 7200}_0123abcd",
            f"cm_delivery__stage_{now - 4000}_89abcdef",
        ]
        fresh = f"cm_delivery__stage_{now - 60}_4567abcd"
        lookalike = "cm_delivery__stage_notes"
        create_stages(ch_client, migrated, *old, fresh, lookalike)
        assert sorted(drop_stale_stages(ch_client, migrated)) == old
        assert stage_tables(ch_client, migrated) == sorted([fresh, lookalike])
        assert drop_stale_stages(ch_client, migrated, older_than=0) == [fresh]
        assert stage_tables(ch_client, migrated) == [lookalike]


class TestYearPartitions:
    def test_each_year_of_the_frame_is_replaced(self, ch_client, migrated):
        """A list partitioned by year (holidays) replaces each year it holds; others stay."""
        dataset = sources.get("holidays")

        def holidays(*days: dt.date, description: str = "Holiday") -> pl.DataFrame:
            return dataset.conform(
                pl.DataFrame(
                    {
                        "date": list(days),
                        "segment": ["CM"] * len(days),
                        "description": [description] * len(days),
                        "weekday": [d.strftime("%A") for d in days],
                        "morning_session": [None] * len(days),
                        "evening_session": [None] * len(days),
                    }
                )
            )

        first = holidays(dt.date(2024, 1, 26), dt.date(2025, 1, 26), dt.date(2025, 2, 26))
        stats = load(ch_client, dataset, DAY, first, migrated)
        assert stats["partitions"] == ["2024", "2025"]
        load(ch_client, dataset, DAY, holidays(dt.date(2025, 3, 14), description="Holi"), migrated)
        rows = ch_client.execute(
            f"SELECT date, description FROM {migrated}.{dataset.table} ORDER BY date"
        )
        assert rows == [(dt.date(2024, 1, 26), "Holiday"), (dt.date(2025, 3, 14), "Holi")]


class TestInsertNew:
    def test_rows_already_held_are_not_inserted_again(self, ch_client, migrated):
        """Inserting overlapping frames by a key adds only the rows whose key is new."""
        frame = bhavcopy_frame(DAY, ["A", "B"])
        assert insert_new(ch_client, "cm_bhavcopy", frame, ["symbol"], migrated) == 2
        again = pl.concat([frame, bhavcopy_frame(DAY, ["C"], volume=500)])
        assert insert_new(ch_client, "cm_bhavcopy", again, ["symbol"], migrated) == 1
        assert insert_new(ch_client, "cm_bhavcopy", again.clear(), ["symbol"], migrated) == 0
        assert counts(ch_client, migrated) == {DAY: (3, 100 + 101 + 500)}

    def test_lookup_is_bounded_to_the_frame_dates(self, ch_client, migrated):
        """A key held on another date does not stop a row of this date."""
        insert_new(ch_client, "cm_bhavcopy", bhavcopy_frame(DAY, ["A"]), ["symbol"], migrated)
        frame = bhavcopy_frame(NEXT_DAY, ["A"])
        assert insert_new(ch_client, "cm_bhavcopy", frame, ["symbol"], migrated) == 1


class TestBlankNumbersMigration:
    def test_loaded_rows_survive_and_take_nulls_after(self, ch_client, ch_database, tmp_path):
        """Rows loaded before the blank-number migration keep their values through it, and the
        columns it changes take nulls afterwards."""
        before = tmp_path / "sql"
        before.mkdir()
        for path in SQL_DIR.glob("*.sql"):  # and the epoch table every load's stage needs
            if path.name < "0010" or path.name == "0014_server_epoch.sql":
                (before / path.name).write_text(path.read_text())
        migrate(ch_client, ch_database, before)
        dataset = sources.get("cm_bhavcopy")
        frame = bhavcopy_frame(DAY, ["A", "B"])
        load(ch_client, dataset, DAY, frame, ch_database)
        assert "0010_blank_numbers.sql" in migrate(ch_client, ch_database)
        assert counts(ch_client, ch_database) == {DAY: (2, 201)}
        blank = bhavcopy_frame(NEXT_DAY, ["X"]).with_columns(close=pl.lit(None, pl.Float64))
        load(ch_client, dataset, NEXT_DAY, blank, ch_database)
        assert ch_client.execute(
            f"SELECT trade_date, close FROM {ch_database}.cm_bhavcopy ORDER BY trade_date, symbol"
        ) == [(DAY, 11.0), (DAY, 11.0), (NEXT_DAY, None)]


class TestQueryPolars:
    def test_types_follow_clickhouse(self, ch_client):
        """Column names and polars types come from ClickHouse's column types, even with no rows."""
        sql = (
            "SELECT toDate('2024-07-05') AS d, toUInt64(3) AS n, CAST(NULL AS Nullable(Float64)) "
            "AS f, 'x' AS s, toDateTime('2024-07-05 09:15:00') AS t"
        )
        schema = {
            "d": pl.Date,
            "n": pl.UInt64,
            "f": pl.Float64,
            "s": pl.String,
            "t": pl.Datetime("us"),
        }
        df = query_polars(ch_client, sql)
        assert df.schema == pl.Schema(schema)
        assert df.row(0) == (DAY, 3, None, "x", dt.datetime(2024, 7, 5, 9, 15))
        empty = query_polars(ch_client, sql + " WHERE 0")
        assert empty.height == 0 and empty.schema == pl.Schema(schema)
