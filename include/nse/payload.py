"""What a body is and what it holds: sniffing, digests, JSON and ZIP reading with clear errors.

NSE answers a missing file with an HTML page, sometimes with status 200, and throttles with
`{}`; a parser must tell these from data by the bytes, not by the URL or the status. Every
reader here names the file (and the line, column or member) in its error, and is bounded: a
ZIP member is inflated only up to a size and a ratio that no real NSE file comes near
(`NSE_ZIP_MAX_MEMBER_MB`, `NSE_ZIP_MAX_RATIO`), checked on the sizes the archive declares before
anything is inflated, and again on the bytes as they come.
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

from include.nse.config import Settings
from include.nse.errors import ParseError

Kind = Literal["zip", "html", "json", "text", "empty"]

BOM = b"\xef\xbb\xbf"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
#: A member this small is never refused for its ratio: tiny files compress oddly.
_SMALL = 1 << 20


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


def _constant_path(text: str) -> str | None:
    """Where the first NaN or Infinity of a JSON text is (`records.data[3].CE.lastPrice`)."""
    marker = object()
    stack = [("", json.loads(text, parse_constant=lambda name: marker))]
    while stack:
        path, value = stack.pop()
        if value is marker:
            return path or "the document"
        if isinstance(value, dict):
            children = [(f"{path}.{k}" if path else k, v) for k, v in value.items()]
        elif isinstance(value, list):
            children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def read_json(raw: bytes, file_name: str) -> Any:
    """The JSON document in `raw`; refuses HTML, invalid UTF-8, NaN and Infinity, naming the
    file and the line, or the field holding the NaN."""
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
        where = _constant_path(text)
        raise ParseError(file_name, f"expected JSON: {exc}", column=where) from None


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
    max_bytes: int | None = None,
    max_ratio: float | None = None,
) -> dict[str, bytes]:
    """The inflated members of a ZIP whose names `wanted` accepts, in archive order.

    Every wanted member is checked before any is inflated: a name that leaves its folder, an
    encrypted member, or a declared size beyond `max_bytes` (all members together, too) or
    `max_ratio` times its compressed size is refused. Reading stops at those bounds whatever the
    archive declared (zipfile also refuses more bytes than declared, by size and CRC). Both
    bounds default to the settings (`Settings.zip_member_bytes`, `zip_member_ratio`).
    """
    if max_bytes is None or max_ratio is None:
        settings = Settings.from_env()
        max_bytes = settings.zip_member_bytes if max_bytes is None else max_bytes
        max_ratio = settings.zip_member_ratio if max_ratio is None else max_ratio
    members: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            chosen = [i for i in archive.infolist() if not i.is_dir() and wanted(i.filename)]
            limits = [_member_limit(info, file_name, max_bytes, max_ratio) for info in chosen]
            declared = sum(info.file_size for info in chosen)
            if declared > max_bytes:
                raise ParseError(
                    file_name,
                    f"members declare {declared} bytes inflated together, over the "
                    f"{max_bytes} allowed",
                )
            left = max_bytes
            for info, limit in zip(chosen, limits, strict=True):
                where = f"{file_name}:{info.filename}"
                limit = min(limit, left)
                members[info.filename] = data = _inflate(archive, info, limit, where)
                left -= len(data)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ParseError(file_name, f"expected a readable ZIP: {exc}") from exc
    return members


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: str) -> bytes:
    """A member's bytes, read a megabyte at a time into one growing buffer (BytesIO hands that
    buffer over without a copy), refused past `limit`."""
    out = io.BytesIO()
    with archive.open(info) as member:
        while chunk := member.read(_SMALL):
            out.write(chunk)
            if out.tell() > limit:
                raise ParseError(where, f"inflates past the {limit} bytes allowed")
    return out.getvalue()


def _member_limit(info: zipfile.ZipInfo, file_name: str, max_bytes: int, max_ratio: float) -> int:
    """The most `info` may inflate to; refuses its name or declared size as `zip_members` says."""
    where = f"{file_name}:{info.filename}"
    name = info.filename
    if (
        name.startswith(("/", "\\"))
        or "\\" in name
        or (len(name) > 1 and name[1] == ":")
        or ".." in name.split("/")
    ):
        raise ParseError(where, "member name leaves its folder")
    if info.flag_bits & 0x1:
        raise ParseError(where, "member is encrypted; NSE's archives are not")
    limit = min(max_bytes, max(_SMALL, int(info.compress_size * max_ratio)))
    if info.file_size > limit:
        raise ParseError(
            where,
            f"declares {info.file_size} bytes inflated from {info.compress_size}, over the "
            f"{limit} allowed (at most {max_bytes} bytes and {max_ratio:g} times its size)",
        )
    return limit
