"""The ClickHouse hook resolves its connection as documented and talks to a real server."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import socket
import uuid
from types import SimpleNamespace

import polars as pl
import pyarrow as pa
import pytest
from clickhouse_hook import MAX_QUERY_ID_LENGTH, ClickHouseHook, make_query_id

pytestmark = pytest.mark.clickhouse

CONN_ID = "clickhouse_test"
PASSWORD = "pw-Qx7-never-logged"
DAY = dt.date(2024, 7, 5)
TASK_ENV = {
    "AIRFLOW_CTX_DAG_ID": "nse_cm_bhavcopy",
    "AIRFLOW_CTX_TASK_ID": "load_warehouse",
    "AIRFLOW_CTX_DAG_RUN_ID": "manual__2024-07-05T10:00:00+00:00",
    "AIRFLOW_CTX_TRY_NUMBER": "2",
}
TASK_TAG = "nse_cm_bhavcopy.load_warehouse.manual__2024-07-05T10:00:00_00:00.2"


@pytest.fixture(autouse=True)
def outside_a_task(monkeypatch):
    """No task context leaks in from the environment the tests run in."""
    for name in TASK_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture()
def connection(monkeypatch, clickhouse_server):
    """Define `clickhouse_test` through AIRFLOW_CONN_CLICKHOUSE_TEST; returns the setter."""

    def define(**fields):
        conn = {
            "conn_type": "clickhouse",
            "host": clickhouse_server["host"],
            "port": clickhouse_server["port"],
            "login": clickhouse_server["user"],
            "password": clickhouse_server["password"],
            "schema": "default",
            **fields,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
        return conn

    define()
    return define


@pytest.fixture()
def logs(caplog):
    """Everything logged while the test runs, at DEBUG: stdlib records and the hook's own."""
    import structlog
    from structlog.testing import capture_logs

    def hook_line(event: dict) -> str:
        # capture_logs skips Airflow's processors, so %-style arguments are still separate.
        return event["event"] % event.get("positional_args", ()) + repr(event)

    wrapper_class = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with caplog.at_level(logging.DEBUG), capture_logs() as hook_events:
            yield lambda: "\n".join(
                [r.getMessage() + repr(r.args) + str(r.exc_text) for r in caplog.records]
                + [hook_line(event) for event in hook_events]
            )
    finally:
        structlog.configure(wrapper_class=wrapper_class)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_settings(hook: ClickHouseHook, *names: str) -> dict[str, str]:
    rows = hook.execute(
        "SELECT name, value FROM system.settings WHERE name IN %(names)s", {"names": names}
    )
    return dict(rows)


class TestConnectionForm:
    def test_field_behaviour_matches_airflows_schema(self):
        """The UI field behaviour validates against Airflow's own schema and relabels schema."""
        import jsonschema
        from airflow import __file__ as airflow_init

        path = airflow_init.replace("__init__.py", "customized_form_field_behaviours.schema.json")
        behaviour = ClickHouseHook.get_ui_field_behaviour()
        jsonschema.validate(behaviour, json.load(open(path)))
        assert behaviour["relabeling"]["schema"] == "Database"
        assert behaviour["placeholders"]["port"] == "9000"

    def test_widgets_are_provider_conn_fields(self):
        """The extra fields follow provider.yaml's `conn-fields` schema, as Airflow 3 reads it."""
        import jsonschema
        from airflow import __file__ as airflow_init

        path = airflow_init.replace("__init__.py", "provider.yaml.schema.json")
        item = json.load(open(path))["properties"]["connection-types"]["items"]
        fields = ClickHouseHook.get_connection_form_widgets()
        jsonschema.validate(fields, item["properties"]["conn-fields"])
        assert {
            "secure",
            "verify",
            "connect_timeout",
            "send_receive_timeout",
            "compression",
        } <= set(fields)


