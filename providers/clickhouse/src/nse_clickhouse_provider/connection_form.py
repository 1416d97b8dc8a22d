"""The `clickhouse` connection type's form, defined once for the provider info and the hook.

Airflow 3.2+ builds the connection form from the provider info's ``conn-fields`` (extras, each a
JSON schema) and ``ui-field-behaviour`` (the standard fields) without importing the hook, so this
module imports nothing.
"""

from __future__ import annotations

CONN_TYPE = "clickhouse"
HOOK_NAME = "ClickHouse"
DEFAULT_PORT = 9000
DEFAULT_SECURE_PORT = 9440
#: Block compression methods clickhouse-driver knows by name; ``true`` means its default, lz4.
COMPRESSIONS = ("lz4", "lz4hc", "zstd")

#: Connection extras. Defaults are clickhouse-driver's, so a saved form changes nothing by itself.
CONN_FIELDS: dict[str, dict] = {
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
    "ca_certs": {
        "label": "CA certificates",
        "schema": {"type": ["string", "null"]},
        "description": "Path to a CA bundle on the workers; the system's bundle when empty.",
    },
    "connect_timeout": {
        "label": "Connect timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 10, "minimum": 0},
        "description": "How long to wait for the connection to the server.",
    },
    "send_receive_timeout": {
        "label": "Send/receive timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 300, "minimum": 0},
        "description": "How long a query may go without the server sending anything.",
    },
    "sync_request_timeout": {
        "label": "Ping timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 5, "minimum": 0},
        "description": "How long to wait for the server's answer to a ping before a query.",
    },
    "compression": {
        "label": "Compression",
        "schema": {"type": ["string", "null"], "enum": [*COMPRESSIONS, None]},
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

#: The standard fields: what the schema and login fields mean here, and example values.
UI_FIELD_BEHAVIOUR: dict[str, dict | list] = {
    "hidden-fields": [],
    "relabeling": {"schema": "Database", "login": "User"},
    "placeholders": {
        "host": "localhost",
        "port": str(DEFAULT_PORT),
        "schema": "default",
        "login": "default",
        "password": "empty for no password",
        "extra": '{"settings": {"max_execution_time": 600}}',
        "ca_certs": "/etc/ssl/certs/ca-certificates.crt",
        "client_name": "airflow:<dag_id>.<task_id>.<run_id>.<try_number>",
    },
}
