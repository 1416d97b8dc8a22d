"""What Airflow's providers manager reads through the `apache_airflow_provider` entry point."""

from __future__ import annotations

import copy
from typing import Any

from nse_clickhouse_provider import __version__
from nse_clickhouse_provider.connection_form import (
    CONN_FIELDS,
    CONN_TYPE,
    HOOK_NAME,
    UI_FIELD_BEHAVIOUR,
)

#: Must equal the distribution's name in pyproject.toml: Airflow refuses a mismatch.
PACKAGE_NAME = "airflow-provider-nse-clickhouse"


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata and its one connection type, with the connection form.

    Returns fresh copies: the providers manager adds keys to what it is given.
    """
    return {
        "package-name": PACKAGE_NAME,
        "name": "NSE ClickHouse",
        "description": (
            "The clickhouse connection type and its hook (native protocol, clickhouse-driver), "
            "whose clients tag every query with the Airflow task that sends it."
        ),
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": CONN_TYPE,
                "hook-class-name": "nse_clickhouse_provider.hooks.clickhouse.ClickHouseHook",
                "hook-name": HOOK_NAME,
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": copy.deepcopy(UI_FIELD_BEHAVIOUR),
            }
        ],
    }
