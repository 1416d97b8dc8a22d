"""Faults in the values NSE sends: each bad file served by the stand-in over loopback, run
through the one chain (fetch -> bronze -> parse -> silver -> gate -> load) into a ClickHouse
database of the test's own.

Every case asserts three things: nothing lost (bronze holds the bytes the stand-in served, and
once NSE serves a sound file every one of its rows is in ClickHouse), nothing duplicated (one
manifest entry per fetch, exact row counts after reruns), and a clear error naming the file and
the line or field. Bad files are made from the real samples in ../shared/nse-samples, read
here and changed in memory, never copied into the project.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import zipfile
from pathlib import Path

import polars as pl
import pytest

from include.nse import pipeline, quality, sources
from include.nse.errors import ParseError
from include.nse.lake import BronzeRecord
from include.nse.payload import digest
from include.nse.sources import option_chain
from include.nse.sources.base import Request
from include.nse.warehouse import Warehouse, connector
from include.nse_standin.server import StandIn, api_file
from tests.helpers import standin_settings, zipped

pytestmark = [pytest.mark.clickhouse]

CM_DAY = dt.date(2022, 5, 24)
CM_FILE = "cm24MAY2022bhav.csv"
CM_PATH = f"content/historical/EQUITIES/2022/MAY/{CM_FILE}.zip"
DELIVERY_DAY = dt.date(2018, 1, 1)
DELIVERY_FILE = "sec_bhavdata_full_01012018.csv"
DELIVERY_PATH = f"products/content/{DELIVERY_FILE}"
V3 = "TRIMMED_option-chain-v3_NIFTY_2026-09-11_sphpnp.json"
CHAIN_DAY = dt.date(2026, 9, 11)
EXPIRY = "15-Sep-2026"
HOLIDAYS = "holiday-master_trading_2025_misterdas.json"
DEALS = "TRIMMED_historicalOR-bulk_deals_sample_NseIndiaApi.json"
DEALS_DAY = dt.date(2025, 12, 1)


# ---- the surroundings ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def nse(tmp_path_factory):
    """The stand-in, serving a folder each case writes its files into."""
    root = tmp_path_factory.mktemp("nse")
    with StandIn(root) as standin:
        yield standin


@pytest.fixture()
def ctx(nse, tmp_path, clickhouse_server, ch_database):
    """The chain's context: NSE on the stand-in, a lake and a database of the test's own."""

    return pipeline.Context(
        standin_settings(nse.url, lake_root=tmp_path / "lake"),
        Warehouse(connector(**clickhouse_server), ch_database),
        run_id="fault",
    )


def serve(nse: StandIn, path: str | Path, data: bytes) -> bytes:
    """Serve `data` at `path` (relative to the stand-in's root); returns it."""
    target = nse.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return data


def rows_in(ctx, table: str, **where) -> int:
    condition = " AND ".join(f"{k} = %({k})s" for k in where) or "1"
    with ctx.database() as (client, database):
        return client.execute(f"SELECT count() FROM {database}.{table} WHERE {condition}", where)[
            0
        ][0]


def kept(ctx, dataset: str, day: dt.date, part: str | None = None) -> list[BronzeRecord]:
    """The folder's manifest entries, each checked against the bytes on disk."""
    entries = [BronzeRecord.from_dict(e) for e in ctx.lake.bronze_manifest(dataset, day, part)]
    for entry in entries:
        entry.read()  # refuses bytes that are not the recorded ones
    return entries


def assert_kept_once(ctx, dataset: str, day: dt.date, served: list[bytes], part=None) -> None:
    """Bronze holds each served body, one manifest entry per fetch, in order: none lost, none
    twice."""
    assert [e.sha256 for e in kept(ctx, dataset, day, part)] == [digest(b) for b in served]


def csv_rows(data: bytes, separator: str = ",") -> list[dict]:
    """A CSV's records, read with the csv module (the reference the chain is held to)."""
    text = data.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text), delimiter=separator))
    header = [name.strip() for name in rows[0]]
    return [dict(zip(header, (v.strip() for v in row), strict=False)) for row in rows[1:] if row]


