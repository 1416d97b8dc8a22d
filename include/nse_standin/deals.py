"""Bulk and block deal files for the generated market, in each shape NSE serves them.

Deals are in shares the CM session traded that day (EQ, BE and SM series), at prices inside the
day's range (bulk deals: a client's weighted average) or near the close (block deals: one price
per block, its buyers adding up to its seller). Every day's bulk deals include one pair of
identical deals, the same client buying the same quantity at the same price twice, which NSE
lists as two rows; about a third of the days have no block deals at all.

Per trading day the writers put the historical API's answer for that day where the stand-in
serves it (`api/historicalOR/bulk-block-short-deals/<query>.json`), and the archive's
`content/equities/bulk.csv` and `block.csv`, which each day overwrites, as NSE does: after a
range only the last day's are left. `web_export_csv` gives the same deals as NSE's site exports
them (BOM, every field quoted, padded header names, Indian digit grouping, HTML entities).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import NamedTuple

from include.nse_standin.market import Session, Written, at, day_rng, nse_date, pick, publish
from include.nse_standin.server import api_file

KINDS = ("bulk_deals", "block_deals")
HISTORY_ENDPOINT = "historicalOR/bulk-block-short-deals"
ARCHIVE_FILES = {"bulk_deals": "bulk.csv", "block_deals": "block.csv"}
HEADER = (
    "Date",
    "Symbol",
    "Security Name",
    "Client Name",
    "Buy/Sell",
    "Quantity Traded",
    "Trade Price / Wght. Avg. Price",
    "Remarks",
)
#: The archive files print at most this many characters of a security's name.
ARCHIVE_NAME_LENGTH = 25
#: Series whose shares show up in bulk and block deals.
DEAL_SERIES = ("EQ", "BE", "SM")
#: A block deal is worth at least Rs 10 crore, in paise.
BLOCK_MINIMUM = 10**10
CLIENTS = (
    "GRAVITON RESEARCH CAPITAL LLP",
    "HRTI PRIVATE LIMITED",
    "NK SECURITIES RESEARCH PRIVATE LIMITED",
    "ALTRUISTIC ESTATES & WEALTH MANAGEMENT PRIVATE LIMITED",
    "LARSEN & TOUBRO LIMITED",
    "SRISHTI  SOMANI",
    "BILGAIYAN ASHOK KUMAR",
    "QE SECURITIES LLP",
    "AAKRAYA RESEARCH LLP",
    "SOCIETE GENERALE",
    "HSBC MUTUAL FUND",
    "MORGAN STANLEY ASIA SINGAPORE PTE",
    "GOLDMINE STOCKS PRIVATE LIMITED",
    "JAGAT FOODS PVT.LTD.",
    "FOUR DIMENSIONS SECURITIES (INDIA) LTD.",
)


class Deal(NamedTuple):
    symbol: str
    security_name: str
    client_name: str
    side: str
    quantity: int
    #: Paise.
    price: int


def deals(session: Session, kind: str) -> list[Deal]:
    """The day's deals of one kind, in NSE's order: buys then sells, each by symbol."""
    rng = day_rng(session.seed, session.trade_date, kind)
    quotes = [q for q in session.quotes if q.series in DEAL_SERIES]
    made: list[Deal] = []
    if kind == "bulk_deals":
        for index in rng.choice(len(quotes), size=min(len(quotes), 12 + rng.poisson(12))):
            q = quotes[int(index)]
            made.append(
                Deal(
                    q.symbol,
                    q.name,
                    pick(rng, CLIENTS),
                    pick(rng, ("BUY", "SELL")),
                    max(1, int(q.volume * rng.uniform(0.05, 0.5))),
                    int(rng.integers(q.low, q.high + 1)),
                )
            )
        # A client's second order of the same size at the same price: two deals, one row each.
        made.append(made[int(rng.integers(len(made)))])
    elif rng.random() >= 0.35:
        by_value = sorted(quotes, key=lambda q: q.turnover, reverse=True)[:20]
        for index in rng.choice(len(by_value), size=1 + rng.poisson(0.5), replace=False):
            q = by_value[int(index)]
            price = int(q.close * rng.uniform(0.97, 1.0))
            lots = -(-BLOCK_MINIMUM // price)
            parts = [lots * int(rng.integers(1, 4)) for _ in range(int(rng.integers(1, 4)))]
            clients = rng.choice(len(CLIENTS), size=len(parts) + 1, replace=False)
            made.append(Deal(q.symbol, q.name, CLIENTS[clients[0]], "SELL", sum(parts), price))
            made.extend(
                Deal(q.symbol, q.name, CLIENTS[c], "BUY", part, price)
                for c, part in zip(clients[1:], parts, strict=True)
            )
    return sorted(made, key=lambda d: (d.side, d.symbol))


def archive_csv(day: dt.date, kind: str, made: list[Deal]) -> bytes:
    """`bulk.csv` (trimmed prices, Remarks `-`) or `block.csv` (two decimals, no Remarks)."""
    bulk = kind == "bulk_deals"
    header = HEADER if bulk else HEADER[:-1]
    lines = [",".join(header)]
    for d in made:
        price = f"{d.price / 100:.2f}"
        fields = [
            nse_date(day, upper=True),
            d.symbol,
            d.security_name[:ARCHIVE_NAME_LENGTH].rstrip(),
            d.client_name,
            d.side,
            str(d.quantity),
            price.rstrip("0").rstrip(".") if bulk else price,
        ]
        lines.append(",".join([*fields, "-"] if bulk else fields))
    if not made:
        lines.append("NO RECORDS" + "," * (len(header) - 1))
    return ("\n".join(lines) + "\n").encode()


def api_json(day: dt.date, kind: str, made: list[Deal]) -> bytes:
    """The historical API's answer for one day: `data` holding BD_* objects."""
    # The day's midnight in Mumbai, in UTC.
    midnight = f"{day - dt.timedelta(days=1):%Y-%m-%d}T18:30:00.000+00:00"
    data = [
        {
            "BD_DT_DATE": nse_date(day, upper=True),
            "BD_DT_ORDER": midnight,
            "BD_SYMBOL": d.symbol,
            "BD_SCRIP_NAME": d.security_name,
            "BD_CLIENT_NAME": d.client_name,
            "BD_BUY_SELL": d.side,
            "BD_QTY_TRD": d.quantity,
            "BD_TP_WATP": d.price / 100,
            "BD_REMARKS": "-" if kind == "bulk_deals" else None,
        }
        for d in made
    ]
    return json.dumps({"data": data}).encode()