class TestClientKwargs:
    def test_database_argument_beats_connection_schema(self, connection, ch_database):
        """An explicit database wins over the connection's schema field."""
        connection(schema="system")
        assert ClickHouseHook(CONN_ID).execute("SELECT currentDatabase()") == [("system",)]
        hook = ClickHouseHook(CONN_ID, database=ch_database)
        assert hook.execute("SELECT currentDatabase()") == [(ch_database,)]

    def test_missing_fields_take_defaults(self, connection):
        """No host, port, login or schema: localhost:9000, user and database `default`."""
        connection(host=None, port=None, login=None, schema=None)
        conn = ClickHouseHook(CONN_ID).get_conn().connection
        assert list(conn.hosts) == [("localhost", 9000)]
        assert (conn.user, conn.password, conn.database) == ("default", "", "default")

    def test_extra_settings_reach_the_server_merged_under_arguments(self, connection):
        """Settings from extras reach every query; the settings argument wins key by key."""
        connection(extra={"settings": {"max_block_size": 12345, "max_threads": 3}})
        assert server_settings(ClickHouseHook(CONN_ID), "max_block_size", "max_threads") == {
            "max_block_size": "12345",
            "max_threads": "3",
        }
        hook = ClickHouseHook(CONN_ID, settings={"max_threads": 2})
        assert server_settings(hook, "max_block_size", "max_threads") == {
            "max_block_size": "12345",
            "max_threads": "2",
        }

    def test_extras_given_as_text_are_typed(self, connection):
        """Extras typed into a form as text become the types the driver expects."""
        connection(
            extra={
                "settings": json.dumps({"max_threads": 3}),
                "secure": "false",
                "verify": "true",
                "connect_timeout": "3",
                "extra__clickhouse__send_receive_timeout": "30",
                "compression": "",
            }
        )
        client = ClickHouseHook(CONN_ID).get_conn()
        assert client.settings == {"max_threads": 3}
        assert client.connection.secure_socket is False
        assert client.connection.verify_cert is True
        assert client.connection.connect_timeout == 3.0
        assert client.connection.send_receive_timeout == 30.0

    def test_secure_changes_the_default_port(self, connection):
        """With `secure` and no port, the client uses ClickHouse's TLS port."""
        connection(port=None, extra={"secure": True})
        assert ClickHouseHook(CONN_ID).get_conn().connection.hosts[0][1] == 9440

    def test_client_name_argument_beats_extra(self, connection):
        """client_name: argument, then extra, then `airflow` outside a task."""
        connection(extra={"client_name": "from-extra"})
        assert ClickHouseHook(CONN_ID).get_conn().connection.client_name.endswith(" from-extra")
        hook = ClickHouseHook(CONN_ID, client_name="from-arg")
        assert hook.get_conn().connection.client_name.endswith(" from-arg")
        connection()
        assert ClickHouseHook(CONN_ID).get_conn().connection.client_name.endswith(" airflow")


class TestGetClient:
    def test_yields_a_connected_client_and_disconnects(self, connection):
        """The client is connected inside the block and disconnected after it."""
        with ClickHouseHook(CONN_ID).get_client() as client:
            assert client.connection.connected
        assert not client.connection.connected

    def test_disconnects_when_the_block_raises(self, connection):
        """An error inside the block still closes the connection, and propagates unchanged."""
        with pytest.raises(RuntimeError, match="boom"):
            with ClickHouseHook(CONN_ID).get_client() as client:
                client.execute("SELECT 1")
                raise RuntimeError("boom")
        assert not client.connection.connected

    def test_disconnects_when_a_query_fails(self, connection):
        """A server error inside the block closes the connection too."""
        from clickhouse_driver.errors import ServerException

        with pytest.raises(ServerException):
            with ClickHouseHook(CONN_ID).get_client() as client:
                client.execute("SELECT * FROM no_such_table_anywhere")
        assert not client.connection.connected


class TestExecute:
    def test_runs_with_parameters(self, connection):
        """Parameters are rendered by the driver; rows come back as tuples."""
        rows = ClickHouseHook(CONN_ID).execute("SELECT %(d)s, %(s)s", {"d": DAY, "s": "it's"})
        assert rows == [("2024-07-05", "it's")]


