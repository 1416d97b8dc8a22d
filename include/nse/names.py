"""Names that reach SQL: database, table and column names are never quoted, so each is checked
to be a plain ClickHouse identifier before a statement is built with it. Values never take this
way: they travel as query parameters."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def identifier(name: str) -> str:
    """`name` if it is a plain ClickHouse identifier; database and table names are never quoted."""
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def qualified_name(table: str) -> str:
    """`table` or `database.table`, each part checked to be a plain identifier."""
    return ".".join(identifier(part) for part in table.split(".", 1))
