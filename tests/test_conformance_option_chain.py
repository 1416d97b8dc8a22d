"""The option chain parser against the real NSE responses in the samples folder.

Expected counts and sums are read off each file with the json module alone.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from include.nse.errors import ParseError
from include.nse.sources import option_chain
from include.nse.sources.option_chain import IST

FOLDER = "option_chain"
#: Full older-shape responses: underlying and the exchange's timestamp in each.
FULL = {
    "NIFTY_optionchain_indices_2019-08-23_aadityatamrakar.json": (
        "NIFTY",
        dt.datetime(2019, 8, 23, 15, 30, tzinfo=IST),
    ),
    "BANKNIFTY_optionchain_indices_2022-04-27_lakk1.json": (
        "BANKNIFTY",
        dt.datetime(2022, 4, 27, 15, 30, tzinfo=IST),
    ),
}
TRIMMED = "TRIMMED_optionchain_sample_NseIndiaApi.json"


def _read(samples_dir, name):
    path = samples_dir / FOLDER / name
    raw = path.read_bytes()
    return raw, json.loads(raw)


@pytest.mark.parametrize("name", FULL)
def test_full_response(samples_dir, name):
    """Every leg is a row; legs per side, OI and volume sums equal the file's."""
    raw, document = _read(samples_dir, name)
    underlying, snapshot = FULL[name]
    df = option_chain.parse(raw, name, underlying=underlying)
    items = document["records"]["data"]
    for side in ("CE", "PE"):
        legs = [item[side] for item in items if side in item]
        rows = df.filter(df["option_type"] == side)
        assert rows.height == len(legs)
        assert rows["open_interest"].sum() == pytest.approx(sum(x["openInterest"] for x in legs))
        assert rows["volume"].sum() == sum(x["totalTradedVolume"] for x in legs)
    assert df.height < 2 * len(items), "some strikes lack a leg in these files"
    assert df["snapshot_ts"].unique().to_list() == [snapshot]
    assert df["underlying_value"].unique().to_list() == [document["records"]["underlyingValue"]]
    assert sorted({d.isoformat() for d in df["expiry_date"]}) == sorted(
        option_chain.nse_date(e, name, "").isoformat() for e in document["records"]["expiryDates"]
    )


@pytest.mark.parametrize("name", FULL)
def test_filtered_totals(samples_dir, name):
    """`filtered` repeats the nearest expiry: its totOI and totVol equal our sums for it."""
    raw, document = _read(samples_dir, name)
    df = option_chain.parse(raw, name)
    nearest = df.filter(df["expiry_date"] == df["expiry_date"].min())
    for side in ("CE", "PE"):
        rows = nearest.filter(nearest["option_type"] == side)
        assert rows["open_interest"].sum() == pytest.approx(document["filtered"][side]["totOI"])
        assert rows["volume"].sum() == document["filtered"][side]["totVol"]


def test_fractional_open_interest_is_kept(samples_dir):
    """The 2019 NIFTY file has OI 16.666... contracts (a lot size change): kept, not rounded."""
    name = "NIFTY_optionchain_indices_2019-08-23_aadityatamrakar.json"
    raw, _ = _read(samples_dir, name)
    df = option_chain.parse(raw, name)
    puts = df.filter(df["option_type"] == "PE")
    for strike, contracts in ((8500, 16.666666666666668), (9000, 4300.666666666667)):
        held = puts.filter(puts["strike_price"] == strike)["open_interest"].to_list()
        assert contracts in held


def test_trimmed_sample(samples_dir):
    """The trimmed sample has no timestamp, so it is refused by name; with one it parses."""
    raw, document = _read(samples_dir, TRIMMED)
    with pytest.raises(ParseError, match=r"records\.timestamp"):
        option_chain.parse(raw, TRIMMED)
    document["records"]["timestamp"] = "16-Oct-2023 15:30:00"
    df = option_chain.parse(json.dumps(document).encode(), TRIMMED)
    leg = document["records"]["data"][0]
    assert df.height == 2
    assert sorted(df["open_interest"].to_list()) == sorted(
        [leg["CE"]["openInterest"], leg["PE"]["openInterest"]]
    )
    # NSE's 0 for "no ask" is null, its 0 IV too; quantities stay numbers.
    assert df["ask_price"].null_count() == 2 and df["implied_volatility"].null_count() == 2
    assert df["underlying_value"].to_list() == [19731.75, 19731.75]