class TestInsertColumns:
    @pytest.fixture()
    def table(self, ch_client, ch_database):
        ch_client.execute(
            f"CREATE TABLE {ch_database}.prices (trade_date Date, symbol String, "
            "close Nullable(Float64), volume UInt64) ENGINE = MergeTree ORDER BY symbol"
        )
        return "prices"

    def contents(self, ch_client, database):
        return ch_client.execute(
            f"SELECT trade_date, symbol, close, volume FROM {database}.prices ORDER BY symbol"
        )

    EXPECTED = [(DAY, "A", 1.5, 10), (DAY, "B", None, 20)]
    COLUMNS = {
        "trade_date": [DAY, DAY],
        "symbol": ["A", "B"],
        "close": [1.5, None],
        "volume": [10, 20],
    }

    def test_from_a_dict(self, connection, ch_client, ch_database, table):
        """Python lists insert as columns, with the database given as an argument."""
        assert ClickHouseHook(CONN_ID).insert_columns(table, self.COLUMNS, ch_database) == 2
        assert self.contents(ch_client, ch_database) == self.EXPECTED

    def test_from_pyarrow(self, connection, ch_client, ch_database, table):
        """A pyarrow Table inserts with dates and nulls intact, using the hook's database."""
        data = pa.table(
            {
                "trade_date": pa.array([DAY, DAY], pa.date32()),
                "symbol": ["A", "B"],
                "close": pa.array([1.5, None], pa.float64()),
                "volume": pa.array([10, 20], pa.uint64()),
            }
        )
        assert ClickHouseHook(CONN_ID, database=ch_database).insert_columns(table, data) == 2
        assert self.contents(ch_client, ch_database) == self.EXPECTED

    def test_from_polars(self, connection, ch_client, ch_database, table):
        """A polars DataFrame inserts with dates and nulls intact."""
        data = pl.DataFrame(self.COLUMNS, schema_overrides={"volume": pl.UInt64})
        assert ClickHouseHook(CONN_ID).insert_columns(table, data, ch_database) == 2
        assert self.contents(ch_client, ch_database) == self.EXPECTED

    def test_refuses_unsafe_names(self, connection, ch_database):
        """Table and column names are identifiers, never SQL."""
        hook = ClickHouseHook(CONN_ID)
        with pytest.raises(ValueError, match="identifier"):
            hook.insert_columns("prices; DROP TABLE x", self.COLUMNS, ch_database)
        with pytest.raises(ValueError, match="identifier"):
            hook.insert_columns("prices", {"symbol) SELECT 1 --": ["A"]}, ch_database)


class TestQueryPolars:
    def test_types_come_from_clickhouse(self, connection):
        """Nullable, unsigned and date columns keep their types, also with no rows."""
        sql = (
            "SELECT toDate('2024-07-05') AS trade_date, toUInt64(7) AS volume, "
            "CAST(NULL AS Nullable(Float64)) AS delivery_pct, 'EQ' AS series"
        )
        schema = pl.Schema(
            {
                "trade_date": pl.Date,
                "volume": pl.UInt64,
                "delivery_pct": pl.Float64,
                "series": pl.String,
            }
        )
        df = ClickHouseHook(CONN_ID).query_polars(sql)
        assert df.schema == schema
        assert df.rows() == [(DAY, 7, None, "EQ")]
        assert ClickHouseHook(CONN_ID).query_polars(sql + " WHERE 0").schema == schema

    def test_parameters(self, connection):
        """Parameters pass through to the driver."""
        df = ClickHouseHook(CONN_ID).query_polars("SELECT %(n)s AS n", {"n": 5})
        assert df.to_dict(as_series=False) == {"n": [5]}


class TestTestConnection:
    def test_reports_the_server_version(self, connection):
        """A reachable server answers with its version."""
        ok, message = ClickHouseHook(CONN_ID).test_connection()
        assert ok, message
        assert re.fullmatch(r"Connected to ClickHouse \d+\.\d+.*", message)

    def test_closed_port_fails_cleanly(self, connection, logs):
        """A closed port gives (False, reason) without raising, and never shows the password."""
        connection(port=closed_port(), password=PASSWORD, extra={"connect_timeout": 2})
        ok, message = ClickHouseHook(CONN_ID).test_connection()
        assert not ok
        assert "NetworkError" in message and "Connection refused" in message
        assert "\n" not in message
        assert PASSWORD not in message
        assert "connection test failed" in logs() and PASSWORD not in logs()

    def test_wrong_password_fails_cleanly(self, connection, logs):
        """A refused login gives (False, reason) without the password or a server stack trace."""
        connection(password=PASSWORD)
        ok, message = ClickHouseHook(CONN_ID).test_connection()
        assert not ok
        assert "ServerException" in message and "password" in message.lower()
        assert "Stack trace" not in message
        assert PASSWORD not in message
        assert PASSWORD not in logs()


