"""The generated market: listed securities, their trading days, and how NSE publishes a day.

The market is a seeded simulation: a fixed universe of listed securities whose closing prices
follow a mean-reverting geometric random walk, one step per trading day from `EPOCH`. Starting
the walk at a fixed day, with each day's shocks drawn from that day's own seed, makes a day's
files independent of the range asked for: January and February generated apart equal the two
months generated together, byte for byte.

Every format writer takes one `Session` from here and writes that day's files. A writer wanting
randomness of its own draws from `day_rng(session.seed, session.trade_date, "<its name>")`, which
leaves every other draw as it was. What all of NSE's files share lives here too: IST, the
locale-free month names and `DD-Mon-YYYY` dates, the day the formats switched, and publishing a
file atomically with NSE's publication time as its modification time.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: First day of the walk. NSE's legacy bhavcopy gained TOTALTRADES and ISIN around 2011;
#: earlier files had another layout, which is not generated.
EPOCH = dt.date(2011, 1, 3)
LEGACY_LAST_DAY = dt.date(2024, 7, 5)
#: NSE published UDiFF from 2024-07-08 and back-filled it to this day.
UDIFF_FIRST_DAY = dt.date(2024, 1, 1)
#: From this day NSE quotes shares below Rs 250 in 1-paisa ticks instead of 5 paise.
PAISA_TICK_FROM = dt.date(2024, 6, 10)
PAISA_TICK_BELOW = 250_00

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
#: NSE's month names; strftime's %b would follow the locale.
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")

#: Daily pull of log prices towards each security's own level, so decades of walk stay plausible.
REVERSION = 0.01
#: Price band: no close moves more than this (log) from the previous one.
BAND = 0.2
#: Trade-for-trade series, for which the full bhavcopy prints " -" as delivery.
NO_DELIVERY_SERIES = frozenset({"BE", "BZ"})

#: UDiFF's common bhavcopy header, the same for every segment.
UDIFF_HEADER = (
    "TradDt,BizDt,Sgmt,Src,FinInstrmTp,FinInstrmId,ISIN,TckrSymb,SctySrs,XpryDt,"
    "FininstrmActlXpryDt,StrkPric,OptnTp,FinInstrmNm,OpnPric,HghPric,LwPric,ClsPric,LastPric,"
    "PrvsClsgPric,UndrlygPric,SttlmPric,OpnIntrst,ChngInOpnIntrst,TtlTradgVol,TtlTrfVal,"
    "TtlNbOfTxsExctd,SsnId,NewBrdLotQty,Rmks,Rsvd1,Rsvd2,Rsvd3,Rsvd4"
)


# ---- trading days -------------------------------------------------------------------------------
def trading_days(
    start: dt.date,
    end: dt.date,
    holidays: Iterable[dt.date] = (),
    weekend_sessions: Iterable[dt.date] = (),
) -> list[dt.date]:
    """Weekdays from `start` to `end` that are not `holidays`, and the `weekend_sessions` (a
    Budget Saturday, a Muhurat Sunday) among them; a trading calendar replaces this."""
    closed, open_ = set(holidays), set(weekend_sessions)
    days = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if (d.weekday() < 5 and d not in closed) or d in open_]


# ---- identifiers ------------------------------------------------------------------------------
_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_LETTERS = _ALNUM[10:]


def isin_check_digit(body: str) -> str:
    """The 12th character of an ISIN: Luhn over the first 11, letters read as 10..35."""
    digits = "".join(str(int(c, 36)) for c in body)
    total = 0
    for position, char in enumerate(reversed(digits)):
        d = int(char) * (2 if position % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def _isin(body: str) -> str:
    return body + isin_check_digit(body)


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _alnum(rng: np.random.Generator, n: int) -> str:
    return "".join(pick(rng, _ALNUM) for _ in range(n))


def _issuer(rng: np.random.Generator) -> str:
    """NSDL's 4-character issuer code: older ones like 002A, newer ones like 0OB2."""
    if rng.random() < 0.75:
        return f"{int(rng.integers(1000)):03d}{pick(rng, _LETTERS)}"
    return f"0{pick(rng, _LETTERS)}{pick(rng, _LETTERS)}{pick(rng, _ALNUM)}"