def indian_grouping(number: int) -> str:
    """1,08,000: thousands, then lakhs and crores in twos, as NSE's site prints numbers."""
    digits = str(number)
    head, tail = digits[:-3], digits[-3:]
    groups = []
    while head:
        groups.insert(0, head[-2:])
        head = head[:-2]
    return ",".join([*groups, tail])


def web_export_csv(day: dt.date, kind: str, made: list[Deal]) -> bytes:
    """The deals as NSE's site exports them: BOM, quotes, padded names, grouping, entities."""
    bulk = kind == "bulk_deals"
    header = HEADER if bulk else HEADER[:-1]
    rows = [[f"{name} " for name in header]]
    for d in made:
        rupees, paise = divmod(d.price, 100)
        fields = [
            nse_date(day),
            html.escape(d.symbol, quote=False),
            html.escape(d.security_name, quote=False),
            html.escape(d.client_name, quote=False),
            d.side,
            indian_grouping(d.quantity),
            f"{indian_grouping(rupees)}.{paise:02d}",
        ]
        rows.append([*fields, "-"] if bulk else fields)
    text = "".join(",".join(f'"{field}"' for field in row) + "\r\n" for row in rows)
    return b"\xef\xbb\xbf" + text.encode()


def write_deals(session: Session, out: Path, kind: str) -> list[Written]:
    """The day's API answer, and the archive file that holds the latest day."""
    day = session.trade_date
    made = deals(session, kind)
    published = at(day, 17, 40)
    query = {"optionType": kind, "from": f"{day:%d-%m-%Y}", "to": f"{day:%d-%m-%Y}"}
    api_path = api_file(Path(out), HISTORY_ENDPOINT, query)
    publish(api_path, api_json(day, kind, made), published)
    archive_path = Path(out) / "content/equities" / ARCHIVE_FILES[kind]
    publish(archive_path, archive_csv(day, kind, made), published)
    return [Written(api_path, len(made)), Written(archive_path, len(made))]


def write_bulk_deals(session: Session, out: Path) -> list[Written]:
    return write_deals(session, out, "bulk_deals")


def write_block_deals(session: Session, out: Path) -> list[Written]:
    return write_deals(session, out, "block_deals")


def write_web_export(session: Session, out: Path, kind: str) -> Written:
    """NSE's site export of the day's deals, named as the site names its downloads."""
    day = session.trade_date
    made = deals(session, kind)
    title = "Bulk" if kind == "bulk_deals" else "Block"
    path = Path(out) / "exports" / f"{title}-Deals-{day:%d-%m-%Y}-to-{day:%d-%m-%Y}.csv"
    publish(path, web_export_csv(day, kind, made), at(day, 18, 0))
    return Written(path, len(made))
