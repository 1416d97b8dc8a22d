"""The ClickHouse provider: Airflow registers it, its hook resolves connections as documented,
and every statement from its clients carries the task's tag into a real server's query log."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import json
import logging
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from nse_clickhouse_provider.client import TaggedClient
from nse_clickhouse_provider.hooks.clickhouse import (
    MAX_QUERY_ID_LENGTH,
    ClickHouseHook,
    make_query_id,
)

pytestmark = pytest.mark.clickhouse

DISTRIBUTION = "airflow-provider-nse-clickhouse"

CONN_ID = "clickhouse_test"
PASSWORD = "pw-Qx7-never-logged"  # pragma: allowlist secret (the test server's)
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


def provider_info() -> dict:
    """What the installed distribution's `apache_airflow_provider` entry point returns."""
    (entry_point,) = [
        ep
        for ep in importlib.metadata.distribution(DISTRIBUTION).entry_points
        if ep.group == "apache_airflow_provider"
    ]
    return entry_point.load()()


@pytest.fixture(scope="module")
def providers_manager():
    """Airflow's providers manager, as the API server uses it for the connection form."""
    from airflow.providers_manager import ProvidersManager

    return ProvidersManager()


def clickhouse_widgets(providers_manager) -> dict:
    """The `clickhouse` connection type's extra fields Airflow registered, by field name."""
    return {
        widget.field_name: widget
        for key, widget in providers_manager.connection_form_widgets.items()
        if key.startswith("extra__clickhouse__")
    }


class TestProviderInfo:
    def test_validates_against_airflows_schemas(self):
        """The entry point's dict passes Airflow's runtime schema and provider.yaml's strict one."""
        import jsonschema
        from airflow import __file__ as airflow_init

        schemas = Path(airflow_init).parent
        info = provider_info()
        jsonschema.validate(info, json.loads((schemas / "provider_info.schema.json").read_text()))
        strict = json.loads((schemas / "provider.yaml.schema.json").read_text())["properties"]
        for key in ("connection-types", "versions"):
            jsonschema.validate(info[key], strict[key])
        assert info["package-name"] == DISTRIBUTION
        assert info["versions"] == [importlib.metadata.version(DISTRIBUTION)]
        assert "hook-class-names" not in info

    def test_returns_a_fresh_copy(self):
        """Changing one result, as Airflow does, leaves the next one whole."""
        provider_info()["connection-types"][0]["conn-fields"].clear()
        assert provider_info()["connection-types"][0]["conn-fields"]["secure"]

    def test_airflow_cli_lists_the_provider(self):
        """`airflow providers list` of the test Airflow home shows the installed version."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "providers", "list", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        listed = {p["package_name"]: p["version"] for p in json.loads(done.stdout)}
        assert listed.get(DISTRIBUTION) == importlib.metadata.version(DISTRIBUTION), listed


class TestConnectionType:
    def test_hook_is_registered_for_clickhouse(self):
        """Airflow maps `clickhouse` to this hook, imports it, and can test its connections."""
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        # ProvidersManager.hooks is deprecated in favour of the task SDK's manager it wraps.
        info = ProvidersManagerTaskRuntime().hooks["clickhouse"]
        assert info is not None, "Airflow could not import the hook"
        module, _, name = info.hook_class_name.rpartition(".")
        assert getattr(importlib.import_module(module), name) is ClickHouseHook
        assert (info.package_name, info.connection_type, info.hook_name) == (
            DISTRIBUTION,
            "clickhouse",
            "ClickHouse",
        )
        assert info.connection_id_attribute_name == "clickhouse_conn_id"
        assert info.connection_testable

    def test_extras_are_typed_form_fields(self, providers_manager):
        """Each extra the hook reads is a labelled form field of its own type."""
        widgets = clickhouse_widgets(providers_manager)
        assert set(widgets) == {
            "secure",
            "verify",
            "ca_certs",
            "connect_timeout",
            "send_receive_timeout",
            "sync_request_timeout",
            "compression",
            "client_name",
            "settings",
        }
        assert {w.package_name for w in widgets.values()} == {DISTRIBUTION}
        assert all(w.field["schema"]["title"] for w in widgets.values())
        assert not any(w.is_sensitive for w in widgets.values())
        fields = {name: w.field for name, w in widgets.items()}
        assert "boolean" in fields["secure"]["schema"]["type"]
        assert fields["secure"]["value"] is False and fields["verify"]["value"] is True
        assert "9440" in fields["secure"]["description"]
        for timeout in ("connect_timeout", "send_receive_timeout", "sync_request_timeout"):
            assert "number" in fields[timeout]["schema"]["type"], timeout
        assert {"lz4", "zstd"} <= set(fields["compression"]["schema"]["enum"])
        assert "object" in fields["settings"]["schema"]["type"]

    def test_standard_fields_are_relabelled(self, providers_manager):
        """The schema field reads Database and login User; placeholders show the defaults."""
        behaviour = providers_manager.field_behaviours["clickhouse"]
        assert behaviour["relabeling"] == {"schema": "Database", "login": "User"}
        assert behaviour["hidden_fields"] == []
        assert behaviour["placeholders"]["port"] == "9000"
        assert behaviour["placeholders"]["schema"] == "default"
        # Placeholders of extras are keyed the way Airflow keys the extra fields.
        assert "extra__clickhouse__ca_certs" in behaviour["placeholders"]

    def test_ui_api_serves_the_form(self):
        """The metadata the UI fetches for the connection form has the relabelled fields."""
        from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

        (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "clickhouse"]
        assert meta.hook_class_name == "nse_clickhouse_provider.hooks.clickhouse.ClickHouseHook"
        assert meta.standard_fields.url_schema.title == "Database"
        assert meta.standard_fields.login.title == "User"
        assert meta.extra_fields["secure"]["schema"]["title"] == "Secure (TLS)"

    def test_form_defaults_connect_with_the_drivers_defaults(self, providers_manager, connection):
        """Extras saved as the form prefills them connect, with clickhouse-driver's own defaults."""
        from clickhouse_driver import Client

        extras = {
            name: w.field["value"] for name, w in clickhouse_widgets(providers_manager).items()
        }
        connection(extra=extras)
        hook = ClickHouseHook(CONN_ID)
        assert hook.execute("SELECT 1") == [(1,)]
        ours, drivers = hook.get_conn().connection, Client("localhost").connection
        for attribute in (
            "secure_socket",
            "verify_cert",
            "connect_timeout",
            "send_receive_timeout",
            "sync_request_timeout",
            "compression",
        ):
            assert getattr(ours, attribute) == getattr(drivers, attribute), attribute


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


