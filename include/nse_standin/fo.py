"""F&O bhavcopy files for the generated market: futures and options on indices and stocks.

The underlyings are NSE's five option indices (each from the day it was launched) and about 200
of the session's EQ shares: the well-known names plus those whose symbol hashes into the set,
so the list hardly changes from day to day. Index levels are a smooth function of the date with
a little daily noise; shares use the CM session's close, so the files agree with the equity
bhavcopy. Each underlying has futures on the next three monthly expiries (last Thursday) and
options around its price on those, plus weekly expiries and, for NIFTY, quarterly ones. Options
are priced with Black's formula; far-from-the-money and far-dated contracts often do not trade,
and then NSE's files print 0 for open, high, low and volume, as here.

Both layouts are written from the same contracts (legacy until 2024-07-05, UDiFF from
2024-01-01), formatted like the real files: legacy prices trimmed of trailing zeros, turnover in
lakhs, strike 0 and option type XX on futures, rows sorted; UDiFF prices to two decimals,
turnover in rupees, volume in contracts, blanks on futures, rows grouped by underlying in no
particular order. A day takes a fraction of a second: the work is numpy and polars expressions.
"""

from __future__ import annotations

import datetime as dt
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from include.nse_standin.market import (
    LEGACY_LAST_DAY,
    MONTHS,
    UDIFF_FIRST_DAY,
    UDIFF_HEADER,
    WELL_KNOWN,
    Session,
    Written,
    at,
    day_rng,
    nse_date,
    publish,
    zipped,
)

#: symbol, level in rupees on LEVEL_DATE, strike step in rupees, lot, first day of options,
#: weekly expiries.
INDICES = (
    ("NIFTY", 24_000, 50, 25, dt.date(2001, 6, 4), True),
    ("BANKNIFTY", 52_000, 100, 15, dt.date(2005, 6, 13), True),
    ("FINNIFTY", 23_500, 50, 25, dt.date(2021, 1, 11), True),
    ("MIDCPNIFTY", 12_500, 25, 50, dt.date(2022, 1, 24), True),
    ("NIFTYNXT50", 70_000, 100, 10, dt.date(2024, 4, 24), False),
)
LEVEL_DATE = dt.date(2024, 7, 1)
#: Yearly drift of index levels, so 2011 sits near a quarter of 2024.
INDEX_GROWTH = 0.11
#: One EQ share in this many (by symbol hash) has F&O, besides the well-known names.
STOCK_SHARE = 9
#: Rupees a stock contract is worth at its lot size (SEBI's minimum was 5 lakh until 2024).
CONTRACT_VALUE = 750_000
#: Strike steps in rupees by share price: (below this price, step).
STOCK_STEPS = (
    (10, 0.5),
    (50, 1),
    (100, 2.5),
    (250, 5),
    (500, 10),
    (1000, 20),
    (2500, 50),
    (5000, 100),
    (10_000, 250),
    (float("inf"), 500),
)
#: Strikes each side of the money, and strike step multiple, by expiry: weekly, near month,
#: next month, far month, quarterly.
INDEX_STRIKES = {
    "weekly": (40, 1),
    "near": (40, 1),
    "next": (25, 2),
    "far": (15, 2),
    "qtr": (10, 10),
}
STOCK_STRIKES = {"near": (20, 1), "next": (15, 1), "far": (10, 1)}
#: Chance that a contract of each expiry trades at all, at the money.
TRADE_CHANCE = {"weekly": 1.0, "near": 1.0, "next": 0.6, "far": 0.3, "qtr": 0.2}
TICK = 5  # paise
LEGACY_HEADER = (
    "INSTRUMENT,SYMBOL,EXPIRY_DT,STRIKE_PR,OPTION_TYP,OPEN,HIGH,LOW,CLOSE,SETTLE_PR,CONTRACTS,"
    "VAL_INLAKH,OPEN_INT,CHG_IN_OI,TIMESTAMP,"
)
UDIFF_TYPES = {"FUTIDX": "IDF", "FUTSTK": "STF", "OPTIDX": "IDO", "OPTSTK": "STO"}
WEEKLY_MONTH = "123456789OND"


