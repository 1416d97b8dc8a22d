"""Index constituent files for the generated market: the lists, the monthly archive, the API.

Members are the market's listed companies (EQ series, INE ISINs), ranked by a size score (the
log of their typical turnover) plus a little noise drawn afresh for each half month, so indices
rebalance on the 1st and the 16th: a few names cross each cut-off, which gives inclusions and
exclusions inside any month. NIFTY 50 is the top 50, NIFTY NEXT 50 the next 50, NIFTY 100, 200
and 500 the top 100, 200 and 500, NIFTY MIDCAP 100 ranks 101 to 200; the sectoral indices are the
top of their industry. On a small market an index takes what there is.

What each trading day writes, as NSE serves it:

- `content/indices/ind_<index>list.csv` for every index, overwritten daily like NSE's "current"
  file (CRLF, no newline at the end, rows by company name); its modification time, which the
  stand-in serves as Last-Modified, is 07:00 on the first day of its half month, when that list
  took effect. After a range only the last day's lists are left;
- the API's answer for every index, `api/equity-stockIndices/index=<NAME>.json`, also
  overwritten daily, with the day's prices and a timestamp of 16:00 that day;
- on the last weekday of a month, `content/indices/mcwb_<mon><yy>.zip` with `nifty50_mcwb.csv`
  and `niftynext50_mcwb.csv`: banner, blank row, header, weights, a totals row and footnotes,
  including "Last day of trading was DD-Mon-YYYY" (that day; a generated holiday on it means
  no archive for the month).

File names, layouts and paths are spelled out here, not taken from `include/nse/sources`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from include.nse_standin.market import (
    MONTHS,
    Session,
    Universe,
    Written,
    at,
    day_rng,
    nse_date,
    publish,
)
from include.nse_standin.server import api_file

#: Half-month noise on the log size score: a few names cross each cut-off per rebalance.
NOISE = 0.06
API_ENDPOINT = "equity-stockIndices"
LIST_HEADER = "Company Name,Industry,Symbol,Series,ISIN Code"
MCWB_HEADER = (
    "Sr. No,Security Symbol,Security Name,Industry,Equity Capital (In Rs.),"
    "Free Float Market Capitalisation (Rs. Crores),Weightage (%),Beta,R2,Volatility (%),"
    "Monthly Return,Avg. Impact Cost (%)"
)
MCWB_WIDTH = MCWB_HEADER.count(",") + 1


class Spec(NamedTuple):
    name: str
    list_file: str
    #: Member of the monthly archive, for the indices NSE puts there.
    mcwb_member: str | None
    #: Ranks taken, 0-based and end-exclusive, among the candidates...
    ranks: tuple[int, int]
    #: ...of this industry only, for a sectoral index.
    industry: str | None = None


SPECS = (
    Spec("NIFTY 50", "ind_nifty50list.csv", "nifty50_mcwb.csv", (0, 50)),
    Spec("NIFTY NEXT 50", "ind_niftynext50list.csv", "niftynext50_mcwb.csv", (50, 100)),
    Spec("NIFTY 100", "ind_nifty100list.csv", None, (0, 100)),
    Spec("NIFTY 200", "ind_nifty200list.csv", None, (0, 200)),
    Spec("NIFTY 500", "ind_nifty500list.csv", None, (0, 500)),
    Spec("NIFTY MIDCAP 100", "ind_niftymidcap100list.csv", None, (100, 200)),
    Spec("NIFTY BANK", "ind_niftybanklist.csv", None, (0, 12), "Financial Services"),
    Spec("NIFTY IT", "ind_niftyitlist.csv", None, (0, 10), "Information Technology"),
    Spec(
        "NIFTY FINANCIAL SERVICES",
        "ind_niftyfinancelist.csv",
        None,
        (0, 20),
        "Financial Services",
    ),
)

#: Industries (NSE's classification since 2021) of the well-known names, and of the rest by the
#: sector word in their names.
_KNOWN_INDUSTRIES = {
    "RELIANCE": "Oil Gas & Consumable Fuels",
    "ONGC": "Oil Gas & Consumable Fuels",
    "NTPC": "Power",
    "TCS": "Information Technology",
    "INFY": "Information Technology",
    "WIPRO": "Information Technology",
    "HCLTECH": "Information Technology",
    "HDFCBANK": "Financial Services",
    "ICICIBANK": "Financial Services",
    "SBIN": "Financial Services",
    "KOTAKBANK": "Financial Services",
    "AXISBANK": "Financial Services",
    "J&KBANK": "Financial Services",
    "BAJFINANCE": "Financial Services",
    "M&MFIN": "Financial Services",
    "NAM-INDIA": "Financial Services",
    "ITC": "Fast Moving Consumer Goods",
    "HINDUNILVR": "Fast Moving Consumer Goods",
    "NESTLEIND": "Fast Moving Consumer Goods",
    "LT": "Construction",
    "BHARTIARTL": "Telecommunication",
    "IDEA": "Telecommunication",
    "M&M": "Automobile and Auto Components",
    "BAJAJ-AUTO": "Automobile and Auto Components",
    "MARUTI": "Automobile and Auto Components",
    "SUNPHARMA": "Healthcare",
    "TITAN": "Consumer Durables",
    "ASIANPAINT": "Consumer Durables",
    "TATASTEEL": "Metals & Mining",
    "20MICRONS": "Metals & Mining",
}
_SECTOR_INDUSTRIES = {
    "PHARMA": "Healthcare",
    "LIFESCIENCES": "Healthcare",
    "FINANCE": "Financial Services",
    "CAPITAL": "Financial Services",
    "SOFTWARE": "Information Technology",
    "TECHNOLOGIES": "Information Technology",
    "STEEL": "Metals & Mining",
    "TEXTILES": "Textiles",
    "CHEMICALS": "Chemicals",
    "POLYMERS": "Chemicals",
    "INFRA": "Construction",
    "POWER": "Power",
    "ENERGY": "Oil Gas & Consumable Fuels",
    "CEMENT": "Construction Materials",
    "PAPER": "Forest Materials",
    "AUTO": "Automobile and Auto Components",
    "HOTELS": "Consumer Services",
    "SUGAR": "Fast Moving Consumer Goods",
    "AGRO": "Fast Moving Consumer Goods",
    "FOODS": "Fast Moving Consumer Goods",
}


class Member(NamedTuple):
    symbol: str
    company: str
    industry: str
    series: str
    isin: str
    #: Log of typical turnover in paise: sets rank and weight.
    size: float


def industry(symbol: str, name: str) -> str:
    if symbol in _KNOWN_INDUSTRIES:
        return _KNOWN_INDUSTRIES[symbol]
    words = name.split()
    return next((_SECTOR_INDUSTRIES[w] for w in words if w in _SECTOR_INDUSTRIES), "Diversified")


def rebalanced_on(day: dt.date) -> dt.date:
    """First day of `day`'s half month, when the lists in force on `day` took effect."""
    return day.replace(day=16 if day.day >= 16 else 1)


