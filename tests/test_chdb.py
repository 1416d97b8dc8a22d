"""The migrations and the partition load also run on a current ClickHouse (chdb, in process)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from clickhouse_driver.util.escape import escape_param, escape_params
from test_warehouse import DAY, NEXT_DAY, bhavcopy_frame

from include.nse import sources
from include.nse.warehouse import load_partition, migrate, table_columns

chdb_session = pytest.importorskip("chdb.session")


class ChdbClient:
    """The slice of `clickhouse_driver.Client.execute` the warehouse uses, run on chdb.

    Parameters are rendered with clickhouse-driver's own escaping, so the SQL that reaches chdb
    is the SQL the driver would send. Rows passed for an INSERT become VALUES text here; that is
    fine in process, unlike on the 18.16 server where the warehouse always sends them as data.
    """

    def __init__(self, session):
        self.session = session
        self.queries: list[str] = []

    def execute(self, query, params=None, *, columnar=False, query_id=None, **kwargs):
        if query.rstrip().upper().endswith("VALUES"):
            rows = zip(*params, strict=True) if columnar else (row.values() for row in params)
            query += " " + ", ".join(
                "(" + ", ".join(str(escape_param(v, None)) for v in row) + ")" for row in rows
            )
        elif params:
            query %= escape_params(params, None)
        self.queries.append(query)
        result = self.session.query(query, "Arrow").bytes()
        if not result:
            return []
        table = pa.ipc.open_file(pa.py_buffer(result)).read_all()
        return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


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
        load_partition(chdb, dataset, DAY, bhavcopy_frame(DAY, ["A", "B", "C"]), "nse")
        load_partition(chdb, dataset, DAY, bhavcopy_frame(DAY, ["A", "B", "C"]), "nse")
        load_partition(chdb, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, ["X"]), "nse")
        assert volume_by_date(chdb) == {DAY: (3, 303), NEXT_DAY: (1, 100)}
        assert any("REPLACE PARTITION '2024-07-05' FROM" in q for q in chdb.queries)
        load_partition(chdb, dataset, NEXT_DAY, bhavcopy_frame(NEXT_DAY, []), "nse")
        assert volume_by_date(chdb) == {DAY: (3, 303)}
        assert chdb.execute("SELECT name FROM system.tables WHERE name LIKE '%__stage_%'") == []