def run_date(ctx, name: str, day: dt.date, **request) -> dict:
    """The chain for one date as a DAG run has it, up to the load (the steps particular to a
    dataset after it do not bear on these faults)."""
    dataset = sources.get(name)
    fetched = pipeline.fetch(ctx, dataset, Request(day, **request))
    validated = pipeline.validate(ctx, dataset, pipeline.parse(ctx, dataset, day, fetched))
    return {"fetch": fetched, "load": pipeline.load(ctx, dataset, validated)}


def refused(ctx, name: str, day: dt.date, error=ParseError, **request) -> Exception:
    """Run the chain for a day whose file must be refused; the error."""
    with pytest.raises(error) as caught:
        run_date(ctx, name, day, **request)
    return caught.value


def sample(samples_dir: Path, folder: str, name: str) -> bytes:
    return (samples_dir / folder / name).read_bytes()


def cm_csv(samples_dir: Path) -> bytes:
    with zipfile.ZipFile(samples_dir / "cm_bhavcopy_legacy" / f"{CM_FILE}.zip") as archive:
        return archive.read(CM_FILE)


def refused_then_fixed(ctx, nse, name, day, path, bad: bytes, good: bytes, check) -> dict:
    """Serve `bad`: the chain refuses it (`check` judges the error) and loads nothing; then
    NSE's sound file, run twice: every row once. Returns counts for the record."""
    served = serve(nse, path, bad)
    table = sources.get(name).table
    check(refused(ctx, name, day))
    assert rows_in(ctx, table, trade_date=day) == 0
    assert not ctx.lake.silver_path(name, day).exists()
    serve(nse, path, good)
    for _ in range(2):
        run_date(ctx, name, day)
    assert_kept_once(ctx, name, day, [served, good, good])
    return {"rows": rows_in(ctx, table, trade_date=day)}


# ---- option chain ---------------------------------------------------------------------------
def _serve_chain(nse: StandIn, underlying: str, document: bytes) -> bytes:
    serve(
        nse,
        api_file(nse.root, "option-chain-contract-info", {"symbol": underlying}).relative_to(
            nse.root
        ),
        json.dumps({"expiryDates": [EXPIRY]}).encode(),
    )
    params = {"type": option_chain.chain_type(underlying), "symbol": underlying, "expiry": EXPIRY}
    return serve(nse, api_file(nse.root, "option-chain-v3", params).relative_to(nse.root), document)


def _chain_of(raw: bytes, underlying: str) -> bytes:
    """The real v3 excerpt as if it were `underlying`'s chain."""
    return raw.replace(b'"underlying": "NIFTY"', f'"underlying": "{underlying}"'.encode())


def _chain_cycle(ctx, nse, samples_dir, bad: dict[str, bytes]) -> tuple[dict, dict]:
    """One cycle of NIFTY (served as NSE sent it) and the `bad` underlyings; fetch, parse,
    gate and load as a DAG run does. Returns what parse and load reported."""
    raw = sample(samples_dir, "option_chain", V3)
    _serve_chain(nse, "NIFTY", raw)
    for underlying, document in bad.items():
        _serve_chain(nse, underlying, document)
    dataset = option_chain.DATASET
    request = Request(CHAIN_DAY, items=("NIFTY", *bad))
    fetched = pipeline.fetch(ctx, dataset, request)
    parsed = pipeline.parse(ctx, dataset, CHAIN_DAY, fetched)
    validated = pipeline.validate(ctx, dataset, parsed)
    loaded = pipeline.load(ctx, dataset, validated)
    return parsed, loaded


def _legs(raw: bytes) -> int:
    return sum(side in item for item in json.loads(raw)["records"]["data"] for side in ("CE", "PE"))


def _v3_bronze(ctx, underlying: str) -> list[str]:
    """sha256 of each option-chain-v3 answer kept for `underlying`."""
    return [
        e.sha256
        for e in kept(ctx, "option_chain", CHAIN_DAY, f"underlying={underlying}")
        if "_v3_" in e.file_name
    ]


def _set_leg(raw: bytes, underlying: str, field: str, json_text: str) -> bytes:
    """`underlying`'s chain with the first strike's call `field` set to `json_text` as sent."""
    document = json.loads(_chain_of(raw, underlying))
    document["records"]["data"][0]["CE"][field] = "@value@"
    return json.dumps(document).encode().replace(b'"@value@"', json_text.encode())


