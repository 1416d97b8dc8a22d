"""A local stand-in for NSE: serves a directory laid out like NSE's hosts, and misbehaves on demand.

The client, the DAGs and the demo are pointed at it instead of NSE. One server plays both hosts:

- Archive paths serve files under `root` by URL path (`/content/cm/BhavCopy_...csv.zip`). A
  missing file is a 404 with an HTML page, as NSE answers.
- `/api/<endpoint>` needs the session cookies (`nsit`, `nseappid`) that a visit to `/` or
  `/option-chain` sets; without them it answers 401 with an HTML page. The JSON comes from
  `api_file(root, endpoint, params)`: `root/api/<endpoint>/<query>.json`, where `<query>` is the
  parameters sorted by name as `k1=v1&k2=v2` (percent-encoded like a URL), falling back to
  `root/api/<endpoint>.json`.
- Bodies are brotli- or gzip-encoded when the request accepts it (ZIPs are sent as they are).

Faults imitate what NSE does on a bad day. Each matches a path glob and applies to the next
`times` matching requests (or to all, with `times=None`); the first matching fault wins. They are
set from Python (`add_fault`) or, for another process, over HTTP:
`POST /_standin/faults` with a JSON fault or a list of them, e.g.
`{"kind": "status", "path": "/content/*", "times": 2, "status": 503}` (fields as in `Fault`),
`GET` to list them, `DELETE /_standin/faults` to clear them, `GET /_standin/log` for the request
log and `DELETE /_standin/log` to empty it. Control requests are neither faulted nor logged.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from email.utils import formatdate
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import brotli

CONTROL_PREFIX = "/_standin/"
WARMUP_PATHS = frozenset({"/", "/option-chain"})
SESSION_COOKIES = ("nsit", "nseappid")
CONTENT_TYPES = {
    ".zip": "application/zip",
    ".csv": "text/csv",
    ".json": "application/json",
    ".html": "text/html",
}

#: Fault kinds, and the requests each can apply to.
FAULTS = {
    "status": "any",  # answer `status` (500, 502, 503, 429 ...) with `body`
    "throttle_empty_json": "any",  # 200 with `{}`: NSE's way of saying "too fast"
    "empty_body": "any",  # 200 with nothing
    "html_200": "any",  # a soft 404: 200 with an HTML page
    "html_404": "any",  # 404 with an HTML page, even where a file exists
    "slow": "any",  # wait `seconds` before answering
    "truncated": "any",  # promise the whole body, send half, close the connection
    "refuse_cookies": "warmup",  # the warm-up page answers 403 and sets no cookies
    "warmup_403_with_cookies": "warmup",  # 403, but the cookies it sets work (NSE does this)
    "expire_session": "api",  # 401 despite cookies; the session is gone until a new warm-up
}


@dataclass
class Fault:
    """One kind of misbehaviour for requests whose path matches `path` (an fnmatch glob)."""

    kind: str
    path: str = "*"
    #: Matching requests still to hit; None for every one.
    times: int | None = 1
    status: int = 503
    body: str | None = None
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault {self.kind!r}; known: {', '.join(FAULTS)}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be at least 1 (or None for always), not {self.times}")

    def applies(self, scope: str, path: str) -> bool:
        return FAULTS[self.kind] in ("any", scope) and fnmatch.fnmatchcase(path, self.path)


def api_file(root: Path, endpoint: str, params: Mapping[str, str] | None = None) -> Path:
    """Where the stand-in looks for `/api/<endpoint>?<params>`; write API fixtures here."""
    base = Path(root) / "api" / endpoint.strip("/")
    if not params:
        return base.with_name(base.name + ".json")
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return base / (quote(query, safe="=&-_.,") + ".json")


def _page(title: str, text: str) -> bytes:
    return (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{text}</p></body></html>\n"
    ).encode()


NOT_FOUND_PAGE = _page("404 Not Found", "The requested URL was not found on this server.")


class StandIn:
    """The server, its faults and its request log. Start and stop it, or use it as a context."""

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._log: list[dict] = []
        #: nsit -> nseappid of every live session.
        self._sessions: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> StandIn:
        server = ThreadingHTTPServer((self.host, self.port), _Handler)
        server.standin = self
        self._server = server
        self.port = server.server_address[1]
        # A short poll keeps stop() quick; requests are served at once whatever it is.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="nse-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the stand-in is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    # ---- faults ------------------------------------------------------------------------------
    def add_fault(
        self,
        kind: str,
        path: str = "*",
        *,
        times: int | None = 1,
        status: int = 503,
        body: str | None = None,
        seconds: float = 1.0,
    ) -> Fault:
        fault = Fault(kind, path, times, status, body, seconds)
        self._add([fault])
        return fault

    def _add(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _take_fault(self, scope: str, path: str) -> Fault | None:
        """The first fault for this request, counted as used."""
        with self._lock:
            for fault in self._faults:
                if fault.applies(scope, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # ---- request log -------------------------------------------------------------------------
    @property
    def request_log(self) -> list[dict]:
        """Requests served so far, oldest first: method, path, query, status, fault, headers."""
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def _record(self, entry: dict) -> None:
        with self._lock:
            self._log.append(entry)

    # ---- sessions ----------------------------------------------------------------------------
    def _open_session(self) -> dict[str, str]:
        cookies = {name: secrets.token_urlsafe(16) for name in SESSION_COOKIES}
        with self._lock:
            self._sessions[cookies["nsit"]] = cookies["nseappid"]
        return cookies

    def _in_session(self, cookies: Mapping[str, str]) -> bool:
        """Whether the cookies are those of a live session."""
        nsit = cookies.get("nsit")
        with self._lock:
            return nsit is not None and self._sessions.get(nsit) == cookies.get("nseappid")

    def _end_session(self, nsit: str | None) -> None:
        with self._lock:
            self._sessions.pop(nsit, None)


@dataclass
class _Answer:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: Headers and body go out in separate writes; with Nagle on, a kept-alive connection waits
    #: for the client's delayed ACK (40 ms on Linux) before sending each body.
    disable_nagle_algorithm = True
    server_version = "nse-standin"
    sys_version = ""
    #: Request headers worth keeping in the log.
    LOGGED_HEADERS = ("user-agent", "accept", "accept-encoding", "x-requested-with")

    @property
    def standin(self) -> StandIn:
        return self.server.standin

    def log_message(self, format, *args) -> None:
        """Silent: the request log is the record."""

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_POST(self) -> None:
        self._control()

    def do_DELETE(self) -> None:
        self._control()

    # ---- NSE ---------------------------------------------------------------------------------
    def _serve(self, send_body: bool) -> None:
        received = time.time()
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path.startswith(CONTROL_PREFIX):
            self._control()
            return
        scope = "warmup" if path in WARMUP_PATHS else "api" if path.startswith("/api/") else "file"
        fault = self.standin._take_fault(scope, path)
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.seconds)
        answer = self._faulty(fault, scope, path) or self._answer(scope, path, url.query, fault)
        truncate = fault is not None and fault.kind == "truncated"
        # Logged before the body goes out, so a client that has its answer finds it in the log.
        entry = {
            "time": received,
            "method": self.command,
            "path": path,
            "query": url.query,
            "status": answer.status,
            "fault": fault.kind if fault else None,
            "cookies": sorted(self._cookies()),
            "headers": {h: self.headers[h] for h in self.LOGGED_HEADERS if h in self.headers},
            "bytes": 0,
        }
        self.standin._record(entry)
        try:
            entry["bytes"] = self._send(answer, send_body, truncate)
        except ConnectionError:  # the client gave up first, e.g. timing out on a slow answer
            self.close_connection = True

    def _faulty(self, fault: Fault | None, scope: str, path: str) -> _Answer | None:
        """The answer a fault gives instead of the real one; None where it only alters delivery."""
        if fault is None or fault.kind in ("slow", "truncated", "warmup_403_with_cookies"):
            return None
        kind = fault.kind
        if kind == "status":
            default = _page(f"{fault.status} {_reason(fault.status)}", "Please try again later.")
            body = default if fault.body is None else fault.body.encode()
            return _Answer(fault.status, body, _sniff(body))
        if kind == "throttle_empty_json":
            return _Answer(200, b"{}", "application/json")
        if kind == "empty_body":
            return _Answer(200, b"", _content_type(path, scope))
        if kind == "html_200":
            return _Answer(200, _page("NSE", "Page not available."), "text/html; charset=utf-8")
        if kind == "html_404":
            return _Answer(404, NOT_FOUND_PAGE, "text/html; charset=utf-8")
        if kind == "refuse_cookies":
            return _Answer(403, _page("Access Denied", "Access denied."), "text/html")
        if kind == "expire_session":
            self.standin._end_session(self._cookies().get("nsit"))
            return _unauthorized()
        raise AssertionError(f"fault {kind} has no answer")

    def _answer(self, scope: str, path: str, query: str, fault: Fault | None) -> _Answer:
        root = self.standin.root
        if scope == "warmup":
            cookies = self.standin._open_session()
            headers = tuple(
                ("Set-Cookie", f"{name}={value}; Path=/; HttpOnly")
                for name, value in cookies.items()
            )
            if fault is not None and fault.kind == "warmup_403_with_cookies":
                return _Answer(403, _page("Access Denied", "Access denied."), "text/html", headers)
            return _Answer(
                200,
                _page("NSE - National Stock Exchange of India Ltd.", ""),
                "text/html; charset=utf-8",
                headers,
            )
        if scope == "api":
            if not self.standin._in_session(self._cookies()):
                return _unauthorized()
            params = dict(parse_qsl(query, keep_blank_values=True))
            endpoint = path.removeprefix("/api/")
            for candidate in (api_file(root, endpoint, params), api_file(root, endpoint)):
                if self._servable(candidate):
                    return _Answer(200, candidate.read_bytes(), "application/json")
            return _Answer(404, NOT_FOUND_PAGE, "text/html; charset=utf-8")
        file = root / path.lstrip("/")
        if not self._servable(file):
            return _Answer(404, NOT_FOUND_PAGE, "text/html; charset=utf-8")
        modified = formatdate(file.stat().st_mtime, usegmt=True)
        return _Answer(
            200, file.read_bytes(), _content_type(path, scope), (("Last-Modified", modified),)
        )

    def _servable(self, file: Path) -> bool:
        """A file under the root (a path with `..` cannot reach out of it)."""
        return file.resolve().is_relative_to(self.standin.root) and file.is_file()

    def _send(self, answer: _Answer, send_body: bool, truncate: bool) -> int:
        body, encoding = _encode(answer.body, answer.content_type, self.headers["Accept-Encoding"])
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(body)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Vary", "Accept-Encoding")
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if not send_body:
            return 0
        if truncate:
            body = body[: len(body) // 2]
            self.close_connection = True
        self.wfile.write(body)
        return len(body)

    def _cookies(self) -> dict[str, str]:
        jar = SimpleCookie()
        jar.load(self.headers.get("Cookie", ""))
        return {name: morsel.value for name, morsel in jar.items()}

    # ---- control -----------------------------------------------------------------------------
    def _control(self) -> None:
        path = urlsplit(self.path).path
        standin = self.standin
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if path == CONTROL_PREFIX + "faults" and self.command == "POST":
            try:
                payload = json.loads(raw or b"null")
                specs = payload if isinstance(payload, list) else [payload]
                faults = [Fault(**spec) for spec in specs]
            except (TypeError, ValueError) as e:
                self._send(_Answer(400, _json({"error": str(e)}), "application/json"), True, False)
                return
            standin._add(faults)
            answer = _Answer(201, _json([asdict(f) for f in standin.faults]), "application/json")
        elif path == CONTROL_PREFIX + "faults" and self.command == "GET":
            answer = _Answer(200, _json([asdict(f) for f in standin.faults]), "application/json")
        elif path == CONTROL_PREFIX + "faults" and self.command == "DELETE":
            standin.clear_faults()
            answer = _Answer(204, b"", "application/json")
        elif path == CONTROL_PREFIX + "log" and self.command == "GET":
            answer = _Answer(200, _json(standin.request_log), "application/json")
        elif path == CONTROL_PREFIX + "log" and self.command == "DELETE":
            standin.clear_log()
            answer = _Answer(204, b"", "application/json")
        else:
            answer = _Answer(404, _json({"error": f"no {self.command} {path}"}), "application/json")
        self._send(answer, self.command != "HEAD", False)


def _json(value) -> bytes:
    return json.dumps(value).encode()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _content_type(path: str, scope: str) -> str:
    if scope == "api":
        return "application/json"
    if scope == "warmup":
        return "text/html; charset=utf-8"
    return CONTENT_TYPES.get(Path(path).suffix.lower(), "application/octet-stream")


def _sniff(body: bytes) -> str:
    return "application/json" if body.lstrip()[:1] in (b"{", b"[") else "text/html"


def _unauthorized() -> _Answer:
    return _Answer(401, _page("401 Unauthorized", "Resource not accessible."), "text/html")


def _encode(body: bytes, content_type: str, accept_encoding: str | None) -> tuple[bytes, str]:
    """The body as the client accepts it: brotli first, as NSE prefers; ZIPs stay as they are."""
    if not body or content_type == "application/zip":
        return body, ""
    accepted = _accepted(accept_encoding or "")
    if "br" in accepted:
        # A CDN's everyday quality: the highest (11) takes half a second for a bhavcopy.
        return brotli.compress(body, quality=5), "br"
    if "gzip" in accepted:
        return gzip.compress(body, mtime=0), "gzip"
    return body, ""


def _accepted(header: str) -> set[str]:
    """Codings Accept-Encoding names with a weight above zero."""
    codings = set()
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = next((p.removeprefix("q=") for p in params if p.startswith("q=")), "1")
        try:
            accepted = float(weight) > 0
        except ValueError:
            accepted = False
        if name and accepted:
            codings.add(name.lower())
    return codings
