"""Frames reach ClickHouse in its Native format exactly as clickhouse-driver would send them."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from clickhouse_driver import Client

from include.nse import native, sources, warehouse

pytestmark = pytest.mark.clickhouse

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
EVERY_TYPE = """(
    d Date, ts DateTime('Asia/Kolkata'), at Nullable(DateTime('UTC')), s String,
    ns Nullable(String), f Float64, nf Nullable(Float64), u64 UInt64, nu Nullable(UInt64),
    i64 Nullable(Int64), u32 UInt32, u8 UInt8, arr Array(Float64), nd Nullable(Date)
) ENGINE = Memory"""


def every_type() -> pl.DataFrame:
    """Edge values of every type the warehouse's tables use: nulls, empty and long strings
    (one-, two- and three-byte length prefixes), the ends of each range, empty arrays."""
    return pl.DataFrame(
        {
            "d": [dt.date(2024, 7, 5), dt.date(1970, 1, 1), dt.date(2149, 6, 6)],
            "ts": pl.Series([dt.datetime(2024, 7, 5, 15, 30, tzinfo=IST)] * 3).dt.convert_time_zone(
                "Asia/Kolkata"
            ),
            "at": [
                dt.datetime(2024, 7, 5, 10, tzinfo=dt.UTC),
                None,
                dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
            ],
            "s": ["M&M", "", "x" * 200],
            "ns": [None, "नमस्ते", "é" * 20_000],
            "f": [1.5, -0.0, 1e300],
            "nf": [None, 2.5, float("inf")],
            "u64": [0, 2**64 - 1, 5],
            "nu": [None, 7, 2**63],
            "i64": [-5, None, 2**62],
            "u32": [1, 2, 3],
            "u8": [0, 1, 255],
            "arr": [[1.0, 2.0], [], [3.5]],
            "nd": [None, dt.date(2024, 1, 1), None],
        },
        schema_overrides={"u64": pl.UInt64, "nu": pl.UInt64, "u32": pl.UInt32, "u8": pl.UInt8},
    )


@pytest.fixture()
def table(ch_client, ch_database) -> str:
    name = f"{ch_database}.every_type"
    ch_client.execute(f"CREATE TABLE {name} {EVERY_TYPE}")
    return name


def _rows(client: Client, table: str) -> list[tuple]:
    return client.execute(f"SELECT * FROM {table} ORDER BY u32")


class TestInsert:
    def test_every_type_reads_back_as_the_driver_writes_it(self, ch_client, table):
        """The same frame sent Native and sent value by value reads back identically."""
        frame = every_type()
        assert native.insert(ch_client, table, frame) == frame.height
        sent_native = _rows(ch_client, table)
        ch_client.execute(f"TRUNCATE TABLE {table}")
        columns = warehouse.to_columns(frame)
        ch_client.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES",
            list(columns.values()),
            columnar=True,
        )
        assert sent_native == _rows(ch_client, table)
        assert sent_native[1][4] == "नमस्ते" and sent_native[2][4] == "é" * 20_000
        assert [row[2] is None for row in sent_native] == [False, True, False]

    def test_many_blocks_keep_every_row_in_order(self, ch_client, table):
        """A frame larger than one block arrives whole."""
        frame = pl.concat([every_type()] * 50).with_columns(u32=pl.int_range(150, dtype=pl.UInt32))
        assert native.insert(ch_client, table, frame, block_rows=7) == 150
        assert [row[10] for row in _rows(ch_client, table)] == list(range(150))

    @pytest.mark.parametrize(
        ("column", "values", "message"),
        [
            ("u32", pl.Series([-1, 2, 3]), "u32: values -1..3 outside UInt32"),
            ("u8", pl.Series([0, 256, 1]), "u8: values 0..256 outside UInt8"),
            ("s", pl.Series(["a", None, "c"]), "s: nulls for String"),
            ("d", pl.Series([dt.date(1969, 12, 31)] * 3), "d: dates outside"),
        ],
    )
    def test_values_a_column_cannot_hold_send_nothing(
        self, ch_client, table, column, values, message
    ):
        """A value the server's type cannot hold is refused by name, and no row is written."""
        frame = every_type().with_columns(values.alias(column))
        with pytest.raises(ValueError, match=message):
            native.insert(ch_client, table, frame)
        assert _rows(ch_client, table) == []
        assert ch_client.execute("SELECT 1") == [(1,)]  # the connection is still usable

    def test_what_it_cannot_encode_is_left_to_the_driver(self, ch_client, ch_database):
        """A type not encoded here returns None having sent nothing; the warehouse then inserts
        the driver's way."""
        name = f"{ch_database}.decimals"
        ch_client.execute(f"CREATE TABLE {name} (x Decimal(10, 2)) ENGINE = Memory")
        frame = pl.DataFrame({"x": [1.25]})
        assert native.insert(ch_client, name, frame) is None
        assert ch_client.execute(f"SELECT count() FROM {name}") == [(0,)]
        assert warehouse.insert_columns(ch_client, name, frame) == 1
        assert ch_client.execute(f"SELECT toString(x) FROM {name}") == [("1.25",)]


def test_a_real_fo_day_loads_the_same_either_way(ch_client, ch_database, samples_dir):
    """A real F&O bhavcopy, with its null strikes and option types, loads identically through
    the Native encoder and through clickhouse-driver."""
    dataset = sources.get("fo_bhavcopy")
    path = samples_dir / "fo_bhavcopy" / "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"
    frame = dataset.parse(path.read_bytes(), path.name)
    warehouse.migrate(ch_client, ch_database)
    target = f"{ch_database}.{dataset.table}"
    ch_client.execute(f"CREATE TABLE {ch_database}.by_driver AS {target}")
    assert native.insert(ch_client, target, frame) == frame.height
    columns = warehouse.to_columns(frame)
    ch_client.execute(
        f"INSERT INTO {ch_database}.by_driver ({', '.join(columns)}) VALUES",
        list(columns.values()),
        columnar=True,
    )
    order = "ORDER BY instrument, symbol, expiry_date, strike_price, option_type"
    listed = ", ".join(dataset.column_names)
    native_rows = ch_client.execute(f"SELECT {listed} FROM {target} {order}")
    assert native_rows == ch_client.execute(f"SELECT {listed} FROM {ch_database}.by_driver {order}")
    nulls = ch_client.execute(f"SELECT countIf(strike_price IS NULL) FROM {target}")[0][0]
    assert nulls == frame["strike_price"].null_count() > 0
