"""ClickHouse over the native protocol (clickhouse-driver), as an Airflow hook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from nse_clickhouse_provider.connection_form import (
    COMPRESSIONS,
    CONN_TYPE,
    DEFAULT_PORT,
    DEFAULT_SECURE_PORT,
    HOOK_NAME,
)
from nse_clickhouse_provider.query_ids import (
    MAX_QUERY_ID_LENGTH,
    default_client_name,
    make_query_id,
    task_tags,
)

if TYPE_CHECKING:
    from nse_clickhouse_provider.client import TaggedClient

__all__ = ["MAX_QUERY_ID_LENGTH", "ClickHouseHook", "make_query_id", "task_tags"]


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if value.strip().lower() in ("", "0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def _as_compression(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() in COMPRESSIONS:
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

    Inside an Airflow task the client name defaults to
    ``airflow:<dag_id>.<task_id>.<run_id>.<try>``, and the clients this hook makes
    (:class:`~nse_clickhouse_provider.client.TaggedClient`) give every statement sent without a
    query id one from :func:`make_query_id`, so a slow or failed query in ``system.query_log``
    leads back to its task try, whatever code holds the client. The password is never logged.

    :param clickhouse_conn_id: Airflow connection id.
    :param database: database for unqualified table names; overrides the connection's schema.
    :param settings: ClickHouse settings, merged over the connection's ``settings`` extra.
    :param client_name: name reported to the server; overrides the ``client_name`` extra.
    """

    conn_name_attr = "clickhouse_conn_id"
    default_conn_name = "clickhouse_default"
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

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
        self._database = database
        self.settings = settings
        self.client_name = client_name

    @property
    def database(self) -> str:
        """The database the hook uses: the argument, else the connection's schema, else default."""
        return self._database or self.get_connection(self.clickhouse_conn_id).schema or "default"

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
            "database": self._database or conn.schema or "default",
            "client_name": self.client_name or extra("client_name") or default_client_name(),
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

    def get_conn(self, *, database: str | None = None) -> TaggedClient:
        """A new, not yet connected client; prefer :meth:`get_client`, which also disconnects.

        :param database: connect to this database instead of the hook's, e.g. ``default`` to
            create the hook's database when it does not exist yet.
        """
        from nse_clickhouse_provider.client import TaggedClient

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
        return TaggedClient(**kwargs)

    @contextmanager
    def get_client(self, *, database: str | None = None) -> Iterator[TaggedClient]:
        """A connected client, disconnected on leaving the block whether or not it raised."""
        client = self.get_conn(database=database)
        try:
            client.connection.connect()
            yield client
        finally:
            client.disconnect()

    def execute(self, sql: str, params: dict | list | None = None, **kwargs: Any) -> Any:
        """`Client.execute` on a connection of its own, closed afterwards."""
        with self.get_client() as client:
            return client.execute(sql, params, **kwargs)

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
