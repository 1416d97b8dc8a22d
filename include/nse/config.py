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
#: NSE's own hosts: a redirect may lead to one of these, or stay on the host it came from.
NSE_HOSTS = (
    "nsearchives.nseindia.com",
    "archives.nseindia.com",
    "www.nseindia.com",
    "nseindia.com",
)

MIB = 1 << 20
#: Largest body accepted per dataset, on the wire and after content decoding. NSE's largest
#: files are about a megabyte (an F&O bhavcopy ZIP, an option chain answer), so each bound is
#: tens of times what NSE serves; a dataset not named here gets `DEFAULT_BODY_BYTES`.
BODY_BYTES = {
    "cm_bhavcopy": 32 * MIB,
    "cm_delivery": 32 * MIB,
    "fo_bhavcopy": 128 * MIB,
    "bulk_deals": 16 * MIB,
    "block_deals": 16 * MIB,
    "index_constituents": 16 * MIB,
    "holidays": 8 * MIB,
    "option_chain": 64 * MIB,
}
DEFAULT_BODY_BYTES = 64 * MIB


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
    # A whole download (connect, redirects, headers, body) within this, whatever the per-read
    # timeout: a body trickling a byte at a time never trips the latter.
    download_deadline_seconds: float = 120.0
    max_redirects: int = 5
    # Hosts a redirect may lead to besides the one it came from and the two configured above.
    redirect_hosts: tuple[str, ...] = NSE_HOSTS
    # Largest body per dataset (bytes); `max_body_bytes` for the others. See BODY_BYTES.
    body_bytes: tuple[tuple[str, int], ...] = tuple(BODY_BYTES.items())
    max_body_bytes: int = DEFAULT_BODY_BYTES
    # A ZIP member may inflate to at most this many bytes, and this many times its compressed
    # size (NSE's CSVs inflate about 2 to 7 times).
    zip_member_bytes: int = 256 * MIB
    zip_member_ratio: float = 100.0
    # A trading day NSE has not published (or answers with a block page) this long after its
    # DAG's time alerts once; until then its fetch looks again every `silence_poke_minutes`.
    # Dates whose alert time passed more than `silence_lookback_days` ago are history: they
    # skip without alerting.
    silence_after_minutes: float = 240.0
    silence_poke_minutes: float = 15.0
    silence_lookback_days: float = 7.0

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
            "NSE_HTTP_DEADLINE": ("download_deadline_seconds", float),
            "NSE_HTTP_MAX_REDIRECTS": ("max_redirects", int),
            "NSE_REDIRECT_HOSTS": ("redirect_hosts", _hosts),
            "NSE_MAX_BODY_MB": ("max_body_bytes", _mib),
            "NSE_ZIP_MAX_MEMBER_MB": ("zip_member_bytes", _mib),
            "NSE_ZIP_MAX_RATIO": ("zip_member_ratio", float),
            "NSE_SILENCE_AFTER_MINUTES": ("silence_after_minutes", float),
            "NSE_SILENCE_POKE_MINUTES": ("silence_poke_minutes", float),
            "NSE_SILENCE_LOOKBACK_DAYS": ("silence_lookback_days", float),
        }
        changes = {}
        for var, (field, cast) in casts.items():
            if env.get(var):
                try:
                    changes[field] = cast(env[var])
                except ValueError:
                    raise ValueError(f"{var}={env[var]!r} is not a valid {field}") from None
        bodies = dict(s.body_bytes)
        for var, value in env.items():
            name = var.removeprefix(BODY_PREFIX).lower()
            if var.startswith(BODY_PREFIX) and value:
                try:
                    bodies[name] = _mib(value)
                except ValueError:
                    raise ValueError(f"{var}={value!r} is not a size in MB") from None
        return replace(s, **changes, body_bytes=tuple(bodies.items()))

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def body_limit(self, dataset: str | None) -> int:
        """The largest body accepted for `dataset` (any body when None), in bytes."""
        return dict(self.body_bytes).get(dataset or "", self.max_body_bytes)


#: `NSE_MAX_BODY_MB_<DATASET>`, e.g. NSE_MAX_BODY_MB_FO_BHAVCOPY=256: one dataset's bound.
BODY_PREFIX = "NSE_MAX_BODY_MB_"


def _mib(value: str) -> int:
    """Megabytes (MiB, fractions allowed) as bytes; a bound must be positive."""
    try:
        size = int(float(value) * MIB)
    except OverflowError:
        raise ValueError(value) from None
    if size <= 0:
        raise ValueError(value)
    return size


def _hosts(value: str) -> tuple[str, ...]:
    return tuple(host.strip().lower() for host in value.split(",") if host.strip())