class Underlying(NamedTuple):
    symbol: str
    is_index: bool
    #: Price in paise.
    price: int
    #: Strike step in paise.
    step: int
    lot: int
    volatility: float
    weekly: bool


# ---- expiries ---------------------------------------------------------------------------------
def monthly_expiry(year: int, month: int) -> dt.date:
    """The month's last Thursday, NSE's monthly expiry (holidays aside)."""
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - 3) % 7)


def _months_from(day: dt.date, count: int) -> list[dt.date]:
    expiries, year, month = [], day.year, day.month
    while len(expiries) < count:
        expiry = monthly_expiry(year, month)
        if expiry >= day:
            expiries.append(expiry)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return expiries


def expiries(day: dt.date, *, weekly: bool, quarterly: bool) -> list[tuple[dt.date, str]]:
    """Live expiries on `day` and their kind: near/next/far month, weekly, quarterly."""
    months = _months_from(day, 3)
    live = list(zip(months, ("near", "next", "far"), strict=True))
    if weekly:
        thursday = day + dt.timedelta(days=(3 - day.weekday()) % 7)
        weeks = (thursday + dt.timedelta(weeks=w) for w in range(4))
        live += [(w, "weekly") for w in weeks if w not in months]
    if quarterly:
        later = [e for e in _months_from(months[-1] + dt.timedelta(days=1), 9) if e.month % 3 == 0]
        live += [(e, "qtr") for e in later[:3]]
    return sorted(live)


# ---- underlyings ------------------------------------------------------------------------------
def _hash(text: str) -> int:
    return zlib.crc32(text.encode())


def index_level(base: float, day: dt.date, noise: float) -> float:
    """A smooth path through the years (drift plus two cycles) with a day's noise on top."""
    years = (day - LEVEL_DATE).days / 365.25
    cycles = 0.1 * np.sin(2 * np.pi * years / 3.3 + base) + 0.04 * np.sin(2 * np.pi * years / 0.45)
    return base * float(np.exp(INDEX_GROWTH * years + cycles + 0.004 * noise))


def stock_step(rupees: float) -> float:
    return next(step for below, step in STOCK_STEPS if rupees < below)


def _stock_lot(rupees: float) -> int:
    """The round lot nearest CONTRACT_VALUE: 1, 2, 2.5, 3, 4, 5, 6 or 7.5 times a power of ten."""
    target = CONTRACT_VALUE / rupees
    scale = 10 ** np.floor(np.log10(target))
    options = np.array([1, 2, 2.5, 3, 4, 5, 6, 7.5, 10]) * scale
    return max(int(options[np.argmin(np.abs(np.log(options / target)))]), 1)


def underlyings(
    session: Session, rng: np.random.Generator, well_known: set[str]
) -> list[Underlying]:
    """The day's indices (from their launch) and F&O shares, in symbol order within each."""
    day = session.trade_date
    indices = [
        Underlying(
            symbol,
            True,
            round(index_level(level, day, rng.standard_normal()) * 100),
            step * 100,
            lot,
            0.12 + 0.04 * (_hash(symbol) % 5) / 4,
            weekly,
        )
        for symbol, level, step, lot, launched, weekly in INDICES
        if day >= launched
    ]
    stocks = [
        Underlying(
            q.symbol,
            False,
            q.close,
            int(stock_step(q.close / 100) * 100),
            _stock_lot(q.close / 100),
            0.22 + 0.25 * (_hash(q.symbol) % 100) / 100,
            False,
        )
        for q in session.quotes
        if q.series == "EQ"
        and q.isin.startswith("INE")
        and (q.symbol in well_known or _hash(q.symbol) % STOCK_SHARE == 0)
    ]
    return indices + stocks


