#!/usr/bin/env python
"""Refuse to start the stack while a deploy secret is a placeholder, too short or malformed.

`airflow-init` runs this first, with the secrets of `.env` in its environment under their
`.env` names; every other Airflow service waits for `airflow-init` to succeed, so a stack
configured with `.env.example`'s `change-me-...` values never comes up. Each problem is one line
on stderr naming the variable and what it needs; a value is never printed.

    python scripts/check_secrets.py

Exit status: 0 when every secret is acceptable, 1 otherwise.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping

#: `.env.example` holds `change-me-...` for every secret.
PLACEHOLDER = "change-me"
#: HMAC keys (the JWT signing secret and the api-server's secret key): HS512 wants at least as
#: many random bytes as its output is long; 32 is the floor.
MIN_KEY_BYTES = 32
MIN_PASSWORD_LENGTH = 16
#: The Postgres password sits inside database URLs, unescaped.
URL_SAFE = re.compile(r"[A-Za-z0-9._-]+")

GENERATE_KEY = "`openssl rand -hex 32`"
GENERATE_PASSWORD = "`openssl rand -hex 16`"  # noqa: S105 — the command that makes one
GENERATE_FERNET = (
    '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`'
)


def _key(value: str) -> str | None:
    if len(value.encode()) < MIN_KEY_BYTES:
        return f"is shorter than {MIN_KEY_BYTES} bytes"
    return None


def _password(value: str) -> str | None:
    if len(value) < MIN_PASSWORD_LENGTH:
        return f"is shorter than {MIN_PASSWORD_LENGTH} characters"
    return None


def _url_password(value: str) -> str | None:
    if not URL_SAFE.fullmatch(value):
        return "holds characters other than letters, digits, '.', '_' and '-' (it is in a URL)"
    return _password(value)


def _fernet(value: str) -> str | None:
    """Airflow takes several comma-separated keys while rotating; each must be a Fernet key."""
    from cryptography.fernet import Fernet

    for position, key in enumerate(value.split(","), start=1):
        try:
            Fernet(key.strip().encode())
        except ValueError:
            which = f"(key {position}) " if "," in value else ""
            return f"{which}is not a Fernet key: 32 url-safe base64-encoded bytes"
    return None


#: Variable (its `.env` name) -> the check of its value and how to make a good one.
SECRETS: dict[str, tuple[Callable[[str], str | None], str]] = {
    "POSTGRES_PASSWORD": (_url_password, GENERATE_PASSWORD),
    "AIRFLOW_FERNET_KEY": (_fernet, GENERATE_FERNET),
    "AIRFLOW_JWT_SECRET": (_key, GENERATE_KEY),
    "AIRFLOW_API_SECRET_KEY": (_key, GENERATE_KEY),
    "AIRFLOW_ADMIN_PASSWORD": (_password, GENERATE_PASSWORD),
    "CLICKHOUSE_PASSWORD": (_password, GENERATE_PASSWORD),
}


def problems(env: Mapping[str, str]) -> list[str]:
    """One line per secret in `env` that cannot be deployed, naming it and what it needs."""
    found = []
    for name, (check, generate) in SECRETS.items():
        value = env.get(name, "")
        if not value:
            problem = "is not set"
        elif PLACEHOLDER in value.lower():
            problem = f"still holds the {PLACEHOLDER}-... placeholder from .env.example"
        else:
            problem = check(value)
        if problem:
            found.append(f"{name} {problem}; generate one with {generate}")
    # One leaked value must not open two doors.
    seen: dict[str, str] = {}
    for name in SECRETS:
        value = env.get(name, "")
        if value and PLACEHOLDER not in value.lower():
            if value in seen:
                found.append(f"{name} is the same as {seen[value]}; give each its own value")
            seen.setdefault(value, name)
    return found


def main() -> int:
    found = problems(os.environ)
    for line in found:
        print(f"refusing to start: {line}", file=sys.stderr)
    if found:
        print("set these in .env, then run `docker compose up -d` again", file=sys.stderr)
        return 1
    print(f"deploy secrets: {len(SECRETS)} checked: none a placeholder, short, malformed or shared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