def test_option_chain_text_where_a_number_belongs(ctx, nse, samples_dir, fault):
    raw = sample(samples_dir, "option_chain", V3)
    bad = _set_leg(raw, "BANKNIFTY", "openInterest", '"18"')
    parsed, loaded = _chain_cycle(ctx, nse, samples_dir, {"BANKNIFTY": bad})
    error = parsed["failed"]["BANKNIFTY"]
    assert "column 'records.data[0].CE.openInterest': expected a number or null, found '18'" in (
        error
    )
    # The sound underlying loads whole, once; the refused one loads nothing and stays in bronze.
    assert loaded["rows"] == rows_in(ctx, "option_chain", underlying="NIFTY") == _legs(raw)
    assert rows_in(ctx, "option_chain", underlying="BANKNIFTY") == 0
    assert _v3_bronze(ctx, "BANKNIFTY") == [digest(bad)]
    with pytest.raises(option_chain.CoverageError, match="BANKNIFTY"):
        option_chain.coverage(["NIFTY", "BANKNIFTY"], [parsed], 0.1)
    fault(
        'option chain: text where a number belongs (openInterest "18")',
        outcome="refused: " + error.split(", ", 1)[1],
    )


@pytest.mark.parametrize(
    ("field", "json_text", "expected"),
    [
        ("lastPrice", "NaN", "expected JSON: NaN is not a number NSE sends"),
        ("change", "-Infinity", "expected JSON: -Infinity is not a number NSE sends"),
        ("impliedVolatility", "1e400", "expected a number or null, found inf"),
    ],
)
def test_option_chain_nan_and_infinity(ctx, nse, samples_dir, fault, field, json_text, expected):
    raw = sample(samples_dir, "option_chain", V3)
    bad = _set_leg(raw, "FINNIFTY", field, json_text)
    parsed, loaded = _chain_cycle(ctx, nse, samples_dir, {"FINNIFTY": bad})
    error = parsed["failed"]["FINNIFTY"]
    assert f"column 'records.data[0].CE.{field}': {expected}" in error
    assert rows_in(ctx, "option_chain", underlying="FINNIFTY") == 0
    assert rows_in(ctx, "option_chain", underlying="NIFTY") == loaded["rows"] == _legs(raw)
    assert _v3_bronze(ctx, "FINNIFTY") == [digest(bad)]
    # Past the parser too: the same value written into silver by anything else stops the gate.
    part = pl.read_parquet(parsed["silver"][0])
    column = {
        "lastPrice": "last_price",
        "change": "change",
        "impliedVolatility": "implied_volatility",
    }
    poisoned = part.with_columns(pl.lit(float(json_text)).alias(column[field]))
    report = quality.validate_rows(ctx.lake, option_chain.DATASET, poisoned, CHAIN_DAY, "poisoned")
    assert not report.passed
    assert {o.kwargs["column"] for o in report.critical_failed} == {column[field]}
    fault(
        f"option chain: {json_text} in {field}",
        outcome=f"refused by the parser ({expected}) and by the gate's finite check",
    )


# ---- index API ------------------------------------------------------------------------------
INDEX_DAY = dt.date(2026, 5, 27)
MEMBERS = (
    ("RELIANCE", "Reliance Industries Ltd.", "INE002A01018"),
    ("TCS", "Tata Consultancy Services Ltd.", "INE467B01029"),
    ("INFY", "Infosys Ltd.", "INE009A01021"),
)


def _index_answer(changes: dict | None = None) -> dict:
    """NSE's equity-stockIndices answer for NIFTY 50 on INDEX_DAY: the index's own row (as in
    the real sample), then three constituents."""
    document = {
        "name": "NIFTY 50",
        "timestamp": f"{INDEX_DAY:%d-%b-%Y} 15:30:00",
        "data": [{"priority": 1, "symbol": "NIFTY 50", "identifier": "NIFTY 50"}]
        + [
            {
                "priority": 0,
                "symbol": symbol,
                "series": "EQ",
                "meta": {"companyName": company, "industry": "Large Cap", "isin": isin},
            }
            for symbol, company, isin in MEMBERS
        ],
    }
    for (position, field), value in (changes or {}).items():
        document["data"][position][field] = value
    return document


