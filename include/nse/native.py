"""Rows into ClickHouse at the speed of its Native format: polars columns encoded with numpy.

clickhouse-driver turns every value into a Python object on its way to the server (about 0.1M
F&O rows a second here), and its numpy mode loses nulls in Nullable integer columns. ClickHouse's
Native format is each column's values laid end to end (numbers as little-endian machine values,
a Date as days and a DateTime as seconds since 1970, a String as a varint length and its bytes,
a Nullable column as a byte per row saying null then the values, an Array as end offsets then
the flattened values), which a polars column becomes with a few numpy operations on its Arrow
buffers.

`insert` sends a frame as Native blocks over the client's own native-protocol connection: the
same steps as clickhouse-driver's inserts (the query, the server's sample block with the
table's column types, data blocks, an empty block to end) with the columns encoded here instead
of value by value. The server's types decide the encoding, and a column whose values cannot be
sent as that type exactly (a negative number for an unsigned column, a date outside 1970-2149)
is refused with its name; a type not encoded here, or a compressed connection, goes through
clickhouse-driver's own insert.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from include.nse.names import identifier, qualified_name

if TYPE_CHECKING:
    from clickhouse_driver import Client

#: Rows per Native block: bounds the memory of one encoded block.
BLOCK_ROWS = 262_144
_FIXED = {
    "UInt8": np.uint8,
    "UInt16": np.uint16,
    "UInt32": np.uint32,
    "UInt64": np.uint64,
    "Int8": np.int8,
    "Int16": np.int16,
    "Int32": np.int32,
    "Int64": np.int64,
    "Float32": np.float32,
    "Float64": np.float64,
}
_WRAPPED = re.compile(r"(Nullable|Array)\((.*)\)$")


class Unsupported(TypeError):
    """A ClickHouse type this module does not encode."""


def _varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ClickHouse's unsigned LEB128 varints of `values`: (bytes, bytes per value)."""
    values = values.astype(np.uint64)
    sizes = np.ones(values.size, dtype=np.int64)
    for bits in range(7, 64, 7):
        sizes += values >= (np.uint64(1) << np.uint64(bits))
    out = np.zeros(int(sizes.sum()), dtype=np.uint8)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rest = values.copy()
    for byte in range(int(sizes.max(initial=1))):
        live = sizes > byte
        more = sizes[live] > byte + 1
        out[starts[live] + byte] = (rest[live] & np.uint64(0x7F)).astype(np.uint8) | np.where(
            more, 0x80, 0
        ).astype(np.uint8)
        rest[live] >>= np.uint64(7)
    return out, sizes


