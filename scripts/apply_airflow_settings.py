#!/usr/bin/env python
"""Create or update Airflow connections, pools and variables from an airflow_settings.yaml.

The file is in Astronomer's format (``airflow:`` with ``connections``, ``pools`` and
``variables`` lists). Every string in it may use environment references, expanded when the file
is applied:

* ``${VAR}``            the value of VAR; an error if VAR is not set
* ``${VAR:-default}``   VAR, or ``default`` when VAR is unset or empty
* ``${VAR-default}``    VAR, or ``default`` when VAR is unset
* ``${VAR:?message}``   VAR; an error with ``message`` when VAR is unset or empty
* ``$$``                a literal ``$``

Applying is idempotent: each item is created, updated (only the fields that differ) or left
alone, and nothing that is not in the file is deleted. Each change is printed; passwords and
connection extras are never printed, only that they changed. It writes through Airflow's own
models, as ``airflow connections import``, ``airflow pools import`` and ``airflow variables
import`` do, so it runs wherever the ``airflow`` command does (the metadata database comes from
the usual ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` / ``airflow.cfg``):

    python scripts/apply_airflow_settings.py [airflow_settings.yaml] [--dry-run]

Exit status: 0 when applied (or nothing to do), 2 when the file is invalid or a variable is
missing, 1 when the database refused a change.
"""

# The ORM models (airflow.models) are what `airflow connections import` and friends write to the
# metadata database with; the airflow.sdk classes ruff suggests are for code running in tasks.
# ruff: noqa: AIR311

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "airflow_settings.yaml"

CONNECTION_KEYS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
    "conn_description",
}
POOL_KEYS = {"pool_name", "pool_slot", "pool_description", "pool_include_deferred"}
VARIABLE_KEYS = {"variable_name", "variable_value", "variable_description"}
#: Connection fields whose values may be printed; the others only show that they changed.
PRINTABLE_FIELDS = ("conn_type", "host", "schema", "login", "port", "description")
SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "credential", "private")

_REFERENCE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:-|-|:\?|\?)(?P<arg>[^}]*))?\})"
)


class SettingsError(Exception):
    """The settings file is invalid or refers to an environment variable that is not set."""


def expand(value: Any, env: dict[str, str], where: str, missing: list[str]) -> Any:
    """`value` with environment references expanded in every string, recursively."""
    if isinstance(value, dict):
        return {k: expand(v, env, f"{where}.{k}", missing) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, env, f"{where}[{i}]", missing) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        current = env.get(name)
        if op == ":-":
            return current if current else arg
        if op == "-":
            return arg if current is None else current
        if op in (":?", "?") and not (current if op == ":?" else current is not None):
            missing.append(f"{where}: {name} is not set ({arg or 'required'})")
            return ""
        if current is None:
            missing.append(f"{where}: {name} is not set (use ${{{name}:-}} to allow empty)")
            return ""
        return current

    return _REFERENCE.sub(substitute, value)


def _blank_to_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, str) and value.strip() == "") else value


def _as_int(value: Any, where: str) -> int | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: not an integer: {value!r}") from None


def _as_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise SettingsError(f"{where}: not a boolean: {value!r}")


def _as_extra(value: Any, where: str) -> dict | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise SettingsError(f"{where}: conn_extra is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: conn_extra must be a mapping or a JSON object")
    return value


@dataclass
class Settings:
    connections: list[dict[str, Any]] = field(default_factory=list)
    pools: list[dict[str, Any]] = field(default_factory=list)
    variables: list[dict[str, Any]] = field(default_factory=list)


def _items(section: dict, name: str, allowed: set[str], key: str) -> list[dict[str, Any]]:
    items = section.get(name) or []
    if not isinstance(items, list):
        raise SettingsError(f"airflow.{name} must be a list")
    seen = set()
    for i, item in enumerate(items):
        where = f"airflow.{name}[{i}]"
        if not isinstance(item, dict):
            raise SettingsError(f"{where} must be a mapping")
        if unknown := set(item) - allowed:
            raise SettingsError(
                f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(allowed)}"
            )
        if not _blank_to_none(item.get(key)):
            raise SettingsError(f"{where}: {key} is required")
        if item[key] in seen:
            raise SettingsError(f"{where}: {key} {item[key]!r} appears twice")
        seen.add(item[key])
    return items