_ONSETS = (
    "A BA BHA CHA DA DHA GA GO HA JA JAI KA KI KO LA LAK MA MAN MI NA NAV NI PA PRA PU RA RAJ RI "
    "SA SHA SHRI SU TA TRI UMA VA VI VIJ YA"
).split()
_ENDINGS = ("", "", "AL", "AN", "AR", "ESH", "IK", "IKA", "IN", "IT", "ODA", "UL", "NDRA", "RAT")
#: Sector word in company names, and its short form in symbols.
_SECTORS = (
    ("INDUSTRIES", "IND"),
    ("PHARMA", "PHARM"),
    ("TEXTILES", "TEX"),
    ("STEEL", "STEEL"),
    ("FINANCE", "FIN"),
    ("CHEMICALS", "CHEM"),
    ("INFRA", "INFRA"),
    ("POWER", "POWER"),
    ("SUGAR", "SUGAR"),
    ("AGRO", "AGRO"),
    ("FOODS", "FOOD"),
    ("CEMENT", "CEM"),
    ("PAPER", "PAPER"),
    ("AUTO", "AUTO"),
    ("TECHNOLOGIES", "TECH"),
    ("SOFTWARE", "SOFT"),
    ("CAPITAL", "CAP"),
    ("ENERGY", "ENERGY"),
    ("POLYMERS", "POLY"),
    ("LIFESCIENCES", "LIFE"),
    ("HOTELS", "HOTEL"),
    ("ENTERPRISES", "ENT"),
    ("", ""),
)
_ROMAN = ("I", "II", "III", "IV", "V", "VI")


def _stem(rng: np.random.Generator) -> str:
    return pick(rng, _ONSETS) + pick(rng, _ONSETS) + pick(rng, _ENDINGS)


Issue = tuple[str, str, str]


def _company(rng: np.random.Generator) -> Issue:
    """A listed company's shares: symbols like SURYAPHARM, 20MICRONS, M&MFIN or BAJAJ-AUTO."""
    stem = _stem(rng)
    sector, short = pick(rng, _SECTORS)
    style = rng.random()
    if style < 0.05:
        number = pick(rng, ("3", "5", "20", "21", "63", "360"))
        symbol, words = number + stem + short, [number, stem, sector]
    elif style < 0.07:
        a, b = pick(rng, _LETTERS), pick(rng, _LETTERS)
        symbol, words = f"{a}&{b}{short or 'IND'}", [a, "&", b, sector or "INDUSTRIES"]
    elif style < 0.09 and short:
        symbol, words = f"{stem}-{short}", [stem, sector]
    else:
        symbol, words = stem + short, [stem, sector]
    name = " ".join(w for w in [*words, "LTD" if rng.random() < 0.7 else "LIMITED"] if w)
    isin = _isin(f"INE{_issuer(rng)}010{int(rng.integers(1, 4))}")
    return symbol[:10].rstrip("&-"), name, isin


def _etf(rng: np.random.Generator) -> Issue:
    amc = pick(rng, ("ICICI", "SBI", "HDFC", "MO", "NIP", "KOTAK", "AXIS", "MIRAE", "UTI", "DSP"))
    index = pick(rng, ("NIFTY", "BANK", "GOLD", "SILVER", "IT", "PSE", "N100", "MID150", "LIQ"))
    suffix = pick(rng, ("", "ETF", "IETF", "BEES", "ADD"))
    isin = _isin(f"INF{int(rng.integers(100, 1000))}{pick(rng, _LETTERS)}{_alnum(rng, 4)}")
    return f"{amc}{index}{suffix}"[:10], f"{amc} ETF {index}", isin