def test_index_api_list_where_text_belongs(ctx, nse, fault):
    path = api_file(nse.root, "equity-stockIndices", {"index": "NIFTY 50"}).relative_to(nse.root)
    bad = serve(nse, path, json.dumps(_index_answer({(2, "series"): ["EQ", "BE"]})).encode())
    error = refused(ctx, "index_constituents", INDEX_DAY, items=("NIFTY 50",))
    assert "column 'data[2].series': expected text or null, found ['EQ', 'BE']" in str(error)
    assert rows_in(ctx, "index_constituents", trade_date=INDEX_DAY) == 0
    good = serve(nse, path, json.dumps(_index_answer()).encode())
    for _ in range(2):
        run_date(ctx, "index_constituents", INDEX_DAY, items=("NIFTY 50",))
    assert_kept_once(ctx, "index_constituents", INDEX_DAY, [bad, good, good], "index=nifty50")
    assert rows_in(ctx, "index_constituents", trade_date=INDEX_DAY) == len(MEMBERS)
    fault("index API: a list where text belongs (series)", outcome=f"refused: {error.message}")


# ---- a number where text belongs --------------------------------------------------------------
def test_deals_api_number_where_text_belongs(ctx, nse, samples_dir, fault):
    raw = sample(samples_dir, "bulk_block_deals", DEALS)
    query = {"optionType": "bulk_deals", "from": "01-12-2025", "to": "01-12-2025"}
    path = api_file(nse.root, "historicalOR/bulk-block-short-deals", query).relative_to(nse.root)
    document = json.loads(raw)
    document[0]["BD_CLIENT_NAME"] = 8675309
    bad = serve(nse, path, json.dumps(document).encode())
    dataset = sources.get("bulk_deals")
    request = Request(DEALS_DAY)
    pipeline.fetch(ctx, dataset, request, history=True)
    with pytest.raises(ParseError) as caught:
        pipeline.parse(ctx, dataset, DEALS_DAY)
    assert str(caught.value).endswith(
        "column 'BD_CLIENT_NAME': deal 1 of data: expected text, found 8675309"
    )
    assert not ctx.lake.silver_path("bulk_deals", DEALS_DAY).exists()
    serve(nse, path, raw)
    for _ in range(2):
        fetched = pipeline.fetch(ctx, dataset, request, history=True)
        validated = pipeline.validate(
            ctx, dataset, pipeline.parse(ctx, dataset, DEALS_DAY, fetched)
        )
        pipeline.load(ctx, dataset, validated)
    assert_kept_once(ctx, "bulk_deals", DEALS_DAY, [bad, raw, raw])
    assert rows_in(ctx, "bulk_deals", trade_date=DEALS_DAY, client_name="HRTI PRIVATE LIMITED") == 1
    assert rows_in(ctx, "bulk_deals", trade_date=DEALS_DAY) == len(json.loads(raw))
    fault(
        "deals API: a number where text belongs (BD_CLIENT_NAME)",
        outcome=f"refused: {caught.value.message}",
    )


# ---- holidays -------------------------------------------------------------------------------
def test_holiday_list_invalid_utf8(ctx, nse, samples_dir, fault):
    raw = sample(samples_dir, "holidays", HOLIDAYS)
    line = raw[: raw.index(b"Republic Day")].count(b"\n") + 1
    bad = raw.replace(b"Republic Day", b"Republic D\xe4y", 1)  # Latin-1, not UTF-8
    path = api_file(nse.root, "holiday-master", {"type": "trading"}).relative_to(nse.root)
    serve(nse, path, bad)
    day = dt.date(2025, 1, 2)
    error = refused(ctx, "holidays", day)
    assert str(error) == (
        f"holiday-master_type=trading.json, line {line}: expected UTF-8 text (invalid continuation "
        "byte)"
    )
    assert rows_in(ctx, "holidays") == 0
    serve(nse, path, raw)
    for _ in range(2):
        run_date(ctx, "holidays", day)
    assert_kept_once(ctx, "holidays", day, [bad, raw, raw])
    expected = sum(len(entries) for entries in json.loads(raw).values())
    assert rows_in(ctx, "holidays") == expected
    fault("holiday list: invalid UTF-8", outcome=f"refused: {error}")