# ---- contracts --------------------------------------------------------------------------------
def normal_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF (Page's tanh form, within 2e-4): numpy has no erf."""
    return 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def _ticks(paise: np.ndarray, how=np.rint) -> np.ndarray:
    return np.maximum(how(paise / TICK), 1).astype(np.int64) * TICK


def _contracts(day: dt.date, listed: list[Underlying]) -> pl.DataFrame:
    """One row per live contract: its terms and the Black price of an option (paise)."""
    blocks = []
    for u in listed:
        strikes_by_kind = INDEX_STRIKES if u.is_index else STOCK_STRIKES
        for expiry, kind in expiries(day, weekly=u.weekly, quarterly=u.symbol == "NIFTY"):
            terms = {
                "symbol": u.symbol,
                "is_index": u.is_index,
                "expiry": expiry,
                "expiry_kind": kind,
                "monthly": kind in ("near", "next", "far"),
                "spot": u.price,
                "lot": u.lot,
                "volatility": u.volatility,
                "years": ((expiry - day).days + 1) / 365,
            }
            if terms["monthly"]:
                blocks.append({**terms, "option": "FUT", "strike": [0]})
            side, widen = strikes_by_kind[kind]
            step = u.step * widen
            atm = round(u.price / step) * step
            strikes = [atm + step * i for i in range(-side, side + 1) if atm + step * i > 0]
            blocks += [{**terms, "option": option, "strike": strikes} for option in ("CE", "PE")]

    frame = pl.DataFrame(blocks).explode("strike")
    spot, years = frame["spot"].to_numpy().astype(float), frame["years"].to_numpy()
    option = frame["option"].to_numpy()
    future = option == "FUT"
    k = np.where(future, spot, frame["strike"].to_numpy().astype(float))
    root = frame["volatility"].to_numpy() * np.sqrt(years)
    d1 = (np.log(spot / k) + root**2 / 2) / root
    call = spot * normal_cdf(d1) - k * normal_cdf(d1 - root)
    price = np.where(
        future, spot * np.exp(0.07 * years), np.where(option == "CE", call, call - spot + k)
    )
    moneyness = np.abs(np.log(k / spot)) / root
    return frame.with_columns(
        theory=np.maximum(price, 0.0),
        chance=np.where(future, 1.0, np.exp(-0.8 * moneyness)),
    )


def _trading(contracts: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """The day's prices, volume and open interest for each contract (paise, contracts, units)."""
    n = contracts.height
    future = (contracts["option"] == "FUT").to_numpy()
    index = contracts["is_index"].to_numpy()
    chance = (
        contracts["chance"].to_numpy()
        * contracts["expiry_kind"].replace_strict(TRADE_CHANCE).to_numpy()
    )
    traded = future | (rng.random(n) < chance)
    theory = contracts["theory"].to_numpy()
    # Premiums move far more in a day than futures do.
    spread = np.where(future, 0.006, 0.12)
    close = _ticks(theory * np.exp(spread * 0.3 * rng.standard_normal(n)))
    open_ = _ticks(theory * np.exp(spread * rng.standard_normal(n)))
    high = _ticks(
        np.maximum(open_, close) * np.exp(np.abs(spread * rng.standard_normal(n))), np.ceil
    )
    low = _ticks(
        np.minimum(open_, close) * np.exp(-np.abs(spread * rng.standard_normal(n))), np.floor
    )
    high, low = (
        np.maximum(high, np.maximum(open_, close)),
        np.minimum(low, np.minimum(open_, close)),
    )
    last = np.clip(_ticks(close * np.exp(0.2 * spread * rng.standard_normal(n))), low, high)
    average = np.clip(_ticks((open_ + high + low + close) / 4), low, high)
    prev_close = _ticks(theory * np.exp(0.5 * spread * rng.standard_normal(n)))
    scale = np.where(index, 4e4, 300.0) * np.where(future, 0.5, 1.0)
    lots = np.where(
        traded,
        np.maximum(np.rint(scale * chance * rng.lognormal(0, 1.0, n)), 1),
        0,
    ).astype(np.int64)
    trades = np.where(traded, np.maximum(np.rint(lots * rng.uniform(0.3, 0.9, n)), 1), 0)
    # Some contracts that did not trade today still have open positions.
    held = traded | (rng.random(n) < 0.3)
    open_lots = np.where(
        held, np.rint((lots + rng.lognormal(2, 1, n)) * rng.uniform(0.5, 5, n)), 0
    ).astype(np.int64)
    before = np.floor(open_lots * rng.uniform(0, 1.6, n)).astype(np.int64)
    lot = contracts["lot"].to_numpy()
    strike = contracts["strike"].to_numpy()
    notional = np.where(future, average, average + strike)
    # NSE prints 0 for the prices of a contract that did not trade.
    if_traded = np.where(traded, 1, 0)
    return contracts.with_columns(
        open=open_ * if_traded,
        high=high * if_traded,
        low=low * if_traded,
        close=np.where(traded, close, prev_close),
        last=last * if_traded,
        prev_close=prev_close,
        settle=np.where(future, close, _ticks(theory)),
        # Legacy files print 0 as the settlement price of some options.
        legacy_settle_zero=~future & ~traded & (rng.random(n) < 0.05),
        contracts=lots,
        trades=trades.astype(np.int64),
        turnover=lots * lot * notional,
        open_interest=open_lots * lot,
        change_in_oi=(open_lots - before) * lot,
    )


# ---- formats ----------------------------------------------------------------------------------
def _paise(column: str) -> pl.Expr:
    """Two decimals, as UDiFF prints prices: 36.30."""
    value = pl.col(column)
    return pl.format("{}.{}", value // 100, (value % 100).cast(pl.String).str.zfill(2))


def _trimmed(column: str | pl.Expr) -> pl.Expr:
    """The legacy file's numbers: 36, 36.3 and 2592129.15, no trailing zeros."""
    value = pl.col(column) if isinstance(column, str) else column
    rupees, paise = (value // 100).cast(pl.String), value % 100
    return (
        pl.when(paise == 0)
        .then(rupees)
        .when(paise % 10 == 0)
        .then(pl.format("{}.{}", rupees, paise // 10))
        .otherwise(pl.format("{}.{}", rupees, paise.cast(pl.String).str.zfill(2)))
    )


def _day_month_year(column: str, *, title: bool) -> pl.Expr:
    """30-Jun-2022 (legacy expiry) or 13-JUN-2022 (legacy timestamp)."""
    names = [m.title() if title else m for m in MONTHS]
    date = pl.col(column)
    month = date.dt.month().replace_strict(range(1, 13), names, return_dtype=pl.String)
    return pl.format("{}-{}-{}", date.dt.strftime("%d"), month, date.dt.year())


def _instrument() -> pl.Expr:
    return (
        pl.when(pl.col("option") == "FUT")
        .then(pl.lit("FUT"))
        .otherwise(pl.lit("OPT"))
        .add(pl.when(pl.col("is_index")).then(pl.lit("IDX")).otherwise(pl.lit("STK")))
    )


def legacy_csv(book: pl.DataFrame, day: dt.date) -> bytes:
    future = pl.col("option") == "FUT"
    # Hundredths of a lakh, cut rather than rounded, as NSE prints them.
    lakhs = pl.col("turnover") // 100_000
    stamp = nse_date(day, upper=True)
    lines = (
        book.with_columns(instrument=_instrument())
        .sort("instrument", "symbol", "expiry", "option", "strike")
        .select(
            pl.concat_str(
                pl.col("instrument"),
                pl.col("symbol"),
                _day_month_year("expiry", title=True),
                _trimmed("strike"),
                pl.when(future).then(pl.lit("XX")).otherwise(pl.col("option")),
                _trimmed("open"),
                _trimmed("high"),
                _trimmed("low"),
                _trimmed("close"),
                pl.when(pl.col("legacy_settle_zero"))
                .then(pl.lit("0"))
                .otherwise(_trimmed("settle")),
                pl.col("contracts"),
                _trimmed(lakhs),
                pl.col("open_interest"),
                pl.col("change_in_oi"),
                pl.lit(stamp),
                pl.lit(""),
                separator=",",
            )
        )
        .to_series()
    )
    return "\n".join([LEGACY_HEADER, *lines, ""]).encode()


def udiff_csv(book: pl.DataFrame, day: dt.date, order: np.ndarray) -> bytes:
    future = pl.col("option") == "FUT"
    monthly = pl.col("monthly")
    expiry = pl.col("expiry")
    period = (
        pl.when(monthly)
        .then(
            pl.format(
                "{}{}",
                expiry.dt.strftime("%y"),
                expiry.dt.month().replace_strict(range(1, 13), MONTHS, return_dtype=pl.String),
            )
        )
        .otherwise(
            pl.format(
                "{}{}{}",
                expiry.dt.strftime("%y"),
                expiry.dt.month().replace_strict(
                    range(1, 13), list(WEEKLY_MONTH), return_dtype=pl.String
                ),
                expiry.dt.strftime("%d"),
            )
        )
    )
    name = pl.format(
        "{}{}{}",
        pl.col("symbol"),
        period,
        pl.when(future).then(pl.lit("FUT")).otherwise(pl.concat_str(_trimmed("strike"), "option")),
    )
    iso = pl.lit(day.isoformat())
    blank = pl.lit("")
    lines = (
        book.with_columns(
            instrument=_instrument().replace_strict(UDIFF_TYPES),
            name=name,
            rank=pl.Series(order),
        )
        .with_columns(
            token=pl.col("name").map_batches(
                lambda names: pl.Series([_hash(n) % 900_000 + 35_000 for n in names.to_list()]),
                return_dtype=pl.Int64,
            )
        )
        .sort("rank")
        .select(
            pl.concat_str(
                iso,
                iso,
                pl.lit("FO"),
                pl.lit("NSE"),
                pl.col("instrument"),
                pl.col("token"),
                blank,
                pl.col("symbol"),
                blank,
                expiry.dt.strftime("%Y-%m-%d"),
                expiry.dt.strftime("%Y-%m-%d"),
                pl.when(future).then(blank).otherwise(_paise("strike")),
                pl.when(future).then(blank).otherwise(pl.col("option")),
                pl.col("name"),
                _paise("open"),
                _paise("high"),
                _paise("low"),
                _paise("close"),
                _paise("last"),
                _paise("prev_close"),
                _paise("spot"),
                _paise("settle"),
                pl.col("open_interest"),
                pl.col("change_in_oi"),
                pl.col("contracts"),
                _paise("turnover"),
                pl.col("trades"),
                pl.lit("F1"),
                pl.col("lot"),
                blank,
                blank,
                blank,
                blank,
                blank,
                separator=",",
            )
        )
        .to_series()
    )
    return "\n".join([UDIFF_HEADER, *lines, ""]).encode()


# ---- the writer -------------------------------------------------------------------------------
def write_fo_bhavcopy(session: Session, out: Path) -> list[Written]:
    """Legacy until 2024-07-05, UDiFF from 2024-01-01: both for the first half of 2024."""
    day = session.trade_date
    rng = day_rng(session.seed, day, "fo_bhavcopy")
    well_known = {symbol for symbol, *_, kind in WELL_KNOWN if kind == 0}
    book = _trading(_contracts(day, underlyings(session, rng, well_known)), rng)
    written = []
    if day <= LEGACY_LAST_DAY:
        month = MONTHS[day.month - 1]
        member = f"fo{day:%d}{month}{day:%Y}bhav.csv"
        path = out / "content/historical/DERIVATIVES" / f"{day:%Y}" / month / f"{member}.zip"
        published = at(day, 18, 45)
        publish(path, zipped(member, legacy_csv(book, day), published), published)
        written.append(Written(path, book.height))
    if day >= UDIFF_FIRST_DAY:
        member = f"BhavCopy_NSE_FO_0_0_0_{day:%Y%m%d}_F_0000.csv"
        path = out / "content/fo" / f"{member}.zip"
        published = at(day, 18, 50)
        # Rows come grouped by underlying, the groups and the rows in each in no set order.
        symbols = book["symbol"].unique(maintain_order=True)
        group = book["symbol"].replace_strict(symbols, rng.permutation(len(symbols))).to_numpy()
        order = group * book.height + rng.permutation(book.height)
        publish(path, zipped(member, udiff_csv(book, day, order), published), published)
        written.append(Written(path, book.height))
    return written
