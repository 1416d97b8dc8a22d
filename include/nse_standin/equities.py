"""Capital market (CM) files for the generated market: the bhavcopy and the full bhavcopy.

The bhavcopy comes in two layouts: legacy (`cmDDMONYYYYbhav.csv` zipped under
`content/historical/EQUITIES/<year>/<MON>/`, numbers trimmed of trailing zeros, dates like
05-JUL-2024, a trailing comma on every line) until 2024-07-05, and UDiFF (`BhavCopy_NSE_CM_...`
zipped under `content/cm/`, prices to two decimals, ISO dates) from 2024-01-01, so both exist
for the first half of 2024. The full bhavcopy with delivery (`sec_bhavdata_full_DDMMYYYY.csv`
under `products/content/`, unzipped) separates fields by a comma and a space, dates like
05-Jul-2024, turnover in lakhs, and prints "-" as delivery for trade-for-trade series.
"""

from __future__ import annotations

from pathlib import Path

from include.nse_standin.market import (
    LEGACY_LAST_DAY,
    MONTHS,
    UDIFF_FIRST_DAY,
    UDIFF_HEADER,
    Session,
    Written,
    at,
    nse_date,
    publish,
    zipped,
)

LEGACY_HEADER = (
    "SYMBOL,SERIES,OPEN,HIGH,LOW,CLOSE,LAST,PREVCLOSE,TOTTRDQTY,TOTTRDVAL,TIMESTAMP,"
    "TOTALTRADES,ISIN,"
)
DELIVERY_HEADER = (
    "SYMBOL, SERIES, DATE1, PREV_CLOSE, OPEN_PRICE, HIGH_PRICE, LOW_PRICE, LAST_PRICE, "
    "CLOSE_PRICE, AVG_PRICE, TTL_TRD_QNTY, TURNOVER_LACS, NO_OF_TRADES, DELIV_QTY, DELIV_PER"
)


# ---- number formats ---------------------------------------------------------------------------
def _paise(value: int) -> str:
    """Two decimals, as UDiFF and the full bhavcopy print prices: 36.30."""
    return f"{value / 100:.2f}"


def _trimmed(value: int) -> str:
    """The legacy bhavcopy's numbers: no trailing zeros, 36 and 36.3 and 2592129.15."""
    return f"{value / 100:.2f}".rstrip("0").rstrip(".")


def _rounded_ratio(numerator: int, denominator: int) -> int:
    return (2 * numerator + denominator) // (2 * denominator)


# ---- files ------------------------------------------------------------------------------------
def _legacy_csv(session: Session) -> bytes:
    stamp = nse_date(session.trade_date, upper=True)
    t = _trimmed
    lines = [LEGACY_HEADER]
    lines.extend(
        f"{q.symbol},{q.series},{t(q.open)},{t(q.high)},{t(q.low)},{t(q.close)},"
        f"{t(q.last_price)},{t(q.prev_close)},{q.volume},{t(q.turnover)},{stamp},{q.trades},"
        f"{q.isin},"
        for q in session.quotes
    )
    return ("\n".join(lines) + "\n").encode()


def _udiff_csv(session: Session) -> bytes:
    day = session.trade_date.isoformat()
    p = _paise
    lines = [UDIFF_HEADER]
    lines.extend(
        f"{day},{day},CM,NSE,STK,{q.token},{q.isin},{q.symbol},{q.series},,,,,{q.name},"
        f"{p(q.open)},{p(q.high)},{p(q.low)},{p(q.close)},{p(q.last_price)},{p(q.prev_close)},,"
        f"{p(q.close)},,,{q.volume},{p(q.turnover)},{q.trades},F1,{q.lot},,,,,"
        for q in session.quotes
    )
    return ("\n".join(lines) + "\n").encode()


def _delivery_csv(session: Session) -> bytes:
    date1 = nse_date(session.trade_date)
    p = _paise
    lines = [DELIVERY_HEADER]
    for q in session.quotes:
        if q.delivery_qty is None:
            delivered = ["-", "-"]
        else:
            percent = _rounded_ratio(10_000 * q.delivery_qty, q.volume)
            delivered = [str(q.delivery_qty), p(percent)]
        fields = [
            q.symbol,
            q.series,
            date1,
            p(q.prev_close),
            p(q.open),
            p(q.high),
            p(q.low),
            p(q.last_price),
            p(q.close),
            p(_rounded_ratio(q.turnover, q.volume)),
            str(q.volume),
            # Paise to lakhs of rupees, two decimals: hundredths of a lakh are 100,000 paise.
            p(_rounded_ratio(q.turnover, 100_000)),
            str(q.trades),
            *delivered,
        ]
        lines.append(", ".join(fields))
    return ("\n".join(lines) + "\n").encode()


# ---- writers ----------------------------------------------------------------------------------
def write_cm_bhavcopy(session: Session, out: Path) -> list[Written]:
    """Legacy until 2024-07-05, UDiFF from 2024-01-01: both for the first half of 2024."""
    day, written = session.trade_date, []
    if day <= LEGACY_LAST_DAY:
        month = MONTHS[day.month - 1]
        member = f"cm{day:%d}{month}{day:%Y}bhav.csv"
        path = out / "content/historical/EQUITIES" / f"{day:%Y}" / month / f"{member}.zip"
        published = at(day, 17, 33)
        publish(path, zipped(member, _legacy_csv(session), published), published)
        written.append(Written(path, len(session.quotes)))
    if day >= UDIFF_FIRST_DAY:
        member = f"BhavCopy_NSE_CM_0_0_0_{day:%Y%m%d}_F_0000.csv"
        path = out / "content/cm" / f"{member}.zip"
        published = at(day, 17, 35)
        publish(path, zipped(member, _udiff_csv(session), published), published)
        written.append(Written(path, len(session.quotes)))
    return written


def write_cm_delivery(session: Session, out: Path) -> list[Written]:
    day = session.trade_date
    path = out / "products/content" / f"sec_bhavdata_full_{day:%d%m%Y}.csv"
    publish(path, _delivery_csv(session), at(day, 18, 0))
    return [Written(path, len(session.quotes))]
