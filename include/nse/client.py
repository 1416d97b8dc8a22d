"""The one place that talks HTTP to NSE.

Two hosts with different manners: the archive host serves static files and needs nothing; the
API host wants a browser-like session, warmed up by a page visit that sets cookies (it may
answer that visit with 403 and still set usable cookies) and renewed when it answers 401.

Outcomes are three, and callers treat them differently:
- a `Fetched` response whose bytes are what was asked for (a ZIP, a CSV, JSON);
- `NotPublished`: a 404, or an HTML page where data was expected (some hosts answer 200 with
  HTML; such an answer is marked `blocked`, since a block page looks the same). Not retried,
  because a file that is not there will not appear within a backoff;
- `FetchError`: transient failures (connection errors, 5xx, 429, a throttling `{}` or empty
  body, a truncated body, a download that outlived its deadline) that outlived every retry, or
  a bound that tripped (not retried: the same request trips it again).

Every download is bounded. Its body by the dataset's limit (`Settings.body_limit`): the size
Content-Length declares is refused before reading, and the bytes received and the bytes decoded
from them are counted as they arrive, so neither a lying server nor a gzip or brotli bomb fills
memory. Its time by a deadline for the whole download on top of the per-read timeout, which a
body trickling a byte at a time would never trip. Its redirects by number and by host: only to
the host it came from, the configured hosts, or NSE's (`Settings.redirect_hosts`). And what it
is kept as by its name: an answer whose URL names no usable file never reaches the lake.

Bronze keeps a file as NSE serves it: the body with its Content-Encoding undone (gzip and
brotli only wrap it for the wire; NSE's ZIPs come as they are), the encoding recorded with the
other headers.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import brotli
import httpcore
import httpx
from pyrate_limiter import Duration, Limiter, Rate
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from include.nse.config import MIB, Settings
from include.nse.errors import FetchError, NotPublished
from include.nse.payload import BOM

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
#: Largest warm-up page read: only its cookies matter.
WARMUP_BYTES = 8 * MIB

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
    #: The URLs that redirected to `url`, first (the one asked for) to last.
    redirects: tuple[str, ...] = ()

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
            "redirects": list(self.redirects),
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

    An HTML page is NSE's way of saying "not here" even with status 200, so it is NotPublished;
    blocked, since a block or bot-challenge page is an HTML page with status 200 too.
    """
    if looks_like_html(content, content_type):
        raise NotPublished(
            url,
            f"HTML page ({content_type or 'no content type'}) instead of {'/'.join(expected)}",
            blocked=True,
        )
    if "zip" in expected and content.startswith(ZIP_MAGIC):
        return
    if "json" in expected and content.removeprefix(BOM).lstrip()[:1] in (b"{", b"["):
        # JSON by its look: whether it reads (UTF-8, no NaN, well formed) is the parser's to
        # say, naming the line or field, once the bytes are in bronze; refused here it would
        # pass for a file not published yet.
        return
    if "csv" in expected and not content.startswith(ZIP_MAGIC):
        return
    raise NotPublished(url, f"body is not {'/'.join(expected)} (starts {content[:16]!r})")


def size_text(size: int) -> str:
    """A byte count for people: 2.0 GiB, 16 MiB, 512 bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


# ---- the deadline of a whole download ----------------------------------------------------------
class _Clock(threading.local):
    """The deadline (monotonic seconds) of the download running on this thread, if any."""

    deadline: float | None = None

    def left(self, timeout: float | None, expired: type[Exception]) -> float | None:
        """`timeout`, cut to the time left before the deadline; `expired` once it has passed."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise expired("the download's deadline has passed")
        return left if timeout is None else min(timeout, left)

    @property
    def passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write waits no longer than the download has left."""

    def __init__(self, stream: httpcore.NetworkStream, clock: _Clock) -> None:
        self._stream = stream
        self._clock = clock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._clock.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._clock.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> _DeadlineStream:
        timeout = self._clock.left(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, timeout), self._clock
        )

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, clock: _Clock) -> None:
        self._backend = httpcore.SyncBackend()
        self._clock = clock

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        timeout = self._clock.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._clock)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):
        timeout = self._clock.left(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_unix_socket(path, timeout, socket_options)
        return _DeadlineStream(stream, self._clock)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _Transport(httpx.HTTPTransport):
    """httpx's own transport, over connections that honour the download's deadline."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        limits = httpx.Limits()
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_DeadlineBackend(clock),
        )


# ---- content decoding, bounded ----------------------------------------------------------------
# Each decoder appends what `data` decodes to onto `body`, and stops once `body` holds more than
# `limit` bytes: a bomb stops at the bound, not at the end of its data.
class _Identity:
    def decode(self, data: bytes, body: bytearray, limit: int) -> None:
        body += data

    def finish(self) -> None:
        pass


