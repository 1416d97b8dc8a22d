"""The option chain parser against the real NSE responses in the samples folder.

Expected counts and sums are read off each file with the json module alone.
"""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from include.nse.dates import IST, nse_date
from include.nse.errors import ParseError
from include.nse.sources import option_chain
from tests.helpers import check_blank_number

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
#: The one real response of the current API (option-chain-v3), two strikes of one expiry.
V3 = "TRIMMED_option-chain-v3_NIFTY_2026-09-11_sphpnp.json"


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
        nse_date(e).isoformat() for e in document["records"]["expiryDates"]
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


# ---- the current API's shape (option-chain-v3) -------------------------------------------------
def _v3_rows(document: dict) -> list[dict]:
    """Each leg's silver row, worked out from the JSON with the standard library alone."""
    records = document["records"]
    moment = dt.datetime.strptime(records["timestamp"], "%d-%b-%Y %H:%M:%S").replace(
        tzinfo=ZoneInfo("Asia/Kolkata")
    )
    rows = []
    for item in records["data"]:
        expiry = dt.datetime.strptime(item["expiryDates"], "%d-%b-%Y").date()
        for side in ("CE", "PE"):
            if side not in item:
                continue
            leg = item[side]
            rows.append(
                {
                    "trade_date": moment.date(),
                    "snapshot_ts": moment,
                    "fetched_at": None,
                    "underlying": leg["underlying"],
                    "underlying_value": leg["underlyingValue"],
                    "expiry_date": expiry,
                    "strike_price": item["strikePrice"],
                    "option_type": side,
                    "open_interest": leg["openInterest"],
                    "change_in_oi": leg["changeinOpenInterest"],
                    "volume": leg["totalTradedVolume"],
                    # NSE's 0 is "none" for IV and prices: null.
                    "implied_volatility": leg["impliedVolatility"] or None,
                    "last_price": leg["lastPrice"] or None,
                    "change": leg["change"],
                    "bid_qty": leg["buyQuantity1"],
                    "bid_price": leg["buyPrice1"] or None,
                    "ask_price": leg["sellPrice1"] or None,
                    "ask_qty": leg["sellQuantity1"],
                    "source_format": "v3",
                }
            )
    return rows


class TestV3:
    def test_every_field_as_the_json_says(self, samples_dir):
        """Every silver field of every leg equals the value read off the JSON: legs, strikes,
        expiry, snapshot time in IST, best bid and ask, IV 0 as null, the underlying."""
        raw, document = _read(samples_dir, V3)
        df = option_chain.parse(raw, V3, underlying="NIFTY")
        assert df.schema == option_chain.DATASET.schema
        expected = _v3_rows(document)
        assert len(expected) == 4
        assert df.sort("strike_price", "option_type").rows(named=True) == expected
        # The one leg NSE quotes with IV 0 (the 24100 put) is the one null IV.
        assert df.filter(df["implied_volatility"].is_null()).select(
            "strike_price", "option_type"
        ).rows() == [(24100.0, "PE")]
        assert df["snapshot_ts"].unique().to_list() == [
            dt.datetime(2026, 9, 11, 10, 10, tzinfo=dt.UTC)
        ]

    def test_expiry_agrees_everywhere_in_the_file(self, samples_dir):
        """The item's `expiryDates` is the silver expiry; it is one of `records.expiryDates`,
        and every leg's own `expiryDate` (DD-MM-YYYY) names the same day."""
        raw, document = _read(samples_dir, V3)
        df = option_chain.parse(raw, V3)
        listed = {
            dt.datetime.strptime(text, "%d-%b-%Y").date()
            for text in document["records"]["expiryDates"]
        }
        for item in document["records"]["data"]:
            day = dt.datetime.strptime(item["expiryDates"], "%d-%b-%Y").date()
            assert day in listed
            for side in ("CE", "PE"):
                assert dt.datetime.strptime(item[side]["expiryDate"], "%d-%m-%Y").date() == day
        assert df["expiry_date"].unique().to_list() == [dt.date(2026, 9, 15)]

    @pytest.mark.parametrize(
        ("field", "value"),
        [("expiryDate", "22-09-2026"), ("strikePrice", 22700)],
    )
    def test_leg_disagreeing_with_its_item_is_refused(self, samples_dir, field, value):
        """A leg whose own expiry or strike is not its item's is refused, naming the field."""
        _, document = _read(samples_dir, V3)
        document["records"]["data"][0]["PE"][field] = value
        with pytest.raises(ParseError) as caught:
            option_chain.parse(json.dumps(document).encode(), V3)
        assert caught.value.column == f"records.data[0].PE.{field}"
        assert str(value) in str(caught.value)

    @pytest.mark.parametrize(
        ("field", "column", "severity", "passes"),
        [
            ("openInterest", "open_interest", "critical", False),
            ("totalTradedVolume", "volume", "warning", True),
            ("changeinOpenInterest", "change_in_oi", "warning", True),
            ("buyQuantity1", "bid_qty", "warning", True),
        ],
    )
    def test_null_field_is_null_and_judged_by_the_gate(
        self, samples_dir, field, column, severity, passes
    ):
        """A leg's number sent as JSON null keeps the leg, null in that column, every other
        value as before; the gate stops a null open interest and only records the others."""
        raw, document = _read(samples_dir, V3)
        document["records"]["data"][0]["CE"][field] = None
        frame = option_chain.parse(json.dumps(document).encode(), V3)
        original = option_chain.parse(raw, V3)
        before, after, new = check_blank_number(option_chain.DATASET, original, frame, 0, column)
        assert before.failed == []
        assert new == {(severity, "expect_column_values_to_not_be_null", column)}
        assert after.passed is passes