def load_settings(path: Path, env: dict[str, str]) -> Settings:
    """Parse and validate the file, with environment references expanded."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise SettingsError(f"cannot read {path}: {e}") from None
    section = document.get("airflow") if isinstance(document, dict) else None
    if not isinstance(section, dict):
        raise SettingsError(f"{path}: the top-level key must be 'airflow:'")
    if unknown := set(section) - {"connections", "pools", "variables"}:
        raise SettingsError(f"{path}: unknown sections under airflow: {sorted(unknown)}")

    missing: list[str] = []
    raw = Settings(
        connections=_items(section, "connections", CONNECTION_KEYS, "conn_id"),
        pools=_items(section, "pools", POOL_KEYS, "pool_name"),
        variables=_items(section, "variables", VARIABLE_KEYS, "variable_name"),
    )
    expanded = Settings(
        connections=[
            expand(c, env, f"connection {c['conn_id']}", missing) for c in raw.connections
        ],
        pools=[expand(p, env, f"pool {p['pool_name']}", missing) for p in raw.pools],
        variables=[
            expand(v, env, f"variable {v['variable_name']}", missing) for v in raw.variables
        ],
    )
    if missing:
        raise SettingsError("environment variables missing:\n  " + "\n  ".join(missing))
    return expanded


def _connection_fields(item: dict[str, Any]) -> dict[str, Any]:
    where = f"connection {item['conn_id']}"
    if not _blank_to_none(item.get("conn_type")):
        raise SettingsError(f"{where}: conn_type is required")
    return {
        "conn_type": str(item["conn_type"]).strip(),
        "host": _blank_to_none(item.get("conn_host")),
        "schema": _blank_to_none(item.get("conn_schema")),
        "login": _blank_to_none(item.get("conn_login")),
        "password": _blank_to_none(item.get("conn_password")),
        "port": _as_int(item.get("conn_port"), where),
        "extra": _as_extra(item.get("conn_extra"), where),
        "description": _blank_to_none(item.get("conn_description")),
    }


def _pool_fields(item: dict[str, Any]) -> tuple[int, str, bool]:
    where = f"pool {item['pool_name']}"
    slots = _as_int(item.get("pool_slot"), where)
    if slots is None:
        raise SettingsError(f"{where}: pool_slot is required")
    if slots < -1:
        raise SettingsError(f"{where}: pool_slot must be -1 (unlimited) or more")
    description = str(item.get("pool_description") or "")
    return slots, description, _as_bool(item.get("pool_include_deferred", False), where)


def validate(settings: Settings) -> None:
    """Check every item's values, so that a bad one fails before the database is touched."""
    for item in settings.connections:
        _connection_fields(item)
    for item in settings.pools:
        _pool_fields(item)


def _current_connection_fields(conn) -> dict[str, Any]:
    extra = conn.extra
    return {
        "conn_type": conn.conn_type,
        "host": conn.host,
        "schema": conn.schema,
        "login": conn.login,
        "password": conn.password,
        "port": conn.port,
        "extra": json.loads(extra) if extra else None,
        "description": conn.description,
    }


def _is_secret(name: str) -> bool:
    return any(word in name.lower() for word in SECRET_WORDS)


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    parts = []
    for name, (old, new) in changes.items():
        if name in PRINTABLE_FIELDS:
            parts.append(f"{name} {old!r} -> {new!r}")
        else:
            parts.append(f"{name} changed")
    return ", ".join(parts)