def _government_isin(rng: np.random.Generator, year: int) -> str:
    return _isin(f"IN00{year}{int(rng.integers(1000)):03d}")


def _gold_bond(rng: np.random.Generator) -> Issue:
    year = int(rng.integers(24, 33))
    tranche = pick(rng, ("I", "II", "IV", "V", "VI", "IX", "X"))  # symbols fit in 10 characters
    symbol = f"SGB{pick(rng, MONTHS)}{year}{tranche if rng.random() < 0.6 else ''}"
    return symbol, f"2.50%GOLDBONDS20{year}SR-{tranche}", _government_isin(rng, 1992 + year)


def _government_bond(rng: np.random.Generator) -> Issue:
    coupon, year = int(rng.integers(550, 850)), int(rng.integers(2025, 2066))
    isin = _government_isin(rng, int(rng.integers(2005, 2025)))
    return f"{coupon}GS{year}", f"GOI LOAN {coupon / 100:.2f}% {year}", isin


def _treasury_bill(rng: np.random.Generator) -> Issue:
    tenor = pick(rng, (91, 182, 364))
    maturity = dt.date(2024, 1, 4) + dt.timedelta(days=7 * int(rng.integers(52)))
    isin = _isin(f"IN00{maturity.year - 1}Y{int(rng.integers(100)):02d}")
    return f"{tenor}D{maturity:%d%m%y}", f"GOI TBILL {tenor}D-{maturity:%d/%m/%y}", isin


