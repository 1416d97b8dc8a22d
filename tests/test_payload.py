"""ZIP members are read within bounds: a name that leaves its folder, or a size or ratio no NSE
file comes near, is refused naming the file and the member, before or while inflating."""

from __future__ import annotations

import pytest

from include.nse.errors import ParseError
from include.nse.payload import zip_members
from tests.helpers import zipped
from tests.reliability.hostile import MIB, zip_bomb

CSV = b"SYMBOL,SERIES,CLOSE\n" + b"ABC,EQ,101.5\n" * 2000


def _refusal(raw: bytes, **bounds) -> str:
    with pytest.raises(ParseError) as caught:
        zip_members(raw, "day.zip", lambda name: True, **bounds)
    return str(caught.value)


def test_members_within_bounds_are_read():
    assert zip_members(zipped({"a.csv": CSV, "b.txt": b"x"}), "day.zip", lambda n: True) == {
        "a.csv": CSV,
        "b.txt": b"x",
    }


@pytest.mark.parametrize("name", ["../up.csv", "a/../../up.csv", "/abs.csv", "a\\b.csv", "C:x.csv"])
def test_member_leaving_its_folder_is_refused(name):
    assert f"day.zip:{name}: member name leaves its folder" in _refusal(zipped({name: CSV}))


def test_declared_size_over_the_bound_is_refused_before_inflating():
    """A member declaring a gigabyte is refused on the central directory's word."""
    message = _refusal(zip_bomb("day.csv", 64 * MIB), max_bytes=16 * MIB, max_ratio=1e6)
    assert "day.zip:day.csv: declares 67108864 bytes inflated from" in message
    assert "at most 16777216 bytes and 1e+06 times its size" in message


def test_ratio_over_the_bound_is_refused():
    """64 MiB of zeros compress about 1000 to 1: no NSE file comes near."""
    message = _refusal(zip_bomb("day.csv", 64 * MIB), max_bytes=1 << 30, max_ratio=100)
    assert "day.zip:day.csv: declares 67108864 bytes" in message and "100 times" in message


def test_members_together_over_the_bound_are_refused():
    raw = zipped({"a.csv": CSV, "b.csv": CSV})
    message = _refusal(raw, max_bytes=len(CSV) * 3 // 2, max_ratio=1e6)
    assert message.startswith(f"day.zip: members declare {2 * len(CSV)} bytes inflated together")


def test_member_lying_about_its_size_stops_at_it():
    """Declaring 1 MiB and holding 64: reading stops at the declared size and the CRC refuses it."""
    raw = zip_bomb("day.csv", 64 * MIB, declared=MIB)
    assert "day.zip: expected a readable ZIP: Bad CRC-32" in _refusal(raw, max_ratio=1e6)


def test_bounds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("NSE_ZIP_MAX_MEMBER_MB", "0.01")
    assert "over the" in _refusal(zipped({"a.csv": CSV * 10}))