class _Inflate:
    """gzip (one member or several) or deflate (zlib-wrapped, or raw as some servers send)."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._wbits: int | None = 31 if coding == "gzip" else None
        self._inflater = None

    def decode(self, data: bytes, body: bytearray, limit: int) -> None:
        while data and len(body) <= limit:
            if self._inflater is None or self._inflater.eof:
                if self._wbits is None:
                    self._wbits = zlib.MAX_WBITS if _zlib_header(data) else -zlib.MAX_WBITS
                self._inflater = zlib.decompressobj(self._wbits)
            body += self._inflater.decompress(data, limit + 1 - len(body))
            data = self._inflater.unconsumed_tail or self._inflater.unused_data

    def finish(self) -> None:
        if self._inflater is not None and not self._inflater.eof:
            raise _Transient(f"the {self._coding} body ends before its end (truncated)")


def _zlib_header(data: bytes) -> bool:
    return len(data) > 1 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class _Brotli:
    #: Output asked of brotli at a time: its buffer overshoots a limit by up to half again.
    STEP = MIB

    def __init__(self) -> None:
        self._decompressor = brotli.Decompressor()
        self._fed = False

    def decode(self, data: bytes, body: bytearray, limit: int) -> None:
        self._fed = True
        body += self._decompressor.process(data, output_buffer_limit=self.STEP)
        # Output held back by the limit comes with empty input, until more input is wanted.
        while len(body) <= limit and not self._decompressor.can_accept_more_data():
            body += self._decompressor.process(b"", output_buffer_limit=self.STEP)

    def finish(self) -> None:
        if self._fed and not self._decompressor.is_finished():
            raise _Transient("the brotli body ends before its end (truncated)")


def _decoder(content_encoding: str, url: str):
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return _Identity()
    if codings in (["gzip"], ["x-gzip"]):
        return _Inflate("gzip")
    if codings == ["deflate"]:
        return _Inflate("deflate")
    if codings == ["br"]:
        return _Brotli()
    raise FetchError(
        f"{url}: Content-Encoding {content_encoding!r} is not one this client asked for "
        "(gzip, deflate, br)"
    )


def read_body(response: httpx.Response, limit: int, what: str = "") -> bytes:
    """The decoded body of a streamed response, refused (FetchError) past `limit` bytes: as
    Content-Length declares it, as received, or as decoded. `what` names whose limit it is."""
    url = str(response.url)
    bound = f"the {size_text(limit)} allowed{what}"
    declared = response.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise FetchError(
            f"{url}: declares a body of {size_text(int(declared))} ({declared} bytes, "
            f"Content-Length), over {bound}; not read"
        )
    encoding = response.headers.get("content-encoding", "")
    decoder = _decoder(encoding, url)
    body = bytearray()
    received = 0
    try:
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > limit:
                raise FetchError(f"{url}: body over {bound}; stopped after {received} bytes")
            decoder.decode(chunk, body, limit)
            if len(body) > limit:
                raise FetchError(
                    f"{url}: body over {bound} once {encoding} decoded "
                    f"(from {received} bytes received); stopped there"
                )
        decoder.finish()
    except (zlib.error, brotli.error) as e:
        raise _Transient(f"{url}: the {encoding} body does not decode: {e}") from e
    return bytes(body)


class _Session:
    """Whether the API host's cookies are set: one state for a client and its views."""

    ready = False