def apply_settings(settings: Settings, *, dry_run: bool) -> tuple[dict[str, int], list[str]]:
    """Create or update everything in `settings` in one transaction.

    Returns counts per outcome and the report lines, to print once the transaction committed.
    """
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    lines: list[str] = []
    verb = "would be " if dry_run else ""

    def report(kind: str, name: str, outcome: str, detail: str = "") -> None:
        counts[outcome] += 1
        shown = outcome if outcome == "unchanged" else verb + outcome
        lines.append(f"{kind} {name}: {shown}{': ' + detail if detail else ''}")
        shadow = {"connection": "AIRFLOW_CONN_", "variable": "AIRFLOW_VAR_"}.get(kind)
        if shadow and os.environ.get(shadow + name.upper()):
            lines.append(
                f"  note: {shadow}{name.upper()} is set in this environment and takes "
                f"precedence over the stored {kind}"
            )

    with create_session() as session:
        for item in settings.connections:
            conn_id = str(item["conn_id"])
            wanted = _connection_fields(item)
            existing = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
            if existing is None:
                report("connection", conn_id, "created", f"type {wanted['conn_type']}")
                if not dry_run:
                    extra = wanted.pop("extra")
                    conn = Connection(conn_id=conn_id, **wanted)
                    conn.set_extra(json.dumps(extra) if extra is not None else None)
                    session.add(conn)
            else:
                current = _current_connection_fields(existing)
                changes = {k: (current[k], v) for k, v in wanted.items() if current[k] != v}
                if not changes:
                    report("connection", conn_id, "unchanged")
                    continue
                report("connection", conn_id, "updated", _describe(changes))
                if not dry_run:
                    for name, (_, new) in changes.items():
                        if name == "extra":
                            existing.set_extra(json.dumps(new) if new is not None else None)
                        elif name == "password" and new is None:
                            # Connection.set_password ignores a falsy value: clear it directly.
                            existing._password = None
                            existing.is_encrypted = False
                        else:
                            setattr(existing, name, new)

        for item in settings.pools:
            name = str(item["pool_name"])
            slots, description, include_deferred = _pool_fields(item)
            existing = session.scalar(select(Pool).where(Pool.pool == name))
            if existing is None:
                report("pool", name, "created", f"{slots} slots")
            else:
                changes = {
                    k: (old, new)
                    for k, old, new in (
                        ("slots", existing.slots, slots),
                        ("description", existing.description or "", description),
                        ("include_deferred", bool(existing.include_deferred), include_deferred),
                    )
                    if old != new
                }
                if not changes:
                    report("pool", name, "unchanged")
                    continue
                report(
                    "pool",
                    name,
                    "updated",
                    ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items()),
                )
            if not dry_run:
                Pool.create_or_update_pool(
                    name=name,
                    slots=slots,
                    description=description,
                    include_deferred=include_deferred,
                    session=session,
                )

        for item in settings.variables:
            key = str(item["variable_name"])
            value = item.get("variable_value")
            value = "" if value is None else value
            description = _blank_to_none(item.get("variable_description"))
            serialize = not isinstance(value, str)
            existing = session.scalar(select(Variable).where(Variable.key == key))
            shown = "(hidden)" if _is_secret(key) else repr(value)
            if existing is None:
                report("variable", key, "created", shown)
            else:
                current = existing.val
                if serialize:
                    try:
                        same_value = json.loads(current) == value
                    except (TypeError, json.JSONDecodeError):
                        same_value = False
                else:
                    same_value = current == value
                if same_value and (existing.description or None) == description:
                    report("variable", key, "unchanged")
                    continue
                report("variable", key, "updated", shown if not same_value else "description")
            if not dry_run:
                Variable.set(key, value, description, serialize_json=serialize, session=session)

        if dry_run:
            session.rollback()
    return counts, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create or update Airflow connections, pools and variables from an "
        "airflow_settings.yaml (Astronomer's format), expanding ${VAR} references.",
    )
    parser.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=Path(os.environ.get("AIRFLOW_SETTINGS_FILE", DEFAULT_FILE)),
        help="settings file (default: $AIRFLOW_SETTINGS_FILE or %(default)s)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would change, change nothing"
    )
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.file, dict(os.environ))
        validate(settings)
        counts, lines = apply_settings(settings, dry_run=args.dry_run)
    except SettingsError as e:
        print(f"{args.file}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # the database refused a change: nothing was applied
        # Only the first line: SQLAlchemy appends the statement's parameters, which may hold
        # a password.
        reason = (str(e).splitlines() or [""])[0]
        print(f"{args.file}: nothing applied: {type(e).__name__}: {reason}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    mode = " (dry run, nothing changed)" if args.dry_run else ""
    print(
        f"{args.file.name}: {counts['created']} created, {counts['updated']} updated, "
        f"{counts['unchanged']} unchanged{mode}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
