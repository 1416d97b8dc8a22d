"""The one place that talks HTTP to NSE.

Two hosts with different manners: the archive host serves static files and needs nothing; the
API host wants a browser-like session, warmed up by a page visit that sets cookies (it may
answer that visit with 403 and still set usable cookies) and renewed when it answers 401.

Outcomes are three, and callers treat them differently:
- a `Fetched` response whose bytes are what was asked for (a ZIP, a CSV, JSON);
- `NotPublished`: a 404, or an HTML page where data was expected (some hosts answer 200 with
  HTML). Not retried, because a file that is not there will not appear within a backoff;
- `FetchError`: transient failures (connection errors, 5xx, 429, a throttling `{}` or empty
  body, a truncated body) that outlived every retry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx
from pyrate_limiter import Duration, Limiter, Rate
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from include.nse.config import Settings
from include.nse.errors import FetchError, NotPublished

log = logging.getLogger(__name__)

BROWSER_HEADERS = {
    "User-Agent": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36"
    ),
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-IN,en-GB;q=0.9,en;q=0.8",
    "Accept-Encoding": "gzip, deflate, br",
    "Connection": "keep-alive",
}
API_HEADERS = {"Accept": "application/json, text/plain, */*", "X-Requested-With": "XMLHttpRequest"}

#: Response headers worth keeping with every fetch.
RECORDED_HEADERS = (
    "content-type",
    "content-length",
    "content-encoding",
    "last-modified",
    "etag",
    "date",
    "server",
)

#: Pages visited to obtain the API host's session cookies, in order.
WARMUP_PATHS = ("/", "/option-chain")

ZIP_MAGIC = b"PK\x03\x04"


class _Transient(Exception):
    """A failure worth retrying; carries the last response's description."""


@dataclass(frozen=True)
class Fetched:
    url: str
    status: int
    headers: dict[str, str]
    content: bytes
    fetched_at: dt.datetime
    elapsed_seconds: float
    attempts: int
    sha256: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", hashlib.sha256(self.content).hexdigest())

    @property
    def size(self) -> int:
        return len(self.content)

    @property
    def file_name(self) -> str:
        return urlsplit(self.url).path.rsplit("/", 1)[-1]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self):
        return json.loads(self.content)

    def record(self) -> dict:
        """What we keep about a response (never its body)."""
        return {
            "url": self.url,
            "status": self.status,
            "headers": self.headers,
            "size": self.size,
            "sha256": self.sha256,
            "fetched_at": self.fetched_at.isoformat(),
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "attempts": self.attempts,
        }


def _limiter(per_second: float) -> Limiter:
    """A blocking limiter allowing `per_second` requests (fractions allowed: 0.5 = one per 2 s)."""
    if per_second <= 0:
        raise ValueError("rate must be positive")
    count = max(1, round(per_second))
    return Limiter(Rate(count, int(Duration.SECOND * count / per_second)))