class NSEClient:
    """HTTP client for NSE's archive and API hosts.

    Retries transient failures with exponential backoff and jitter, limits the request rate per
    host, bounds every download (see the module's doc), and keeps a record of every response in
    `history`. Use as a context manager; `for_dataset` gives the same client bounded by one
    dataset's body limit.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._clock = _Clock()
        self._http = httpx.Client(
            headers=BROWSER_HEADERS,
            timeout=httpx.Timeout(self.settings.timeout_seconds),
            follow_redirects=False,
            transport=_Transport(self._clock),
        )
        self._limiters = {
            "archive": _limiter(self.settings.archive_rate_per_second),
            "api": _limiter(self.settings.api_rate_per_second),
        }
        self._session = _Session()
        self.dataset: str | None = None
        self.body_limit = self.settings.body_limit(None)
        self.history: list[dict] = []

    def for_dataset(self, dataset: str) -> NSEClient:
        """This client (one session, one rate, one history) with `dataset`'s body limit."""
        view = copy.copy(self)
        view.dataset = dataset
        view.body_limit = self.settings.body_limit(dataset)
        return view

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
        if host == "api" and not self._session.ready:
            self._warm_up()
        self._limiters[host].try_acquire(host)
        started = time.monotonic()
        fetched_at = dt.datetime.now(dt.UTC)
        response, content, redirects = self._download(
            url, params, API_HEADERS if host == "api" else None, self.body_limit
        )
        elapsed = time.monotonic() - started
        full_url = str(response.url)
        headers = {k: response.headers[k] for k in RECORDED_HEADERS if k in response.headers}
        self.history.append(
            {
                "url": full_url,
                "status": response.status_code,
                "size": len(content),
                "fetched_at": fetched_at.isoformat(),
                "attempt": attempts,
                "redirects": redirects,
            }
        )
        log.info(
            "GET %s -> %d (%d bytes, %.2f s)", full_url, response.status_code, len(content), elapsed
        )
        status = response.status_code
        if status == 404:
            raise NotPublished(full_url, "HTTP 404")
        if host == "api" and status in (401, 403):
            self._session.ready = False
            raise _Transient(f"HTTP {status}: session refused, warming up again")
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}")
        if status >= 300:
            raise FetchError(f"{full_url}: HTTP {status}: {content[:200]!r}")
        if not content.strip() or content.strip() in (b"{}", b"[]"):
            raise _Transient(f"HTTP {status} with an empty body {content[:8]!r} (throttled)")
        check_kind(full_url, content, headers.get("content-type", ""), expect)
        fetched = Fetched(
            full_url, status, headers, content, fetched_at, elapsed, attempts, tuple(redirects)
        )
        self._check_name(fetched)
        return fetched

    @staticmethod
    def _check_name(fetched: Fetched) -> None:
        """Refuse an answer whose URL names no file the lake could keep it under."""
        from include.nse.lake import check_file_name

        try:
            check_file_name(fetched.file_name)
        except ValueError as e:
            came = f" (redirected from {fetched.redirects[0]})" if fetched.redirects else ""
            raise FetchError(
                f"{fetched.url}{came}: the answer's URL names no usable file ({e}); not kept"
            ) from None

    def _download(
        self, url: str, params: dict | None, headers: dict | None, limit: int
    ) -> tuple[httpx.Response, bytes, list[str]]:
        """GET `url` within the deadline, redirects followed where allowed, body bounded by
        `limit`: the last response, its decoded body, and the URLs that redirected to it."""
        deadline = self.settings.download_deadline_seconds
        what = f" for {self.dataset}" if self.dataset else ""
        self._clock.deadline = time.monotonic() + deadline
        try:
            response, redirects = self._follow(url, params, headers)
            try:
                return response, read_body(response, limit, what), redirects
            finally:
                response.close()
        except httpx.TimeoutException as e:
            if self._clock.passed:
                raise _Transient(
                    f"{url}: not received in full within the {deadline:g} s allowed for a "
                    f"download (NSE_HTTP_DEADLINE)"
                ) from e
            raise _Transient(f"{url}: {type(e).__name__}: {e}") from e
        except httpx.TransportError as e:
            raise _Transient(f"{url}: {type(e).__name__}: {e}") from e
        finally:
            self._clock.deadline = None

    def _follow(
        self, url: str, params: dict | None, headers: dict | None
    ) -> tuple[httpx.Response, list[str]]:
        """Send the request, following redirects only to allowed hosts, at most
        `max_redirects` times and never in a loop; the response is open (streamed)."""
        request = self._http.build_request("GET", url, params=params, headers=headers)
        chain: list[str] = []
        while True:
            response = self._http.send(request, stream=True)
            target = response.next_request
            if target is None:
                return response, chain
            response.close()
            chain.append(str(request.url))
            path = " -> ".join([*chain, str(target.url)])
            if str(target.url) in chain:
                raise FetchError(f"{chain[0]}: redirect loop: {path}")
            if len(chain) > self.settings.max_redirects:
                raise FetchError(
                    f"{chain[0]}: more than {self.settings.max_redirects} redirects "
                    f"(NSE_HTTP_MAX_REDIRECTS): {path}"
                )
            if not self._may_redirect(request.url, target.url):
                raise FetchError(
                    f"{chain[0]}: redirected to {target.url}, which is not NSE's host "
                    f"(allowed: the same host, {', '.join(self._allowed_hosts())}); not followed"
                )
            request = target

    def _allowed_hosts(self) -> list[str]:
        s = self.settings
        configured = [urlsplit(u).netloc.lower() for u in (s.archive_base_url, s.api_base_url)]
        return list(dict.fromkeys([*configured, *s.redirect_hosts]))

    def _may_redirect(self, source: httpx.URL, target: httpx.URL) -> bool:
        """To the same host and port, a configured host, or one of NSE's; never from https
        down to http, never to another scheme."""
        if target.scheme not in ("http", "https") or (
            source.scheme == "https" and target.scheme == "http"
        ):
            return False
        if (target.host, target.port) == (source.host, source.port):
            return True
        netloc = target.host if target.port is None else f"{target.host}:{target.port}"
        return netloc.lower() in self._allowed_hosts()

    def _warm_up(self) -> None:
        """Visit pages that set the API host's session cookies; a 403 that sets them is fine."""
        base = self.settings.api_base_url.rstrip("/")
        self._http.cookies.clear()
        last = "no response"
        for path in WARMUP_PATHS:
            self._limiters["api"].try_acquire("api")
            try:
                response, _, _ = self._download(base + path, None, None, WARMUP_BYTES)
            except (_Transient, FetchError) as e:
                raise _Transient(f"warm-up {path}: {e}") from e
            last = f"warm-up {path} -> HTTP {response.status_code}"
            log.info("%s, %d cookies", last, len(self._http.cookies))
            if len(self._http.cookies) and response.status_code < 500:
                self._session.ready = True
                return
        raise _Transient(f"API session not established ({last}, no cookies set)")