def members(universe: Universe, seed: int, day: dt.date) -> dict[str, list[Member]]:
    """Index name -> its members on `day`, by rank."""
    size = universe.log_level + universe.log_volume
    noise = day_rng(seed, rebalanced_on(day), "index_constituents").normal(0, NOISE, len(size))
    candidates = [
        k
        for k in range(len(universe))
        if universe.series[k] == "EQ" and universe.isin[k].startswith("INE")
    ]
    candidates.sort(key=lambda k: (-(size[k] + noise[k]), universe.symbol[k]))
    ranked = [
        Member(
            universe.symbol[k],
            universe.name[k].title(),
            industry(universe.symbol[k], universe.name[k]),
            universe.series[k],
            universe.isin[k],
            float(size[k]),
        )
        for k in candidates
    ]
    lists = {}
    for spec in SPECS:
        pool = [m for m in ranked if spec.industry in (None, m.industry)]
        lists[spec.name] = pool[spec.ranks[0] : spec.ranks[1]]
    return lists


# ---- the current lists ----------------------------------------------------------------------
def list_csv(members: list[Member]) -> bytes:
    """NSE's list: CRLF line ends and no newline after the last row."""
    rows = sorted(members, key=lambda m: m.company)
    lines = [LIST_HEADER] + [
        f"{m.company},{m.industry},{m.symbol},{m.series},{m.isin}" for m in rows
    ]
    return "\r\n".join(lines).encode()


