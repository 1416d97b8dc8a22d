"""Option chain API responses for the generated market, as the stand-in serves them.

For each underlying and snapshot time: the `option-chain-contract-info` answer (its expiries)
and one `option-chain-v3` answer per expiry, written where `server.api_file` looks for them;
optionally the older all-expiries answer (`option-chain-indices` / `-equities`, with
`filtered`) too. Field names and formats are those of real responses: the older shape as in
NSE files in `nse-samples`, v3 as in public captures of it (`expiryDates` on each strike,
`buyPrice1`/`sellPrice1` quotes, leg expiries as `DD-MM-YYYY`).

The chain is priced with Black's formula on a volatility smile; open interest is heaviest near
the money and at round strikes, puts below the spot and calls above; deep in-the-money legs are
often missing, as on NSE, and legs that never traded print 0 for price and volatility. Expiries
follow the F&O generator (`fo.expiries`). The same arguments write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from include.nse_standin.fo import INDICES, expiries, index_level, normal_cdf, stock_step
from include.nse_standin.market import IST, nse_date
from include.nse_standin.server import api_file

#: Strikes each side of the money: indices' near expiries, their later ones, stocks.
INDEX_NEAR_STRIKES, INDEX_FAR_STRIKES, STOCK_STRIKES = 60, 25, 22
#: Share of deep in-the-money legs (beyond this many steps) NSE lists without a leg.
DEEP_STEPS, MISSING_DEEP_LEG = 12, 0.4


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def is_index(underlying: str) -> bool:
    return any(symbol == underlying for symbol, *_ in INDICES)


def spot_and_step(underlying: str, day: dt.date) -> tuple[float, float]:
    """A plausible price (rupees, 0.05 ticks) and strike step for an index or a stock."""
    for symbol, level, step, *_ in INDICES:
        if symbol == underlying:
            return round(index_level(level, day, 0.0) * 20) / 20, float(step)
    rng = np.random.default_rng(_seed("spot", underlying))
    price = round(float(np.exp(rng.uniform(np.log(60), np.log(6000)))) * 20) / 20
    return price, float(stock_step(price))


def _legs(
    rng: np.random.Generator,
    spot: float,
    strikes: np.ndarray,
    step: float,
    years: float,
    sigma: float,
    option_type: str,
) -> dict[str, np.ndarray]:
    """Prices, volatility, open interest, volume and quotes of one side of an expiry."""
    moneyness = np.log(strikes / spot)
    iv = sigma * (1 + 1.5 * moneyness**2 - (0.4 if option_type == "PE" else 0.1) * moneyness)
    iv = iv * np.exp(0.02 * rng.standard_normal(len(strikes)))
    d1 = (-moneyness + 0.5 * iv**2 * years) / (iv * np.sqrt(years))
    d2 = d1 - iv * np.sqrt(years)
    if option_type == "CE":
        price = spot * normal_cdf(d1) - strikes * normal_cdf(d2)
        otm = strikes >= spot
    else:
        price = strikes * normal_cdf(-d2) - spot * normal_cdf(-d1)
        otm = strikes <= spot
    price = np.maximum(np.round(price * 20) / 20, 0.05)
    distance = np.abs(moneyness) / (sigma * np.sqrt(years) + 1e-9)
    roundness = np.where(np.isclose(strikes % (5 * step), 0), 2.0, 1.0)
    oi = np.rint(
        4000
        * roundness
        * np.exp(-0.5 * distance**2)
        * np.where(otm, 1.5, 0.4)
        * rng.lognormal(0, 0.4, len(strikes))
    )
    volume = np.rint(oi * rng.uniform(0.5, 6, len(strikes)) * np.exp(-distance))
    traded = volume > 0
    change_in_oi = np.rint(oi * rng.uniform(-0.3, 0.5, len(strikes)))
    spread = np.maximum(np.round(price * 0.01 * 20) / 20, 0.05)
    quoted = oi > 0
    return {
        "openInterest": oi,
        "changeinOpenInterest": np.where(quoted, change_in_oi, 0),
        "pchangeinOpenInterest": np.where(
            oi - change_in_oi > 0, 100 * change_in_oi / np.maximum(oi - change_in_oi, 1), 0
        ),
        "totalTradedVolume": volume,
        "impliedVolatility": np.where(traded, np.round(iv * 100, 2), 0),
        "lastPrice": np.where(traded, price, 0),
        "change": np.where(traded, np.round(price * rng.uniform(-0.3, 0.3) * 20) / 20, 0),
        "totalBuyQuantity": np.rint(oi * rng.uniform(0.5, 3, len(strikes))) * 25,
        "totalSellQuantity": np.rint(oi * rng.uniform(0.5, 3, len(strikes))) * 25,
        "bid_qty": np.where(quoted, np.rint(rng.uniform(1, 40, len(strikes))) * 25, 0),
        "bid_price": np.where(quoted, np.maximum(price - spread, 0.05), 0),
        "ask_price": np.where(quoted, price + spread, 0),
        "ask_qty": np.where(quoted, np.rint(rng.uniform(1, 40, len(strikes))) * 25, 0),
    }


#: Quote fields in each shape (bid quantity, bid, ask, ask quantity).
_QUOTES = {
    "legacy": ("bidQty", "bidprice", "askPrice", "askQty"),
    "v3": ("buyQuantity1", "buyPrice1", "sellPrice1", "sellQuantity1"),
}


def _number(value: float) -> float | int:
    """NSE prints whole numbers without a fraction (11000, not 11000.0)."""
    return int(value) if float(value).is_integer() else round(float(value), 2)


def chain(underlying: str, snapshot_at: dt.datetime) -> dict:
    """The model of one snapshot: spot, expiries, and per expiry its strikes and legs."""
    day = snapshot_at.astimezone(IST).date()
    spot, step = spot_and_step(underlying, day)
    rng = np.random.default_rng(_seed("chain", underlying, snapshot_at.isoformat()))
    index = is_index(underlying)
    live = [e for e, _ in expiries(day, weekly=index, quarterly=underlying == "NIFTY")]
    sigma = 0.13 if index else 0.22 + 0.25 * (_seed(underlying) % 100) / 100
    spot = round(spot * float(np.exp(0.002 * rng.standard_normal())) * 20) / 20
    by_expiry = {}
    for n, expiry in enumerate(live):
        if index:
            wings = INDEX_NEAR_STRIKES if n < 3 else INDEX_FAR_STRIKES
        else:
            wings = STOCK_STRIKES
        atm = round(spot / step) * step
        strikes = atm + step * np.arange(-wings, wings + 1)
        strikes = strikes[strikes > 0]
        years = max((expiry - day).days, 0.5) / 365
        legs = {side: _legs(rng, spot, strikes, step, years, sigma, side) for side in ("CE", "PE")}
        deep = np.abs(strikes - spot) > DEEP_STEPS * step
        missing = {
            "CE": deep & (strikes < spot) & (rng.uniform(size=len(strikes)) < MISSING_DEEP_LEG),
            "PE": deep & (strikes > spot) & (rng.uniform(size=len(strikes)) < MISSING_DEEP_LEG),
        }
        by_expiry[expiry] = {"strikes": strikes, "legs": legs, "missing": missing}
    return {
        "underlying": underlying,
        "spot": spot,
        "snapshot_at": snapshot_at,
        "expiries": by_expiry,
    }


def _items(model: dict, expiry: dt.date, shape: str) -> list[dict]:
    block = model["expiries"][expiry]
    underlying, spot = model["underlying"], model["spot"]
    instrument = "OPTIDX" if is_index(underlying) else "OPTSTK"
    bid_qty, bid, ask, ask_qty = _QUOTES[shape]
    items = []
    for i, strike in enumerate(block["strikes"].tolist()):
        item = {"strikePrice": _number(strike)}
        item["expiryDates" if shape == "v3" else "expiryDate"] = nse_date(expiry)
        for side in ("CE", "PE"):
            if block["missing"][side][i]:
                continue
            values = {name: column[i] for name, column in block["legs"][side].items()}
            leg = {
                "strikePrice": _number(strike),
                "expiryDate": f"{expiry:%d-%m-%Y}" if shape == "v3" else nse_date(expiry),
                "underlying": underlying,
                "identifier": f"{instrument}{underlying}{expiry:%d-%m-%Y}{side}{strike:.2f}",
                **{
                    name: _number(value)
                    for name, value in values.items()
                    if name not in ("bid_qty", "bid_price", "ask_price", "ask_qty")
                },
                bid_qty: _number(values["bid_qty"]),
                bid: _number(values["bid_price"]),
                ask_qty: _number(values["ask_qty"]),
                ask: _number(values["ask_price"]),
                "underlyingValue": spot,
            }
            item[side] = leg
        items.append(item)
    return items


def _timestamp(model: dict) -> str:
    at = model["snapshot_at"].astimezone(IST)
    return f"{nse_date(at.date())} {at:%H:%M:%S}"


def v3_response(model: dict, expiry: dt.date) -> dict:
    return {
        "records": {
            "timestamp": _timestamp(model),
            "underlyingValue": model["spot"],
            "data": _items(model, expiry, "v3"),
        }
    }


def legacy_response(model: dict) -> dict:
    """All expiries under `records`, the nearest again under `filtered` with its totals."""
    data = [item for e in model["expiries"] for item in _items(model, e, "legacy")]
    strikes = sorted({item["strikePrice"] for item in data})
    nearest = [item for item in data if item["expiryDate"] == nse_date(min(model["expiries"]))]
    totals = {
        side: {
            "totOI": _number(sum(i[side]["openInterest"] for i in nearest if side in i)),
            "totVol": _number(sum(i[side]["totalTradedVolume"] for i in nearest if side in i)),
        }
        for side in ("CE", "PE")
    }
    return {
        "records": {
            "expiryDates": [nse_date(e) for e in model["expiries"]],
            "data": data,
            "timestamp": _timestamp(model),
            "underlyingValue": model["spot"],
            "strikePrices": strikes,
        },
        "filtered": {"data": nearest, **totals},
    }


def _write(path: Path, document: dict) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(document, separators=(",", ":")).encode()
    path.write_bytes(body)
    return len(body)


def chain_type(underlying: str) -> str:
    """The v3 endpoint's `type`: Indices or Equity."""
    return "Indices" if is_index(underlying) else "Equity"


