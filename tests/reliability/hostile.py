"""A hostile NSE on loopback, bombs to serve from it, and a child process's peak memory.

`Hostile` is a small threaded HTTP server whose answer to each path is scripted, step by step:

    with Hostile(root) as nse:
        nse.script("/content/cm/x.csv.zip", Reply(429), Reply(429), Reply(200, body))
        ...

Each request to a scripted path takes the next step; the last one repeats. A step is a `Reply`
(status, headers, and how the body goes out: whole, chunked without a length, trickled a byte at
a time, or under a Content-Length it never honours) or a function of the request handler for
anything else. A path without a script is served from `root` as NSE's archive serves it (a 404
HTML page when missing). `other_url` reaches the same server under another host name.
"""

from __future__ import annotations

import resource
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.conftest import PROJECT_ROOT

NOT_FOUND = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1></body></html>\n"
BLOCK_PAGE = (
    b"<!DOCTYPE html><html><head><title>Access Denied</title></head><body>"
    b"<p>Please enable JavaScript to continue.</p></body></html>\n"
)
MIB = 1 << 20


@dataclass
class Reply:
    status: int = 200
    #: The body, or a function giving its chunks (a body too large to hold).
    body: bytes | Callable[[], Iterable[bytes]] = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Content-Length sent: the body's own by default ("auto"), another number to lie, None to
    #: send the body chunked without one.
    length: int | str | None = "auto"
    #: Seconds between the body's bytes: a trickle.
    trickle: float = 0.0
    #: Answer only once this is set.
    gate: threading.Event | None = None

    def chunks(self) -> Iterable[bytes]:
        return self.body() if callable(self.body) else [self.body]


Step = Reply | Callable[[BaseHTTPRequestHandler], None]


class Hostile:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self.log: list[dict] = []
        self._scripts: dict[str, list[Step]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def script(self, path: str, *steps: Step) -> None:
        with self._lock:
            self._scripts[path] = list(steps)

    def _next(self, path: str) -> Step | None:
        with self._lock:
            steps = self._scripts.get(path)
            if not steps:
                return None
            return steps.pop(0) if len(steps) > 1 else steps[0]

    def requests(self, path: str) -> list[dict]:
        return [entry for entry in self.log if entry["path"] == path]

    # ---- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Hostile:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.hostile = self
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_url(self) -> str:
        """This server under another host name: what a redirect to another host reaches."""
        return f"http://localhost:{self.port}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        """Quiet: a client that hangs up on a hostile answer is the point of it."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args) -> None:
        """Silent: `Hostile.log` is the record."""

    def do_GET(self) -> None:
        hostile: Hostile = self.server.hostile
        path = unquote(urlsplit(self.path).path)
        entry = {"path": path, "host": self.headers.get("Host"), "status": None, "sent": 0}
        hostile.log.append(entry)
        step = hostile._next(path)
        if step is None:
            step = self._file(hostile.root, path)
        if isinstance(step, Reply):
            entry["status"] = step.status
            self._reply(step, entry)
        else:
            step(self)

    @staticmethod
    def _file(root: Path | None, path: str) -> Reply:
        file = (root / path.lstrip("/")) if root else None
        if file is None or not file.is_file() or ".." in path.split("/"):
            return Reply(404, NOT_FOUND, {"Content-Type": "text/html"})
        kind = "application/zip" if path.endswith(".zip") else "text/csv"
        return Reply(200, file.read_bytes(), {"Content-Type": kind})

    def _reply(self, reply: Reply, entry: dict) -> None:
        if reply.gate is not None:
            reply.gate.wait(120)
        length = reply.length
        if length == "auto":
            length = len(reply.body) if isinstance(reply.body, bytes) else None
        self.send_response(reply.status)
        headers = {"Content-Type": "application/octet-stream", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            for chunk in reply.chunks():
                pieces = [chunk[i : i + 1] for i in range(len(chunk))] if reply.trickle else [chunk]
                for piece in pieces:
                    self.wfile.write(
                        b"%x\r\n%s\r\n" % (len(piece), piece) if length is None else piece
                    )
                    entry["sent"] += len(piece)
                    if reply.trickle:
                        self.wfile.flush()
                        time.sleep(reply.trickle)
            if length is None:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        if length is not None and entry["sent"] != length:
            self.close_connection = True


# ---- bombs --------------------------------------------------------------------------------------
def deflate_zeros(size: int) -> bytes:
    """A raw deflate stream of `size` zero bytes (a multiple of 1 MiB), built in milliseconds:
    one flushed megabyte's blocks repeated (a full flush makes each copy stand alone)."""
    assert size % MIB == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (size // MIB) + compressor.flush(zlib.Z_FINISH)


def _crc_zeros(size: int) -> int:
    crc, chunk = 0, bytes(MIB)
    for _ in range(size // MIB):
        crc = zlib.crc32(chunk, crc)
    return crc


def gzip_zeros(size: int) -> bytes:
    """A gzip body that inflates to `size` zero bytes."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    trailer = struct.pack("<II", _crc_zeros(size), size & 0xFFFFFFFF)
    return header + deflate_zeros(size) + trailer


def zip_bomb(member: str, size: int, declared: int | None = None) -> bytes:
    """A ZIP whose one member inflates to `size` zero bytes; `declared` lies about that size in
    both headers (and the CRC is made up: nobody checks a bomb's)."""
    data = deflate_zeros(size)
    crc = _crc_zeros(size) if declared is None else 0x0BADC0DE
    declared = size if declared is None else declared
    name = member.encode()
    local = struct.pack(
        "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), declared, len(name), 0
    )
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII",
        0x02014B50,
        20,
        20,
        0,
        8,
        0,
        0x21,
        crc,
        len(data),
        declared,
        len(name),
        0,
        0,
        0,
        0,
        0,
        0,
    )
    body = local + name + data
    directory = central + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(directory), len(body), 0)
    return body + directory + end


# ---- a child process and its peak memory --------------------------------------------------------
#: Runs `include.nse` as `python -m` would, and on exit writes the process's peak resident memory
#: (VmHWM, kB) to the file named first. Not the kernel's rusage of the child: that carries the
#: parent's peak over fork and exec, and a test process is large.
_MEASURED = """
import atexit, runpy, sys
report = sys.argv[1]

def peak():
    with open("/proc/self/status") as status:
        kb = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(report, "w") as out:
        out.write(kb)

atexit.register(peak)
sys.argv = ["include.nse", *sys.argv[2:]]
runpy.run_module("include.nse", run_name="__main__", alter_sys=True)
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    #: The child's peak resident memory.
    peak_mib: float


def run_cli(*args: str, env: dict, timeout: float = 300, file_size: int | None = None) -> Run:
    """`python -m include.nse ARGS` in a child process; its exit code, output and peak memory.
    `file_size`: no file the child writes may grow past it (a write fails with EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))

    with tempfile.NamedTemporaryFile("r") as report:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, report.name, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
            timeout=timeout,
            preexec_fn=limit if file_size else None,
        )
        kb = report.read().strip()
    assert kb, f"include.nse {' '.join(args)} reported no peak memory: {done.stderr[-500:]}"
    return Run(done.returncode, done.stdout, done.stderr, round(int(kb) / 1024, 1))