# ---- duplicate rows -------------------------------------------------------------------------
def test_cm_bhavcopy_duplicate_rows(ctx, nse, samples_dir, fault):
    data = cm_csv(samples_dir)
    lines = data.split(b"\n")
    twice = b"\n".join([*lines[:100], lines[42], *lines[100:]])
    expected = csv_rows(data)

    def check(error):
        assert str(error) == (
            f"{CM_FILE}.zip, line 101: expected one row per (trade_date, symbol, series), found "
            "the key of line 43 again"
        )

    counts = refused_then_fixed(
        ctx,
        nse,
        "cm_bhavcopy",
        CM_DAY,
        CM_PATH,
        zipped({CM_FILE: twice}),
        zipped({CM_FILE: data}),
        check,
    )
    assert counts["rows"] == len(expected)
    fault("CM bhavcopy: a row twice", outcome="refused by the parser, naming lines 43 and 101")


def test_delivery_duplicate_rows(ctx, nse, samples_dir, fault):
    data = sample(samples_dir, "cm_bhavcopy_legacy", DELIVERY_FILE)
    lines = data.split(b"\n")
    twice = b"\n".join([*lines[:-2], lines[7], *lines[-2:]])
    expected = csv_rows(data)

    def check(error):
        assert str(error).startswith(f"{DELIVERY_FILE}, line {len(lines) - 1}: expected one row")
        assert str(error).endswith("found the key of line 8 again")

    counts = refused_then_fixed(
        ctx, nse, "cm_delivery", DELIVERY_DAY, DELIVERY_PATH, twice, data, check
    )
    assert counts["rows"] == len(expected)
    fault("delivery: a row twice", outcome="refused by the parser, naming both lines")


# ---- schema drift in a bhavcopy CSV -----------------------------------------------------------
def _drifted(data: bytes, change) -> bytes:
    """The CSV with each line's fields changed by `change(fields, is_header)`."""
    lines = data.rstrip(b"\n").split(b"\n")
    out = [b",".join(change(line.split(b","), n == 0)) for n, line in enumerate(lines)]
    return b"\n".join(out) + b"\n"


def test_schema_drift_added_column_is_read_with_a_warning(ctx, nse, samples_dir, fault, caplog):
    data = cm_csv(samples_dir)
    # A new column before the trailing comma, as NSE added TOTALTRADES and ISIN once.
    added = _drifted(data, lambda f, head: [*f[:-1], b"MKT_CAP" if head else b"12.5", f[-1]])
    served = serve(nse, CM_PATH, zipped({CM_FILE: added}))
    caplog.set_level(logging.WARNING, "include.nse.sources._csv")
    for _ in range(2):
        result = run_date(ctx, "cm_bhavcopy", CM_DAY)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        warnings
        == [
            f"{CM_FILE}.zip: column(s) MKT_CAP are not in NSE's legacy CM layout and are not read; "
            "bronze keeps them"
        ]
        * 2
    )
    expected = csv_rows(data)
    assert result["load"]["rows"] == rows_in(ctx, "cm_bhavcopy", trade_date=CM_DAY) == len(expected)
    with ctx.database() as (client, database):
        loaded = client.execute(
            f"SELECT symbol, series, close FROM {database}.cm_bhavcopy ORDER BY symbol, series"
        )
    assert loaded == sorted((r["SYMBOL"], r["SERIES"], float(r["CLOSE"])) for r in expected)
    assert_kept_once(ctx, "cm_bhavcopy", CM_DAY, [served, served])
    fault(
        "schema drift: an added column (CM bhavcopy)",
        outcome="accepted with a warning naming it; every row loaded once",
    )


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        (
            "missing",
            lambda f, head: f[:5] + f[6:],
            "header lacks CLOSE; found SYMBOL, SERIES",
        ),
        (
            "renamed",
            lambda f, head: [*f[:5], b"CLOSE_PRICE" if head else f[5], *f[6:]],
            "header lacks CLOSE and has CLOSE_PRICE instead, which the legacy CM layout does not "
            "have (a renamed column?)",
        ),
    ],
)
def test_schema_drift_missing_or_renamed_column_is_refused(
    ctx, nse, samples_dir, fault, kind, change, message
):
    data = cm_csv(samples_dir)

    def check(error):
        assert str(error).startswith(f"{CM_FILE}.zip, line 1: {message}")

    counts = refused_then_fixed(
        ctx,
        nse,
        "cm_bhavcopy",
        CM_DAY,
        CM_PATH,
        zipped({CM_FILE: _drifted(data, change)}),
        zipped({CM_FILE: data}),
        check,
    )
    assert counts["rows"] == len(csv_rows(data))
    fault(f"schema drift: a {kind} column (CM bhavcopy CLOSE)", outcome=f"refused: {message}")
