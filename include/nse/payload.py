"""What a body is and what it holds: sniffing, digests, JSON and ZIP reading with clear errors.

NSE answers a missing file with an HTML page, sometimes with status 200, and throttles with
`{}`; a parser must tell these from data by the bytes, not by the URL or the status. Every
reader here names the file (and the line, column or member) in its error, and is bounded: a
ZIP member is inflated only up to a size and a ratio that no real NSE file comes near.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import zlib
from collections.abc import Callable
from typing import Any, Literal

from include.nse.errors import ParseError

Kind = Literal["zip", "html", "json", "text", "empty"]

BOM = b"\xef\xbb\xbf"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: Largest inflated ZIP member accepted: NSE's largest files (F&O bhavcopies) are about 60 MB.
MAX_MEMBER_BYTES = 1 << 30
#: Largest inflated/compressed ratio accepted: NSE's CSVs compress about 10:1.
MAX_MEMBER_RATIO = 200
_CHUNK = 1 << 20


def digest(data: bytes) -> str:
    """sha256 of `data`, hex: how bronze files are named in manifests and checked on reading."""
    return hashlib.sha256(data).hexdigest()


def sniff(data: bytes, content_type: str = "") -> Kind:
    """What a body looks like: a ZIP, an HTML page, JSON, other text, or nothing."""
    head = data[:512].removeprefix(BOM).lstrip()
    if not head:
        return "empty"
    if data.startswith(ZIP_MAGIC):
        return "zip"
    if "text/html" in content_type.lower() or head[:15].lower().startswith(
        (b"<!doctype html", b"<html")
    ):
        return "html"
    if head[:1] in (b"{", b"["):
        return "json"
    return "text"


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number NSE sends")


def read_json(raw: bytes, file_name: str) -> Any:
    """The JSON document in `raw`; refuses HTML, invalid UTF-8, NaN and Infinity, naming the
    file and the line."""
    if sniff(raw) == "html":
        raise ParseError(file_name, "expected JSON, found an HTML page (NSE's error page?)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ParseError(file_name, f"expected UTF-8 text ({exc.reason})", line=line) from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ParseError(
            file_name, f"expected JSON: {exc.msg} (column {exc.colno})", line=exc.lineno
        ) from None
    except ValueError as exc:
        raise ParseError(file_name, f"expected JSON: {exc}") from None


def json_object(raw: bytes, file_name: str) -> dict:
    """A JSON document that must be an object."""
    document = read_json(raw, file_name)
    if not isinstance(document, dict):
        raise ParseError(file_name, f"expected a JSON object, found {type(document).__name__}")
    return document


def is_number(value: object) -> bool:
    """A JSON number that is a real, finite number (not a bool, NaN or infinity)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (isinstance(value, int) or math.isfinite(value))
    )


def zip_members(
    raw: bytes,
    file_name: str,
    wanted: Callable[[str], bool],
    *,
    max_bytes: int = MAX_MEMBER_BYTES,
    max_ratio: float = MAX_MEMBER_RATIO,
) -> dict[str, bytes]:
    """The inflated members of a ZIP whose names `wanted` accepts, in archive order.

    A member whose name leaves its folder, or that inflates beyond `max_bytes` or `max_ratio`
    times its compressed size (declared or while reading), is refused before it fills memory.
    """
    members: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            for info in archive.infolist():
                if info.is_dir() or not wanted(info.filename):
                    continue
                where = f"{file_name}:{info.filename}"
                if info.filename.startswith(("/", "\\")) or ".." in info.filename.split("/"):
                    raise ParseError(where, "member name leaves its folder")
                limit = min(max_bytes, max(_CHUNK, int(info.compress_size * max_ratio)))
                if info.file_size > limit:
                    raise ParseError(
                        where, f"declares {info.file_size} bytes inflated, over the {limit} allowed"
                    )
                members[info.filename] = _inflate(archive, info, limit, where)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ParseError(file_name, f"expected a readable ZIP: {exc}") from exc
    return members


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    out = bytearray()
    with archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            out += chunk
            if len(out) > limit:
                raise ParseError(where, f"inflates past the {limit} bytes allowed")
    return bytes(out)