def _strings(array: pa.Array) -> bytes:
    """A String column: each value's varint length, then its UTF-8 bytes (nulls as '')."""
    array = pc.fill_null(array.cast(pa.large_string()), "")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[
        array.offset : array.offset + len(array) + 1
    ]
    data = np.frombuffer(array.buffers()[2] or b"", dtype=np.uint8)[offsets[0] : offsets[-1]]
    lengths = np.diff(offsets)
    headers, sizes = _varints(lengths)
    out = np.empty(headers.size + data.size, dtype=np.uint8)
    # Each value's header sits before its bytes: value i starts after i headers and its offset.
    value_starts = offsets[:-1] - offsets[0] + np.concatenate(([0], np.cumsum(sizes)[:-1]))
    header_at = np.repeat(value_starts, sizes) + (
        np.arange(headers.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    )
    out[header_at] = headers
    data_at = np.arange(data.size) + np.repeat(np.cumsum(sizes), lengths)
    out[data_at] = data
    return out.tobytes()


def _numbers(series: pl.Series, dtype: type) -> bytes:
    values = series.fill_null(0).to_numpy()
    return values.astype(np.dtype(dtype).newbyteorder("<"), copy=False).tobytes()


def _base(ch_type: str) -> str:
    wrapped = _WRAPPED.match(ch_type)
    return _base(wrapped.group(2)) if wrapped else ch_type


def check(series: pl.Series, ch_type: str) -> None:
    """Refuse, naming the column, what `encode` would not send exactly as `ch_type`."""
    name, base = series.name, _base(ch_type)
    if ch_type.startswith("Array(") and not isinstance(series.dtype, pl.List):
        raise Unsupported(f"column {name}: {series.dtype} for {ch_type}")
    if ch_type.startswith("Array(") and series.null_count():
        raise ValueError(f"column {name}: a null array for {ch_type}")
    values = series.explode() if isinstance(series.dtype, pl.List) else series
    if (
        not ch_type.startswith("Nullable(")
        and not ch_type.startswith("Array(")
        and values.null_count()
    ):
        raise ValueError(f"column {name}: nulls for {ch_type}")
    if base in _FIXED and np.issubdtype(_FIXED[base], np.integer):
        info = np.iinfo(_FIXED[base])
        low, high = values.min(), values.max()
        if low is not None and (low < info.min or high > info.max):
            raise ValueError(f"column {name}: values {low}..{high} outside {base}")
    elif base == "Date":
        days = values.cast(pl.Date).cast(pl.Int32)
        if days.min() is not None and (days.min() < 0 or days.max() > 65535):
            raise ValueError(f"column {name}: dates outside 1970-01-01..2149-06-06 for Date")
    elif base == "DateTime" or base.startswith("DateTime('"):
        seconds = values.dt.epoch("s")
        if seconds.min() is not None and (seconds.min() < 0 or seconds.max() >= 2**32):
            raise ValueError(f"column {name}: times outside 1970..2106 for {base}")
    elif base not in _FIXED and base != "String":
        raise Unsupported(f"column {name}: ClickHouse type {ch_type} is not encoded here")


def encode(series: pl.Series, ch_type: str) -> bytes:
    """`series` as the Native column of ClickHouse type `ch_type` (checked with `check`)."""
    wrapped = _WRAPPED.match(ch_type)
    if wrapped and wrapped.group(1) == "Nullable":
        nulls = series.is_null().to_numpy().astype(np.uint8)
        return nulls.tobytes() + encode(series, wrapped.group(2))
    if wrapped:  # Array: each row's end offset, then the values of every row
        ends = series.list.len().cast(pl.UInt64).cum_sum().to_numpy()
        return ends.astype("<u8").tobytes() + encode(series.explode(), wrapped.group(2))
    if ch_type in _FIXED:
        return _numbers(series, _FIXED[ch_type])
    if ch_type == "String":
        return _strings(series.to_arrow())
    if ch_type == "Date":
        return _numbers(series.cast(pl.Date).cast(pl.Int32), np.uint16)
    if series.dtype.time_zone:  # DateTime: seconds since 1970 in UTC
        series = series.dt.convert_time_zone("UTC")
    return _numbers(series.dt.epoch("s"), np.uint32)


def insert(
    client: Client, table: str, frame: pl.DataFrame, *, block_rows: int = BLOCK_ROWS
) -> int | None:
    """Insert `frame` into `table` (`database.name`) as Native blocks; the rows sent, or None,
    having sent nothing, for a frame to insert clickhouse-driver's way (a type not encoded here,
    a compressed connection, a client that only looks like one). Values a column cannot hold
    raise ValueError, naming the column, and send nothing; so do names that are not plain
    identifiers."""
    from clickhouse_driver import Client
    from clickhouse_driver.block import ColumnOrientedBlock

    columns = ", ".join(map(identifier, frame.columns))
    query = f"INSERT INTO {qualified_name(table)} ({columns}) VALUES"
    if frame.is_empty():
        return 0
    if not isinstance(client, Client) or client.connection.compression:
        return None
    new_query_id = getattr(client, "new_query_id", None)
    refused: Exception | None = None
    with client.disconnect_on_error(query, None):
        connection = client.connection
        connection.send_query(query, query_id=new_query_id("insert") if new_query_id else None)
        connection.send_external_tables(None)
        types = dict(client.receive_sample_block().columns_with_types)
        try:
            for name in frame.columns:
                check(frame[name], types[name])
        except (Unsupported, ValueError) as e:
            refused = e  # end the insert with no rows before saying so
        if refused is None:
            for part in frame.iter_slices(block_rows):
                columns = [
                    (name, types[name], encode(part[name], types[name])) for name in part.columns
                ]
                _send_block(connection, columns, part.height)
                client.receive_profile_events()
        connection.send_data(ColumnOrientedBlock())
        client.receive_profile_events()
        client.receive_end_of_insert_query()
    if isinstance(refused, Unsupported):
        return None
    if refused is not None:
        raise refused
    return frame.height


def _send_block(connection, columns: list[tuple[str, str, bytes]], rows: int) -> None:
    """One Data packet of pre-encoded columns, as clickhouse-driver's block stream writes it."""
    from clickhouse_driver import defines
    from clickhouse_driver.block import BlockInfo
    from clickhouse_driver.protocol import ClientPacketTypes
    from clickhouse_driver.varint import write_varint
    from clickhouse_driver.writer import write_binary_str, write_binary_uint8

    out = connection.fout
    revision = connection.server_info.used_revision
    write_varint(ClientPacketTypes.DATA, out)
    if revision >= defines.DBMS_MIN_REVISION_WITH_TEMPORARY_TABLES:
        write_binary_str("", out)
    if revision >= defines.DBMS_MIN_REVISION_WITH_BLOCK_INFO:
        BlockInfo().write(out)
    write_varint(len(columns), out)
    write_varint(rows, out)
    for name, ch_type, data in columns:
        write_binary_str(name, out)
        write_binary_str(ch_type, out)
        if revision >= defines.DBMS_MIN_REVISION_WITH_CUSTOM_SERIALIZATION:
            write_binary_uint8(0, out)
        out.write(data)
    out.flush()
