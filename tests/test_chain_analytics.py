"""Chain analytics against values worked out by hand on a seven-strike chain (`small_chain`,
whose legs are tabled in tests/helpers.py), and the chart."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from include.nse import chain_analytics
from tests.helpers import EXPIRY, SNAPSHOT, small_chain


@pytest.fixture(scope="module")
def gold() -> dict:
    frame = chain_analytics.analytics(small_chain())
    assert frame.height == 1
    return frame.row(0, named=True)


def test_put_call_ratios(gold):
    """PCR by OI is 220 / 170 and by volume 2480 / 3050 (sums of `small_chain`'s legs)."""
    assert gold["pe_oi"] == 220 and gold["ce_oi"] == 170
    assert gold["pcr_oi"] == pytest.approx(220 / 170)
    assert gold["pe_volume"] == 2480 and gold["ce_volume"] == 3050
    assert gold["pcr_volume"] == pytest.approx(2480 / 3050)


def test_max_pain(gold):
    """Writers' payout by settlement strike: 85: 2200, 90: 1250, 95: 600, 100: 400, 105: 600,
    110: 1200, 115: 2000 -> max pain 100.

    E.g. at 100: calls 90 (10 x 10) and 95 (20 x 5) pay 200; puts 105 (20 x 5) and 110 (10 x 10)
    pay 200.
    """
    assert gold["max_pain"] == 100.0


def test_atm_strike_and_iv(gold):
    """Spot 102 is nearest 100 (2 away, 105 is 3); ATM IV is (15 + 16) / 2."""
    assert gold["atm_strike"] == 100.0
    assert gold["atm_iv"] == pytest.approx(15.5)


def test_iv_spread_near_the_money(gold):
    """The five strikes nearest 102 are 100, 105, 95, 110, 90: put - call IV 1, 2, 2, 2, 4."""
    assert gold["iv_spread"] == pytest.approx(11 / 5)


def test_oi_change_and_buildup(gold):
    """Calls added 48 and puts 49 contracts; the largest adds are 105, 100, 110 and 95, 90, 105."""
    assert gold["ce_oi_change"] == 48 and gold["pe_oi_change"] == 49
    assert gold["ce_buildup_strikes"] == [105.0, 100.0, 110.0]
    assert gold["pe_buildup_strikes"] == [95.0, 90.0, 105.0]


def test_ties_take_the_lower_strike():
    """Spot exactly between two strikes picks the lower as ATM; an equal payout too."""
    chain = small_chain().with_columns(underlying_value=pl.lit(97.5))
    row = chain_analytics.analytics(chain).row(0, named=True)
    assert row["atm_strike"] == 95.0
    symmetric = small_chain().filter(pl.col("strike_price").is_in([95.0, 100.0]))
    symmetric = symmetric.with_columns(open_interest=pl.lit(10.0))
    # At 95 the 100 put pays 10 x 5; at 100 the 95 call pays 10 x 5: a tie.
    assert chain_analytics.analytics(symmetric)["max_pain"].to_list() == [95.0]


def test_snapshots_and_expiries_are_kept_apart():
    """Two expiries and two snapshots give four rows, each with its own figures."""
    later = SNAPSHOT + dt.timedelta(minutes=5)
    chain = small_chain()
    other = chain.with_columns(
        expiry_date=pl.lit(EXPIRY + dt.timedelta(days=7)),
        open_interest=pl.col("open_interest") * 2,
    )
    frames = [
        chain,
        other,
        chain.with_columns(snapshot_ts=pl.lit(later).dt.convert_time_zone("Asia/Kolkata")),
    ]
    frames.append(other.with_columns(snapshot_ts=frames[-1]["snapshot_ts"]))
    gold = chain_analytics.analytics(pl.concat(frames))
    assert gold.height == 4
    assert sorted(gold["ce_oi"].to_list()) == [170.0, 170.0, 340.0, 340.0]
    assert set(gold["max_pain"].to_list()) == {100.0}


def test_no_calls_means_no_ratio():
    """A chain with only puts has no PCR instead of a division by zero."""
    puts = small_chain().filter(pl.col("option_type") == "PE")
    row = chain_analytics.analytics(puts).row(0, named=True)
    assert row["pcr_oi"] is None and row["pcr_volume"] is None
    assert row["ce_buildup_strikes"] == []


def test_chart_is_a_png(tmp_path, gold):
    """The chart is written as a PNG of a sensible size where it was asked for."""
    path = chain_analytics.draw_oi_chart(small_chain(), gold, tmp_path / "gold" / "oi.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 500)