class TestLogging:
    def test_password_never_logged_at_debug(self, connection, logs, ch_database):
        """With DEBUG on everywhere, no log line carries the password; host and user do."""
        port = connection(password=PASSWORD)["port"]
        hook = ClickHouseHook(CONN_ID, database=ch_database)
        for call in (
            lambda: hook.execute("SELECT 1"),
            lambda: hook.query_polars("SELECT 1"),
            lambda: hook.insert_columns("t", {"x": [1]}),
        ):
            with pytest.raises(Exception, match="password"):
                call()
        hook.test_connection()
        assert f"ClickHouse 127.0.0.1:{port} as user default, database {ch_database}" in logs()
        assert "Connecting. Database" in logs()  # the driver's own DEBUG lines were captured
        assert PASSWORD not in logs()


class TestQueryId:
    def test_outside_a_task_is_a_uuid(self):
        """With no task context the id is a plain uuid, prefixed by the suffix when given."""
        assert uuid.UUID(make_query_id())
        suffix, _, rest = make_query_id("load cm").partition(".")
        assert suffix == "load_cm" and uuid.UUID(rest)

    def test_inside_a_task_names_the_task_try(self, monkeypatch):
        """AIRFLOW_CTX_* give dag, task, run and try, made safe for a query id."""
        for name, value in TASK_ENV.items():
            monkeypatch.setenv(name, value)
        assert re.fullmatch(re.escape(TASK_TAG) + r"\.insert\.[0-9a-f]{8}", make_query_id("insert"))
        assert make_query_id("x") != make_query_id("x")

    def test_running_task_instance_wins_over_environment(self, monkeypatch):
        """The task instance of the current context is read before the environment."""
        from airflow.sdk.execution_time.context import set_current_context

        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "stale")
        monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "stale")
        ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", try_number=1)
        with set_current_context({"ti": ti}):
            assert make_query_id().startswith("d.t.r.1.")

    def test_long_ids_are_shortened_keeping_the_unique_tail(self, monkeypatch):
        """A long dag id is cut so the id fits, and its random tail survives."""
        for name, value in {**TASK_ENV, "AIRFLOW_CTX_DAG_ID": "d" * 300}.items():
            monkeypatch.setenv(name, value)
        query_id = make_query_id("replace")
        assert len(query_id) == MAX_QUERY_ID_LENGTH
        assert re.fullmatch(r"d+\.replace\.[0-9a-f]{8}", query_id)

    def test_query_log_shows_the_task(self, monkeypatch, connection, ch_client):
        """Queries run by the hook inside a task are found in system.query_log by task."""
        dag_id = f"nse_test_{uuid.uuid4().hex[:8]}"
        for name, value in {**TASK_ENV, "AIRFLOW_CTX_DAG_ID": dag_id}.items():
            monkeypatch.setenv(name, value)
        hook = ClickHouseHook(CONN_ID)
        hook.execute("SELECT 1")
        hook.query_polars("SELECT 2 AS two")
        ch_client.execute("SYSTEM FLUSH LOGS")
        rows = ch_client.execute(
            "SELECT DISTINCT query_id, client_name FROM system.query_log "
            "WHERE query_id LIKE %(tag)s ORDER BY query_id",
            {"tag": dag_id + ".%"},
        )
        tag = TASK_TAG.replace("nse_cm_bhavcopy", dag_id)
        assert [re.sub(r"[0-9a-f]{8}$", "*", q) for q, _ in rows] == [
            f"{tag}.execute.*",
            f"{tag}.query.*",
        ]
        assert {name for _, name in rows} == {f"ClickHouse airflow:{tag}"}