def looks_like_html(content: bytes, content_type: str) -> bool:
    head = content[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return "text/html" in content_type.lower() or head.startswith((b"<!doctype html", b"<html"))


def check_kind(url: str, content: bytes, content_type: str, expected: tuple[str, ...]) -> None:
    """Refuse a body that is not one of the expected kinds (zip, csv, json).

    An HTML page is NSE's way of saying "not here" even with status 200, so it is NotPublished.
    """
    if looks_like_html(content, content_type):
        raise NotPublished(
            url, f"HTML page ({content_type or 'no content type'}) instead of {'/'.join(expected)}"
        )
    if "zip" in expected and content.startswith(ZIP_MAGIC):
        return
    if "json" in expected:
        try:
            json.loads(content)
            return
        except ValueError:
            pass
    if "csv" in expected and not content.startswith(ZIP_MAGIC):
        return
    raise NotPublished(url, f"body is not {'/'.join(expected)} (starts {content[:16]!r})")


class NSEClient:
    """HTTP client for NSE's archive and API hosts.

    Retries transient failures with exponential backoff and jitter, limits the request rate per
    host, and keeps a record of every response in `history`. Use as a context manager.
    """

    def __init__(self, settings: Settings | None = None, *, transport=None) -> None:
        self.settings = settings or Settings.from_env()
        self._http = httpx.Client(
            headers=BROWSER_HEADERS,
            timeout=httpx.Timeout(self.settings.timeout_seconds),
            follow_redirects=True,
            transport=transport,
        )
        self._limiters = {
            "archive": _limiter(self.settings.archive_rate_per_second),
            "api": _limiter(self.settings.api_rate_per_second),
        }
        self._session_ready = False
        self.history: list[dict] = []

    # ---- lifecycle ---------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NSEClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- public ------------------------------------------------------------------------------
    def get_archive(self, path: str, *, expect: tuple[str, ...] = ("zip", "csv")) -> Fetched:
        """A file from the archive host, e.g. `/content/cm/BhavCopy_..._F_0000.csv.zip`."""
        url = urljoin(self.settings.archive_base_url.rstrip("/") + "/", path.lstrip("/"))
        return self._fetch("archive", url, None, expect)

    def get_api(self, path: str, params: dict | None = None) -> Fetched:
        """A JSON document from the API host, warming up the session first when needed."""
        url = urljoin(self.settings.api_base_url.rstrip("/") + "/", path.lstrip("/"))
        return self._fetch("api", url, params, ("json",))

    def api_json(self, path: str, params: dict | None = None):
        return self.get_api(path, params).json()

    # ---- internals ---------------------------------------------------------------------------
    def _retrying(self) -> Retrying:
        s = self.settings
        return Retrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=wait_exponential_jitter(
                initial=s.backoff_initial_seconds,
                max=s.backoff_max_seconds,
                jitter=s.backoff_initial_seconds,
            ),
            retry=retry_if_exception_type(_Transient),
            before_sleep=lambda rs: log.warning(
                "attempt %d failed (%s); retrying in %.1f s",
                rs.attempt_number,
                rs.outcome.exception(),
                rs.next_action.sleep if rs.next_action else 0,
            ),
        )

    def _fetch(self, host: str, url: str, params: dict | None, expect: tuple[str, ...]) -> Fetched:
        attempts = 0
        try:
            for attempt in self._retrying():
                with attempt:
                    attempts += 1
                    return self._attempt(host, url, params, expect, attempts)
        except RetryError as e:
            last = e.last_attempt.exception()
            raise FetchError(f"{url}: gave up after {attempts} attempts; last: {last}") from last
        raise AssertionError("unreachable: Retrying either returns or raises")

    def _attempt(
        self, host: str, url: str, params: dict | None, expect: tuple[str, ...], attempts: int
    ) -> Fetched:
        if host == "api" and not self._session_ready:
            self._warm_up()
        self._limiters[host].try_acquire(host)
        started = time.monotonic()
        fetched_at = dt.datetime.now(dt.UTC)
        try:
            response = self._http.get(
                url, params=params, headers=API_HEADERS if host == "api" else None
            )
        except httpx.TransportError as e:
            raise _Transient(f"{type(e).__name__}: {e}") from e
        elapsed = time.monotonic() - started
        full_url = str(response.url)
        headers = {k: response.headers[k] for k in RECORDED_HEADERS if k in response.headers}
        self.history.append(
            {
                "url": full_url,
                "status": response.status_code,
                "size": len(response.content),
                "fetched_at": fetched_at.isoformat(),
                "attempt": attempts,
            }
        )
        log.info(
            "GET %s -> %d (%d bytes, %.2f s)",
            full_url,
            response.status_code,
            len(response.content),
            elapsed,
        )
        status = response.status_code
        content = response.content
        if status == 404:
            raise NotPublished(full_url, "HTTP 404")
        if host == "api" and status in (401, 403):
            self._session_ready = False
            raise _Transient(f"HTTP {status}: session refused, warming up again")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            raise FetchError(f"{full_url}: HTTP {status}: {content[:200]!r}")
        if not content.strip() or content.strip() in (b"{}", b"[]"):
            raise _Transient(f"HTTP {status} with an empty body {content[:8]!r} (throttled)")
        check_kind(full_url, content, headers.get("content-type", ""), expect)
        return Fetched(full_url, status, headers, content, fetched_at, elapsed, attempts)

    def _warm_up(self) -> None:
        """Visit pages that set the API host's session cookies; a 403 that sets them is fine."""
        base = self.settings.api_base_url.rstrip("/")
        self._http.cookies.clear()
        last = "no response"
        for path in WARMUP_PATHS:
            self._limiters["api"].try_acquire("api")
            try:
                response = self._http.get(base + path)
            except httpx.TransportError as e:
                raise _Transient(f"warm-up {path}: {type(e).__name__}: {e}") from e
            last = f"warm-up {path} -> HTTP {response.status_code}"
            log.info("%s, %d cookies", last, len(self._http.cookies))
            if len(self._http.cookies) and response.status_code < 500:
                self._session_ready = True
                return
        raise _Transient(f"API session not established ({last}, no cookies set)")