class TestDatabase:
    def test_argument_then_schema_then_default(self, connection):
        """`database` is the argument, else the connection's schema, else `default`."""
        connection(schema="nse")
        assert ClickHouseHook(CONN_ID).database == "nse"
        assert ClickHouseHook(CONN_ID, database="other").database == "other"
        connection(schema=None)
        assert ClickHouseHook(CONN_ID).database == "default"

    def test_is_the_clients_database(self, connection, ch_database):
        """The client connects to the database the hook reports."""
        connection(schema=ch_database)
        hook = ClickHouseHook(CONN_ID)
        assert hook.get_conn().connection.database == hook.database == ch_database
        assert hook.execute("SELECT currentDatabase()") == [(ch_database,)]


class TestLogging:
    def test_password_never_logged_at_debug(self, connection, logs, ch_database):
        """With DEBUG on everywhere, no log line carries the password; host and user do."""
        port = connection(password=PASSWORD)["port"]
        hook = ClickHouseHook(CONN_ID, database=ch_database)

        def through_get_client():
            with hook.get_client() as client:
                client.execute("SELECT 1")

        for call in (
            lambda: hook.execute("SELECT 1"),
            through_get_client,
            lambda: hook.get_conn().execute("SELECT 1"),
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


def in_a_task(monkeypatch) -> str:
    """Set a task environment with a dag id of its own; the tag its query ids start with."""
    dag_id = f"nse_test_{uuid.uuid4().hex[:8]}"
    for name, value in {**TASK_ENV, "AIRFLOW_CTX_DAG_ID": dag_id}.items():
        monkeypatch.setenv(name, value)
    return TASK_TAG.replace("nse_cm_bhavcopy", dag_id)


def logged_queries(ch_client, tag: str, *query_ids: str) -> dict[str, tuple[str, str]]:
    """Finished queries with an id starting `tag` or in `query_ids`: text -> (id, client)."""
    ch_client.execute("SYSTEM FLUSH LOGS")
    chosen = " OR query_id IN %(ids)s" if query_ids else ""
    rows = ch_client.execute(
        # 18.16's query_log: `type` 2 is QueryFinish.
        "SELECT query, query_id, client_name FROM system.query_log "
        f"WHERE type = 2 AND (startsWith(query_id, %(tag)s){chosen})",
        {"tag": tag + ".", "ids": query_ids},
    )
    return {query.strip(): (query_id, client) for query, query_id, client in rows}


def tagged_by(tag: str, method: str) -> re.Pattern:
    """A query id made by `method` of a tagged client inside the task `tag` names."""
    return re.compile(rf"{re.escape(tag)}\.{method}\.[0-9a-f]{{8}}")


class TestTaggedClient:
    def test_hook_hands_out_tagged_clients(self, connection):
        """get_conn and get_client return the tagging subclass of the driver's client."""
        from clickhouse_driver import Client

        assert isinstance(ClickHouseHook(CONN_ID).get_conn(), TaggedClient)
        with ClickHouseHook(CONN_ID).get_client() as client:
            assert isinstance(client, TaggedClient) and isinstance(client, Client)

    def test_statements_are_logged_under_the_task(
        self, monkeypatch, connection, ch_client, ch_database
    ):
        """execute, execute_iter and a columnar insert are logged tagged; a given id is kept."""
        tag = in_a_task(monkeypatch)
        explicit = f"chosen-by-caller-{uuid.uuid4().hex}"
        with ClickHouseHook(CONN_ID, database=ch_database).get_client() as client:
            client.execute("CREATE TABLE t (x UInt32) ENGINE = Memory")
            rows = list(client.execute_iter("SELECT number FROM system.numbers LIMIT 3"))
            # As the project's warehouse functions call it: query_id=None means none was given.
            client.execute("INSERT INTO t (x) VALUES", [[1, 2, 3]], columnar=True, query_id=None)
            count = client.execute("SELECT count() FROM t", None, False, None, None)
            client.execute("SELECT 'explicit'", query_id=explicit)
        assert rows == [(0,), (1,), (2,)] and count == [(3,)]
        logged = logged_queries(ch_client, tag, explicit)
        for query, method in {
            "CREATE TABLE t (x UInt32) ENGINE = Memory": "execute",
            "SELECT number FROM system.numbers LIMIT 3": "execute_iter",
            "INSERT INTO t (x) VALUES": "execute",
            "SELECT count() FROM t": "execute",
        }.items():
            assert query in logged, (query, logged)
            assert tagged_by(tag, method).fullmatch(logged[query][0]), (query, logged[query])
        assert logged["SELECT 'explicit'"][0] == explicit
        assert {client for _, client in logged.values()} == {f"ClickHouse airflow:{tag}"}

    def test_every_statement_method_is_tagged(
        self, monkeypatch, connection, ch_client, ch_database
    ):
        """Progress, DataFrame and Arrow methods tag their statements too, each once."""
        import pandas as pd

        tag = in_a_task(monkeypatch)
        hook = ClickHouseHook(CONN_ID, database=ch_database, settings={"use_numpy": True})
        with hook.get_client() as client:
            client.execute("CREATE TABLE t (x UInt32) ENGINE = Memory")
            assert client.execute_with_progress("SELECT 1 AS p").get_result() == [(1,)]
            assert client.query_dataframe("SELECT 2 AS d")["d"].tolist() == [2]
            assert client.insert_dataframe("INSERT INTO t VALUES", pd.DataFrame({"x": [7]})) == 1
            assert client.query_arrow("SELECT 3 AS a").to_pydict() == {"a": [3]}
            assert client.query_arrow_stream("SELECT 4 AS s").read_all().num_rows == 1
        logged = logged_queries(ch_client, tag)
        for query, method in {
            "SELECT 1 AS p": "execute_with_progress",
            "SELECT 2 AS d": "query_dataframe",
            "INSERT INTO t VALUES": "insert_dataframe",
            "SELECT 3 AS a": "query_arrow",
            "SELECT 4 AS s": "query_arrow_stream",
        }.items():
            assert query in logged, (query, logged)
            assert tagged_by(tag, method).fullmatch(logged[query][0]), (query, logged[query])

    def test_project_warehouse_functions_are_tagged(
        self, monkeypatch, connection, ch_client, ch_database
    ):
        """The project's warehouse functions, which know nothing of Airflow, leave the tag."""
        from include.nse import warehouse

        tag = in_a_task(monkeypatch)
        with ClickHouseHook(CONN_ID, database=ch_database).get_client() as client:
            client.execute("CREATE TABLE t (x UInt32) ENGINE = Memory")
            assert warehouse.insert_columns(client, "t", {"x": [1, 2]}) == 2
            assert warehouse.query_polars(client, "SELECT sum(x) AS total FROM t").rows() == [(3,)]
        logged = logged_queries(ch_client, tag)
        inserts = [query for query in logged if query.startswith("INSERT INTO")]
        sums = [query for query in logged if "sum(x) AS total" in query]
        assert inserts and sums, logged
        for query in inserts + sums:
            assert tagged_by(tag, r"\w+").fullmatch(logged[query][0]), (query, logged[query])

    def test_outside_a_task_ids_are_uuids(self, connection, ch_client):
        """With no task, a statement's id is `<method>.<uuid4>`, still unique per statement."""
        marker = uuid.uuid4().hex
        with ClickHouseHook(CONN_ID).get_client() as client:
            client.execute(f"SELECT '{marker}'")
        ch_client.execute("SYSTEM FLUSH LOGS")
        (query_id,) = ch_client.execute(
            "SELECT query_id FROM system.query_log WHERE type = 2 AND query = %(q)s",
            {"q": f"SELECT '{marker}'"},
        )[0]
        method, _, rest = query_id.partition(".")
        assert method == "execute" and uuid.UUID(rest)