def write_option_chains(
    out: Path, underlyings: Iterable[str], snapshot_at: dt.datetime, *, legacy: bool = False
) -> dict:
    """Write each underlying's contract-info and v3 answers (and the older shape if `legacy`).

    Returns counts of files, legs and bytes written.
    """
    stats = {"files": 0, "legs": 0, "bytes": 0}
    for underlying in underlyings:
        model = chain(underlying, snapshot_at)
        info = {
            "expiryDates": [nse_date(e) for e in model["expiries"]],
            "strikePrice": sorted(
                {f"{s:.2f}" for block in model["expiries"].values() for s in block["strikes"]}
            ),
        }
        written = [(api_file(out, "option-chain-contract-info", {"symbol": underlying}), info)]
        for expiry in model["expiries"]:
            params = {
                "type": chain_type(underlying),
                "symbol": underlying,
                "expiry": nse_date(expiry),
            }
            written.append((api_file(out, "option-chain-v3", params), v3_response(model, expiry)))
        if legacy:
            endpoint = "option-chain-indices" if is_index(underlying) else "option-chain-equities"
            written.append(
                (api_file(out, endpoint, {"symbol": underlying}), legacy_response(model))
            )
        for path, document in written:
            stats["bytes"] += _write(path, document)
            stats["files"] += 1
        stats["legs"] += sum(
            int((~block["missing"][side]).sum())
            for block in model["expiries"].values()
            for side in ("CE", "PE")
        )
    return stats
