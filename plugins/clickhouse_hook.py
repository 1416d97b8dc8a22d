"""ClickHouse over the native protocol (clickhouse-driver), as an Airflow hook."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa
    from clickhouse_driver import Client

DEFAULT_PORT = 9000
DEFAULT_SECURE_PORT = 9440
#: Longest query id we send; ClickHouse keeps it in system.query_log and in every server log line.
MAX_QUERY_ID_LENGTH = 128
_UNSAFE_QUERY_ID_CHARS = re.compile(r"[^A-Za-z0-9_:-]+")
_COMPRESSIONS = ("lz4", "lz4hc", "zstd")


def task_tags() -> dict[str, str] | None:
    """dag_id, task_id, run_id and try_number of the running Airflow task; None outside one."""
    try:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        tags = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "try_number": ti.try_number,
        }
    except Exception:  # not inside a task: fall back to what the task runner exports
        tags = {
            "dag_id": os.environ.get("AIRFLOW_CTX_DAG_ID"),
            "task_id": os.environ.get("AIRFLOW_CTX_TASK_ID"),
            "run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID"),
            "try_number": os.environ.get("AIRFLOW_CTX_TRY_NUMBER"),
        }
    if not (tags["dag_id"] and tags["task_id"]):
        return None
    return {key: str(value or "") for key, value in tags.items()}


def _safe(text: str) -> str:
    return _UNSAFE_QUERY_ID_CHARS.sub("_", text)


def make_query_id(suffix: str = "") -> str:
    """A unique query id that says which task ran the query, to find it in system.query_log.

    Inside a task: `<dag_id>.<task_id>.<run_id>.<try_number>[.<suffix>].<8 hex>`, characters
    outside `[A-Za-z0-9_:-]` replaced by `_` and the task part shortened to keep the id within
    `MAX_QUERY_ID_LENGTH`. Outside a task: `[<suffix>.]<uuid4>`.
    """
    tags = task_tags()
    if tags is None:
        return f"{_safe(suffix)}.{uuid.uuid4()}" if suffix else str(uuid.uuid4())
    tail = ".".join(filter(None, [_safe(suffix), uuid.uuid4().hex[:8]]))
    head = ".".join(_safe(value) for value in tags.values())
    return f"{head[: MAX_QUERY_ID_LENGTH - len(tail) - 1]}.{tail}"


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("", "0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def _as_compression(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() in _COMPRESSIONS:
        return value.strip().lower()
    return _as_bool(value)


class ClickHouseHook(BaseHook):
    """
    Talk to ClickHouse over its native protocol with clickhouse-driver.

    Each setting is taken from the first place that sets it: an explicit argument to this hook,
    then the connection's extras, then the connection's fields, then the default.

    Connection fields: ``host`` (default ``localhost``), ``port`` (default 9000, or 9440 with
    ``secure``), ``login`` (default ``default``), ``password``, ``schema`` as the database
    (default ``default``).

    Connection extras (all optional; ``extra__clickhouse__<key>`` is accepted too):

    * ``settings`` -- ClickHouse settings sent with every query, a JSON object; the ``settings``
      argument is merged over it key by key.
    * ``secure`` / ``verify`` -- TLS, and whether to verify the server certificate
      (default false / true); ``ca_certs`` -- path to a CA bundle.
    * ``connect_timeout`` / ``send_receive_timeout`` / ``sync_request_timeout`` -- seconds
      (clickhouse-driver's defaults 10 / 300 / 5).
    * ``compression`` -- ``true``, ``lz4``, ``lz4hc`` or ``zstd`` (needs clickhouse-driver's
      ``lz4`` or ``zstd`` extra installed); off by default.
    * ``client_name`` -- the name ClickHouse records in ``system.query_log.client_name``.

    Inside an Airflow task the client name defaults to ``airflow:<dag_id>.<task_id>.<run_id>.<try>``
    and every query the hook runs gets an id from :func:`make_query_id`, so a slow or failed
    query in ``system.query_log`` leads back to its task try. The password is never logged.

    :param clickhouse_conn_id: Airflow connection id.
    :param database: database for unqualified table names; overrides the connection's schema.
    :param settings: ClickHouse settings, merged over the connection's ``settings`` extra.
    :param client_name: name reported to the server; overrides the ``client_name`` extra.
    """

    conn_name_attr = "clickhouse_conn_id"
    default_conn_name = "clickhouse_default"
    conn_type = "clickhouse"
    hook_name = "ClickHouse"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel and prefill the standard connection form fields."""
        return {
            "hidden_fields": [],
            "relabeling": {"schema": "Database", "login": "User"},
            "placeholders": {
                "host": "localhost",
                "port": str(DEFAULT_PORT),
                "schema": "default",
                "login": "default",
                "password": "empty for no password",
                "extra": json.dumps({"settings": {"max_execution_time": 600}}),
            },
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Connection extras as Airflow 3 field definitions (provider.yaml's ``conn-fields``).

        Airflow 3 reads these declaratively from a provider's ``connection-types`` entry, not from
        the hook; this dict is what that entry's ``conn-fields`` should hold if this hook is
        packaged as a provider, and it is checked against Airflow's schema for that key.
        """
        return {
            "secure": {
                "label": "Secure (TLS)",
                "schema": {"type": ["boolean", "null"], "default": False},
                "description": f"Connect over TLS; the default port becomes {DEFAULT_SECURE_PORT}.",
            },
            "verify": {
                "label": "Verify certificate",
                "schema": {"type": ["boolean", "null"], "default": True},
                "description": "Verify the server's TLS certificate.",
            },
            "connect_timeout": {
                "label": "Connect timeout (seconds)",
                "schema": {"type": ["number", "null"], "default": 10, "minimum": 0},
            },
            "send_receive_timeout": {
                "label": "Send/receive timeout (seconds)",
                "schema": {"type": ["number", "null"], "default": 300, "minimum": 0},
            },
            "compression": {
                "label": "Compression",
                "schema": {"type": ["string", "null"], "enum": [*_COMPRESSIONS, None]},
                "description": "Block compression; needs clickhouse-driver's lz4 or zstd extra.",
            },
            "client_name": {
                "label": "Client name",
                "schema": {"type": ["string", "null"]},
                "description": "Name recorded in system.query_log; defaults to the task's ids.",
            },
            "settings": {
                "label": "Settings",
                "schema": {"type": ["object", "null"]},
                "description": "ClickHouse settings sent with every query, as a JSON object.",
            },
        }

    def __init__(
        self,
        clickhouse_conn_id: str = default_conn_name,
        *,
        database: str | None = None,
        settings: dict[str, Any] | None = None,
        client_name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.clickhouse_conn_id = clickhouse_conn_id
        self.database = database
        self.settings = settings
        self.client_name = client_name

    def _client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `clickhouse_driver.Client`, resolved in documented precedence."""
        conn = self.get_connection(self.clickhouse_conn_id)
        extras = conn.extra_dejson

        def extra(key: str) -> Any:
            value = extras.get(key)
            return extras.get(f"extra__{self.conn_type}__{key}") if value is None else value

        settings = extra("settings") or {}
        if isinstance(settings, str):
            settings = json.loads(settings)
        settings = {**settings, **(self.settings or {})}
        secure = _as_bool(extra("secure") or False)
        kwargs: dict[str, Any] = {
            "host": conn.host or "localhost",
            "port": int(conn.port or (DEFAULT_SECURE_PORT if secure else DEFAULT_PORT)),
            "user": conn.login or "default",
            "password": conn.password or "",
            "database": self.database or conn.schema or "default",
            "client_name": self.client_name or extra("client_name") or self._default_client_name(),
            "settings": settings,
            "secure": secure,
        }
        if extra("verify") not in (None, ""):
            kwargs["verify"] = _as_bool(extra("verify"))
        if extra("ca_certs"):
            kwargs["ca_certs"] = extra("ca_certs")
        for key in ("connect_timeout", "send_receive_timeout", "sync_request_timeout"):
            if extra(key) not in (None, ""):
                kwargs[key] = float(extra(key))
        if extra("compression") not in (None, ""):
            kwargs["compression"] = _as_compression(extra("compression"))
        return kwargs

    @staticmethod
    def _default_client_name() -> str:
        tags = task_tags()
        if tags is None:
            return "airflow"
        return "airflow:" + ".".join(_safe(value) for value in tags.values())

    def get_conn(self, *, database: str | None = None) -> Client:
        """A new, not yet connected client; prefer :meth:`get_client`, which also disconnects.

        :param database: connect to this database instead of the hook's, e.g. ``default`` to
            create the hook's database when it does not exist yet.
        """
        from clickhouse_driver import Client

        kwargs = self._client_kwargs()
        if database:
            kwargs["database"] = database
        self.log.info(
            "ClickHouse %s:%s as user %s, database %s",
            kwargs["host"],
            kwargs["port"],
            kwargs["user"],
            kwargs["database"],
        )
        return Client(**kwargs)

    @contextmanager
    def get_client(self, *, database: str | None = None) -> Iterator[Client]:
        """A connected client, disconnected on leaving the block whether or not it raised."""
        client = self.get_conn(database=database)
        try:
            client.connection.connect()
            yield client
        finally:
            client.disconnect()

    def execute(self, sql: str, params: dict | list | None = None, **kwargs: Any) -> Any:
        """`Client.execute` on a fresh connection; ``query_id`` defaults to a task-tagged id."""
        kwargs.setdefault("query_id", make_query_id("execute"))
        with self.get_client() as client:
            return client.execute(sql, params, **kwargs)

    def insert_columns(
        self,
        table: str,
        columns: dict[str, list] | pa.Table | pl.DataFrame,
        database: str | None = None,
    ) -> int:
        """Insert whole columns into `table` (in `database` if given) in one batch; rows sent."""
        from include.nse.warehouse import insert_columns

        target = f"{database}.{table}" if database else table
        with self.get_client() as client:
            return insert_columns(client, target, columns, query_id=make_query_id("insert"))

    def query_polars(self, sql: str, params: dict | None = None) -> pl.DataFrame:
        """Run a SELECT and return a polars DataFrame typed from ClickHouse's column types."""
        from include.nse.warehouse import query_polars

        with self.get_client() as client:
            return query_polars(client, sql, params, query_id=make_query_id("query"))

    def test_connection(self) -> tuple[bool, str]:
        """Connect and ask the server's version; (False, reason) instead of raising."""
        password = ""
        try:
            password = self.get_connection(self.clickhouse_conn_id).password or ""
            version = self.execute("SELECT version()")[0][0]
        except Exception as exc:
            # Server errors from old releases carry a stack trace; the first part is the reason.
            reason = " ".join(str(exc).split("Stack trace:")[0].split()) or type(exc).__name__
            if password:
                reason = reason.replace(password, "***")
            self.log.warning("ClickHouse connection test failed: %s", reason)
            return False, f"{type(exc).__name__}: {reason}"
        return True, f"Connected to ClickHouse {version}"