def _debenture(rng: np.random.Generator) -> Issue:
    """A listed NCD: coupon, issuer initials and maturity year, like 10IIFL29 or 1003ISFL28."""
    coupon = int(rng.integers(70, 116)) * 10 + int(rng.integers(10))
    code = str(coupon // 100) if coupon % 100 == 0 else str(coupon)
    issuer = "".join(pick(rng, _LETTERS) for _ in range(int(rng.integers(3, 5))))
    name = f"SEC RED NCD {coupon / 100:.2f}% SR.{pick(rng, _ROMAN)}"
    isin = _isin(f"INE{_issuer(rng)}{pick(rng, ('07', '08'))}{_alnum(rng, 2)}")
    return f"{code}{issuer}{int(rng.integers(25, 35))}", name, isin


def _trust(unit: str, security_code: str) -> Callable[[np.random.Generator], Issue]:
    """InvIT and REIT units: a trust's name and NSDL's security code for its units."""

    def issue(rng: np.random.Generator) -> Issue:
        stem = _stem(rng)
        isin = _isin(f"INE{_issuer(rng)}{security_code}0{int(rng.integers(1, 4))}")
        return f"{stem[: 10 - len(unit)]}{unit}", f"{stem} {unit} TRUST", isin

    return issue


# ---- the listed universe ----------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    """Securities that trade alike: where their prices sit, how much they move and trade."""

    series: tuple[str, ...]
    #: Share of the listed universe.
    weight: float
    #: A new security of this kind: symbol, name and ISIN.
    issue: Callable[[np.random.Generator], Issue]
    #: Median price in rupees and the log spread of prices around it.
    price: tuple[float, float]
    #: Daily standard deviation of log returns.
    volatility: float
    #: Median shares traded a day.
    volume: float
    #: Chance of trading on a given day; on other days the security is absent from the files.
    participation: float
    #: Share of volume taken to delivery, drawn between these bounds each day.
    delivery: tuple[float, float]
    #: Median rupees per trade, which sets the number of trades.
    trade_value: float
    #: Debt is quoted to the paisa at every price.
    paisa_tick: bool = False
    #: SME shares trade in lots worth about a lakh and a quarter.
    lots: bool = False


_N_SERIES = tuple("N0 N1 N2 N3 N4 N5 N6 N7 N8 N9 NA NB NC ND NE NF NH NJ NK NL".split())
_DEBT = {"paisa_tick": True}

#: Proportions follow real bhavcopies of 2024: mostly EQ, then SM and BE, then bonds and the rest.
#: Columns: series, weight, issue, price, volatility, volume, participation, delivery, trade value.
KINDS = (
    Kind(("EQ",), 0.655, _company, (120, 1.3), 0.022, 2e4, 0.995, (0.15, 0.85), 3e4),
    Kind(("EQ",), 0.03, _etf, (100, 1.0), 0.008, 5e4, 0.98, (0.3, 0.95), 2e4),
    Kind(("SM",), 0.10, _company, (80, 0.8), 0.03, 1e4, 0.85, (0.6, 1.0), 1e5, lots=True),
    Kind(("BE",), 0.094, _company, (40, 1.0), 0.03, 5e3, 0.9, (1.0, 1.0), 1e4),
    Kind(("BZ",), 0.006, _company, (15, 0.8), 0.03, 2e4, 0.8, (1.0, 1.0), 5e3),
    Kind(("ST",), 0.011, _company, (60, 0.8), 0.03, 5e3, 0.7, (0.8, 1.0), 1e5, lots=True),
    Kind(("GB",), 0.021, _gold_bond, (6200, 0.1), 0.007, 100, 0.85, (0.85, 1.0), 4e4, **_DEBT),
    Kind(("GS",), 0.017, _government_bond, (102, 0.05), 0.002, 500, 0.55, (1, 1), 5e4, **_DEBT),
    Kind(("TB",), 0.007, _treasury_bill, (98.5, 0.005), 4e-4, 300, 0.6, (1, 1), 5e4, **_DEBT),
    Kind(("IV",), 0.002, _trust("INVIT", "23"), (100, 0.2), 0.006, 5e4, 0.9, (0.6, 0.95), 3e4),
    Kind(("RR",), 0.0015, _trust("REIT", "25"), (320, 0.15), 0.008, 5e4, 0.9, (0.6, 0.95), 3e4),
    Kind(_N_SERIES, 0.0575, _debenture, (1000, 0.03), 0.003, 200, 0.45, (1, 1), 5e4, **_DEBT),
)

#: Well-known names listed first, so even a small universe has them:
#: symbol, company name, price in rupees, median shares a day, kind (index into KINDS).
WELL_KNOWN = (
    ("RELIANCE", "RELIANCE INDUSTRIES LTD", 2900, 6e6, 0),
    ("TCS", "TATA CONSULTANCY SERV LT", 3900, 2e6, 0),
    ("HDFCBANK", "HDFC BANK LTD", 1600, 1.5e7, 0),
    ("INFY", "INFOSYS LIMITED", 1600, 7e6, 0),
    ("ICICIBANK", "ICICI BANK LTD.", 1100, 1.5e7, 0),
    ("SBIN", "STATE BANK OF INDIA", 800, 2e7, 0),
    ("ITC", "ITC LTD", 430, 1.5e7, 0),
    ("LT", "LARSEN & TOUBRO LTD.", 3500, 2e6, 0),
    ("HINDUNILVR", "HINDUSTAN UNILEVER LTD.", 2400, 1.5e6, 0),
    ("BHARTIARTL", "BHARTI AIRTEL LIMITED", 1400, 6e6, 0),
    ("KOTAKBANK", "KOTAK MAHINDRA BANK LTD", 1750, 4e6, 0),
    ("AXISBANK", "AXIS BANK LIMITED", 1150, 8e6, 0),
    ("M&M", "MAHINDRA & MAHINDRA LTD", 2700, 2.5e6, 0),
    ("BAJAJ-AUTO", "BAJAJ AUTO LIMITED", 9000, 5e5, 0),
    ("BAJFINANCE", "BAJAJ FINANCE LIMITED", 7000, 1.2e6, 0),
    ("MARUTI", "MARUTI SUZUKI INDIA LTD.", 12000, 4e5, 0),
    ("SUNPHARMA", "SUN PHARMACEUTICAL IND L", 1500, 2.5e6, 0),
    ("TITAN", "TITAN COMPANY LIMITED", 3300, 1e6, 0),
    ("WIPRO", "WIPRO LTD", 480, 6e6, 0),
    ("HCLTECH", "HCL TECHNOLOGIES LTD", 1500, 3e6, 0),
    ("TATASTEEL", "TATA STEEL LIMITED", 160, 3e7, 0),
    ("NTPC", "NTPC LTD", 360, 1.5e7, 0),
    ("ONGC", "OIL AND NATURAL GAS CORP.", 270, 1.5e7, 0),
    ("ASIANPAINT", "ASIAN PAINTS LIMITED", 2900, 1e6, 0),
    ("NESTLEIND", "NESTLE INDIA LIMITED", 2500, 8e5, 0),
    ("M&MFIN", "M&M FIN. SERVICES LTD", 290, 3e6, 0),
    ("J&KBANK", "THE JAMMU & KASHMIR BANK LIMITED", 130, 6e6, 0),
    ("IDEA", "VODAFONE IDEA LIMITED", 16, 4e8, 0),
    ("NAM-INDIA", "NIPPON L I A M LTD", 600, 1e6, 0),
    ("3MINDIA", "3M INDIA LTD", 35000, 5e3, 0),
    ("20MICRONS", "20 MICRONS LTD", 200, 1.5e5, 0),
    ("NIFTYBEES", "NIP IND ETF NIFTY BEES", 260, 5e6, 1),
    ("GOLDBEES", "NIP IND ETF GOLD BEES", 60, 1e7, 1),
)


@dataclass(frozen=True)
class Universe:
    """Every listed security, in file order (symbol, then series), with its trading habits."""

    symbol: list[str]
    series: list[str]
    isin: list[str]
    name: list[str]
    #: NSE's instrument token, FinInstrmId in UDiFF files.
    token: list[int]
    lot: np.ndarray
    #: Log of the price, in paise, that the walk is pulled towards.
    log_level: np.ndarray
    volatility: np.ndarray
    log_volume: np.ndarray
    participation: np.ndarray
    delivery_low: np.ndarray
    delivery_high: np.ndarray
    has_delivery: np.ndarray
    trade_value: np.ndarray
    paisa_tick: np.ndarray

    def __len__(self) -> int:
        return len(self.symbol)

    @classmethod
    def build(cls, seed: int, size: int) -> Universe:
        rng = np.random.default_rng([seed, 0])
        counts = [int(kind.weight * size) for kind in KINDS]
        counts[0] += size - sum(counts)
        symbols: set[str] = set()
        isins: set[str] = set()

        def issue(kind: Kind) -> Issue:
            while True:
                symbol, name, isin = kind.issue(rng)
                if symbol not in symbols and isin not in isins:
                    symbols.add(symbol)
                    isins.add(isin)
                    return symbol, name, isin

        # kind, symbol, name, ISIN, log price level (paise), log median volume
        listed = []
        for symbol, name, price, volume, k in WELL_KNOWN:
            if counts[k] > 0:
                counts[k] -= 1
                symbols.add(symbol)
                *_, isin = issue(KINDS[k])
                listed.append((KINDS[k], symbol, name, isin, np.log(price * 100), np.log(volume)))
        for kind, count in zip(KINDS, counts, strict=True):
            for _ in range(count):
                median, spread = kind.price
                log_price = np.log(median * 100) + spread * rng.standard_normal()
                log_volume = np.log(kind.volume) + 1.2 * rng.standard_normal()
                listed.append((kind, *issue(kind), log_price, log_volume))
        listed.sort(key=lambda security: security[1])

        kinds = [security[0] for security in listed]
        series = [pick(rng, kind.series) for kind in kinds]
        n = len(listed)
        return cls(
            symbol=[security[1] for security in listed],
            series=series,
            name=[security[2] for security in listed],
            isin=[security[3] for security in listed],
            token=[int(t) for t in rng.choice(np.arange(1, 30_000), size=n, replace=False)],
            lot=np.array(
                [_lot(np.exp(s[4]) / 100) if s[0].lots else 1 for s in listed], dtype=np.int64
            ),
            log_level=np.array([security[4] for security in listed]),
            volatility=np.array([k.volatility for k in kinds]) * rng.lognormal(0, 0.25, n),
            log_volume=np.array([security[5] for security in listed]),
            participation=np.array([k.participation for k in kinds]),
            delivery_low=np.array([k.delivery[0] for k in kinds]),
            delivery_high=np.array([k.delivery[1] for k in kinds]),
            has_delivery=np.array([s not in NO_DELIVERY_SERIES for s in series]),
            trade_value=np.array([k.trade_value for k in kinds]),
            paisa_tick=np.array([k.paisa_tick for k in kinds]),
        )


def _lot(price: float) -> int:
    """SME lot size: the round number of shares closest to a lakh and a quarter of rupees."""
    sizes = np.array([100, 200, 400, 600, 800, 1000, 1200, 1600, 2000, 3000, 4000, 6000, 8000])
    return int(sizes[np.argmin(np.abs(np.log(sizes * price / 125_000)))])


# ---- one trading day --------------------------------------------------------------------------
class Quote(NamedTuple):
    """One security's day, as every CM file prints it. Prices and turnover are in paise."""

    symbol: str
    series: str
    isin: str
    name: str
    token: int
    lot: int
    prev_close: int
    open: int
    high: int
    low: int
    close: int
    last_price: int
    volume: int
    turnover: int
    trades: int
    #: Shares taken to delivery; None for series whose delivery NSE does not report.
    delivery_qty: int | None


def day_rng(seed: int, day: dt.date, stream: str) -> np.random.Generator:
    """The day's randomness for one purpose, independent of every other day and purpose."""
    return np.random.default_rng([seed, day.toordinal(), zlib.crc32(stream.encode())])


@dataclass(frozen=True)
class Session:
    """A trading day: the securities that traded, in file order, and the seed of the market."""

    trade_date: dt.date
    seed: int
    quotes: list[Quote]
    #: Every listed security, traded today or not (index lists name members that did not trade).
    universe: Universe


def _to_tick(price: np.ndarray, day: dt.date, paisa_tick: np.ndarray, how=np.rint) -> np.ndarray:
    """Prices (paise, float) on the exchange's tick grid, never below one tick."""
    fine = paisa_tick | ((price < PAISA_TICK_BELOW) if day >= PAISA_TICK_FROM else False)
    tick = np.where(fine, 1, 5)
    return np.maximum(how(price / tick), 1).astype(np.int64) * tick


def sessions(
    universe: Universe,
    seed: int,
    days: list[dt.date],
    holidays: Iterable[dt.date],
    weekend_sessions: Iterable[dt.date] = (),
) -> Iterator[Session]:
    """Walk closing prices from EPOCH to the last of `days`, yielding a Session for each of them.

    Each day draws from a seed of its own, so holidays before a day only change which draws
    the walk uses, and the range asked for does not change a day's files.
    """
    wanted = set(days)
    n = len(universe)
    # Start where the walk settles: around each level, by the spread the pull allows.
    spread = universe.volatility / np.sqrt(2 * REVERSION)
    start = np.random.default_rng([seed, 1]).normal(universe.log_level, spread)
    close = _to_tick(np.exp(start), EPOCH, universe.paisa_tick)
    for day in trading_days(EPOCH, max(days), holidays, weekend_sessions):
        walk = day_rng(seed, day, "walk")
        step = REVERSION * (universe.log_level - np.log(close))
        step = np.clip(step + universe.volatility * walk.standard_normal(n), -BAND, BAND)
        traded = walk.random(n) < universe.participation
        moved = _to_tick(close * np.exp(step), day, universe.paisa_tick)
        if day in wanted:
            yield _session(universe, seed, day, close, moved, traded)
        close = np.where(traded, moved, close)


def _session(
    u: Universe, seed: int, day: dt.date, prev: np.ndarray, moved: np.ndarray, traded: np.ndarray
) -> Session:
    """The day's prices, volumes and delivery for the securities that traded."""
    rng = day_rng(seed, day, "quotes")
    i = np.flatnonzero(traded)
    n, sigma, fine = len(i), u.volatility[i], u.paisa_tick[i]
    prev_close, close = prev[i], moved[i]
    open_ = _to_tick(
        prev_close * np.exp(np.clip(0.5 * sigma * rng.standard_normal(n), -BAND, BAND)), day, fine
    )
    top, bottom = np.maximum(open_, close), np.minimum(open_, close)
    high = _to_tick(top * np.exp(np.abs(0.6 * sigma * rng.standard_normal(n))), day, fine, np.ceil)
    low = _to_tick(
        bottom * np.exp(-np.abs(0.6 * sigma * rng.standard_normal(n))), day, fine, np.floor
    )
    high, low = np.maximum(high, top), np.minimum(low, bottom)
    last = np.clip(
        _to_tick(close * np.exp(0.15 * sigma * rng.standard_normal(n)), day, fine), low, high
    )
    average = np.clip(
        (open_ + high + low + close) / 4 * np.exp(0.1 * sigma * rng.standard_normal(n)), low, high
    )

    lot = u.lot[i]
    lots = np.maximum(np.rint(np.exp(u.log_volume[i] + 0.6 * rng.standard_normal(n)) / lot), 1)
    volume = lots.astype(np.int64) * lot
    turnover = np.rint(volume * average).astype(np.int64)
    per_trade = u.trade_value[i] * 100 * np.exp(0.4 * rng.standard_normal(n))
    trades = np.clip(np.rint(turnover / per_trade), 1, volume // lot).astype(np.int64)
    share = rng.uniform(u.delivery_low[i], u.delivery_high[i])
    delivery = (np.floor(volume * share / lot).astype(np.int64)) * lot

    quotes = [
        Quote(
            u.symbol[k],
            u.series[k],
            u.isin[k],
            u.name[k],
            u.token[k],
            *numbers[:-1],
            numbers[-1] if u.has_delivery[k] else None,
        )
        for k, *numbers in zip(
            i.tolist(),
            lot.tolist(),
            prev_close.tolist(),
            open_.tolist(),
            high.tolist(),
            low.tolist(),
            close.tolist(),
            last.tolist(),
            volume.tolist(),
            turnover.tolist(),
            trades.tolist(),
            delivery.tolist(),
            strict=True,
        )
    ]
    return Session(day, seed, quotes, u)


# ---- dates and publication ----------------------------------------------------------------------
def nse_date(day: dt.date, *, upper: bool = False) -> str:
    """`05-Jul-2024` as NSE's API and site print a day; `05-JUL-2024` (`upper`) as archives do."""
    month = MONTHS[day.month - 1]
    return f"{day:%d}-{month if upper else month.title()}-{day:%Y}"


def at(day: dt.date, hour: int, minute: int) -> dt.datetime:
    """That time of `day` in Mumbai."""
    return dt.datetime.combine(day, dt.time(hour, minute), IST)


class Written(NamedTuple):
    path: Path
    rows: int


def publish(path: Path, data: bytes, published: dt.datetime) -> None:
    """Write atomically and date the file when NSE would have published it (Last-Modified)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    stamp = published.timestamp()
    os.utime(path, (stamp, stamp))


def zipped(member: str, data: bytes, published: dt.datetime) -> bytes:
    """A ZIP of one member, like NSE's: made on DOS, deflated, the publication time inside."""
    info = zipfile.ZipInfo(member, date_time=published.timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, data)
    return buffer.getvalue()
