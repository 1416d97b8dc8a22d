"""Settings: where the lake is and which hosts to call, from the environment.

Every setting has a default that points at the real NSE and a lake under the project, so the
library works with no configuration; tests and the demo point the hosts at the local stand-in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

ARCHIVE_BASE_URL = "https://nsearchives.nseindia.com"
API_BASE_URL = "https://www.nseindia.com"


@dataclass(frozen=True)
class Settings:
    lake_root: Path = PROJECT_ROOT / ".local" / "lake"
    archive_base_url: str = ARCHIVE_BASE_URL
    api_base_url: str = API_BASE_URL
    timeout_seconds: float = 30.0
    # Attempts per request for transient failures (connection errors, 5xx, 429, empty bodies).
    max_attempts: int = 5
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 30.0
    # Requests per second per host; NSE blocks clients that go much faster.
    archive_rate_per_second: float = 5.0
    api_rate_per_second: float = 3.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Settings from `NSE_*` environment variables; unset ones keep their defaults."""
        env = os.environ if env is None else env
        s = cls()
        casts = {
            "NSE_LAKE_ROOT": ("lake_root", Path),
            "NSE_ARCHIVE_BASE_URL": ("archive_base_url", str),
            "NSE_API_BASE_URL": ("api_base_url", str),
            "NSE_HTTP_TIMEOUT": ("timeout_seconds", float),
            "NSE_HTTP_MAX_ATTEMPTS": ("max_attempts", int),
            "NSE_HTTP_BACKOFF_INITIAL": ("backoff_initial_seconds", float),
            "NSE_HTTP_BACKOFF_MAX": ("backoff_max_seconds", float),
            "NSE_ARCHIVE_RATE": ("archive_rate_per_second", float),
            "NSE_API_RATE": ("api_rate_per_second", float),
        }
        changes = {}
        for var, (field, cast) in casts.items():
            if env.get(var):
                changes[field] = cast(env[var])
        return replace(s, **changes)

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)