# ---- the API ----------------------------------------------------------------------------------
def api_json(spec: Spec, members: list[Member], session: Session) -> bytes:
    day = session.trade_date
    quotes = {q.symbol: q for q in session.quotes if q.series == "EQ"}
    rows = []
    for m in sorted(members, key=lambda m: m.symbol):
        q = quotes.get(m.symbol)
        prices = (
            {
                "open": q.open / 100,
                "dayHigh": q.high / 100,
                "dayLow": q.low / 100,
                "lastPrice": q.close / 100,
                "previousClose": q.prev_close / 100,
                "totalTradedVolume": q.volume,
            }
            if q
            else {}
        )
        rows.append(
            {
                "priority": 0,
                "symbol": m.symbol,
                "identifier": f"{m.symbol}EQN",
                "series": m.series,
                **prices,
                "meta": {
                    "symbol": m.symbol,
                    "companyName": m.company,
                    "industry": m.industry,
                    "activeSeries": [m.series],
                    "isin": m.isin,
                    "segment": "EQUITY",
                },
            }
        )
    stamp = f"{nse_date(day)} 16:00:00"
    own = {"priority": 1, "symbol": spec.name, "identifier": spec.name, "lastUpdateTime": stamp}
    document = {
        "name": spec.name,
        "advance": {"declines": "0", "advances": "0", "unchanged": "0"},
        "timestamp": stamp,
        "data": [own, *rows],
        "metadata": {"indexName": spec.name, "timeVal": stamp},
    }
    return json.dumps(document, indent=2).encode()


# ---- the monthly archive ------------------------------------------------------------------------
def last_weekday_of_month(day: dt.date) -> bool:
    following = day + dt.timedelta(days=3 if day.weekday() == 4 else 1)
    return day.weekday() < 5 and following.month != day.month


def mcwb_csv(spec: Spec, members: list[Member], day: dt.date, seed: int) -> bytes:
    """One index's member of the monthly archive, every row padded to the header's width."""
    rng = day_rng(seed, day, f"mcwb:{spec.name}")
    blank = "," * (MCWB_WIDTH - 1)

    def note(text: str) -> str:
        return text + "," * (MCWB_WIDTH - 1)

    month = MONTHS[day.month - 1].title()
    title = spec.name.title()
    # Half the log size: weights spread like a NIFTY's (a few percent at the top), not wider.
    shares = np.exp(0.5 * np.array([m.size for m in members]))
    weights = shares / shares.sum() * 100
    total_crores = float(rng.uniform(5e5, 8e6))
    lines = [note(f"Annexure II-  {title} Index : {month} {day:%Y}"), blank, MCWB_HEADER]
    rows = sorted(zip(members, weights, strict=True), key=lambda pair: pair[0].company)
    for number, (m, weight) in enumerate(rows, start=1):
        ffmc = total_crores * weight / 100
        beta, r2, volatility = rng.uniform(0.4, 1.6), rng.uniform(0.05, 0.6), rng.uniform(1, 4)
        fields = [
            str(number),
            m.symbol,
            m.company,
            m.industry.upper(),
            str(int(rng.integers(10**8, 3 * 10**10))),
            f"{ffmc:.2f}",
            f"{weight:.2f}",
            f"{beta:.2f}",
            f"{r2:.2f}",
            f"{volatility:.2f}",
            f"{rng.normal(0, 6):.2f}",
            f"{rng.uniform(0.01, 0.06):.2f}",
        ]
        lines.append(",".join(f'"{f}"' if "," in f else f for f in fields))
    year_ago = day - dt.timedelta(days=365)
    lines += [
        ",,,,," + f"{total_crores:.2f}" + ",,,,,,0.02",
        blank,
        note(f"* Beta & R2 are calculated for the period {year_ago:%d-%B-%Y} to {day:%d-%B-%Y}"),
        blank,
        note(f"* Last day of trading was {nse_date(day)}"),
        blank,
        note(f"* Impact Cost for {title} is the weightage average impact cost"),
    ]
    return ("\r\n".join(lines) + "\r\n").encode()


# ---- the writer ---------------------------------------------------------------------------------
def write_index_constituents(session: Session, out: Path) -> list[Written]:
    day = session.trade_date
    lists = members(session.universe, session.seed, day)
    effective = at(rebalanced_on(day), 7, 0)
    written = []
    for spec in SPECS:
        path = out / "content/indices" / spec.list_file
        publish(path, list_csv(lists[spec.name]), effective)
        api_path = api_file(out, API_ENDPOINT, {"index": spec.name})
        publish(api_path, api_json(spec, lists[spec.name], session), at(day, 16, 0))
        count = len(lists[spec.name])
        written += [Written(path, count), Written(api_path, count)]
    if last_weekday_of_month(day):
        published = at(day + dt.timedelta(days=1), 20, 6)
        buffer = io.BytesIO()
        monthly = [spec for spec in SPECS if spec.mcwb_member]
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for spec in monthly:
                info = zipfile.ZipInfo(spec.mcwb_member, date_time=published.timetuple()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, mcwb_csv(spec, lists[spec.name], day, session.seed))
        name = f"mcwb_{MONTHS[day.month - 1].lower()}{day:%y}.zip"
        path = out / "content/indices" / name
        publish(path, buffer.getvalue(), published)
        written.append(Written(path, sum(len(lists[s.name]) for s in monthly)))
    return written
