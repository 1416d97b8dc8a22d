"""The quality gate of deals, index constituents, holidays and option chains, on generated data."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest

from include.nse import pipeline, quality, sources
from include.nse.dates import IST, nse_date_text
from include.nse.errors import QualityError
from include.nse.lake import Lake
from include.nse.sources import checks
from include.nse.sources.base import Request
from include.nse.sources.deals import DEALS_ROW_BAND
from include.nse_standin.deals import api_json as deals_json
from include.nse_standin.deals import deals
from include.nse_standin.holidays import holiday_master
from include.nse_standin.indices import SPECS, mcwb_csv, members
from include.nse_standin.indices import api_json as index_json
from include.nse_standin.market import Universe
from include.nse_standin.market import sessions as _market
from include.nse_standin.option_chain import chain, write_option_chains
from include.nse_standin.server import StandIn, api_file
from tests.conftest import parse_dag
from tests.helpers import failed, set_row, standin_settings, state, task_states, two_day_lake

#: The last weekday of May 2024, when NSE's monthly weightage archive (weights) is out too.
PREVIOUS, DAY = dt.date(2024, 5, 30), dt.date(2024, 5, 31)
SNAPSHOT = dt.datetime(2024, 5, 31, 11, 0, 2, tzinfo=IST)
BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"


def _index_snapshot(session) -> pl.DataFrame:
    """A day's partition as the DAG files it: the monthly archive's NIFTY 50 and NEXT 50 (with
    weights, no ISINs) and the API's lists of the other indices (ISINs and series)."""
    dataset = sources.get("index_constituents")
    lists = members(session.universe, session.seed, session.trade_date)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for spec in SPECS:
            if spec.mcwb_member:
                day, seed = session.trade_date, session.seed
                archive.writestr(spec.mcwb_member, mcwb_csv(spec, lists[spec.name], day, seed))
    frames = [dataset.parse(buffer.getvalue(), "mcwb_may24.zip")]
    frames += [
        dataset.parse(index_json(spec, lists[spec.name], session), "equity-stockIndices.json")
        for spec in SPECS
        if not spec.mcwb_member
    ]
    return pl.concat(frames)


@pytest.fixture(scope="module")
def silver() -> dict[tuple[str, dt.date], pl.DataFrame]:
    """Generated deals, index lists and holidays of two trading days, parsed."""
    frames = {}
    for session in _market(Universe.build(11, 300), 11, [PREVIOUS, DAY], []):
        day = session.trade_date
        for kind in ("bulk_deals", "block_deals"):
            raw = deals_json(day, kind, deals(session, kind))
            frames[kind, day] = sources.get(kind).parse(raw, f"{kind}.json")
        frames["index_constituents", day] = _index_snapshot(session)
        holidays = sources.get("holidays").parse(holiday_master(day.year), "holiday-master.json")
        frames["holidays", day] = holidays
    return frames


def _lake(lake_root, silver, name: str, day_frame: pl.DataFrame | None = None) -> Lake:
    day = silver[name, DAY] if day_frame is None else day_frame
    return two_day_lake(lake_root, name, {PREVIOUS: silver[name, PREVIOUS], DAY: day})


def _validate(lake_root, silver, name: str, day_frame: pl.DataFrame) -> quality.Report:
    return quality.validate_partition(
        _lake(lake_root, silver, name, day_frame), sources.get(name), DAY
    )


PARTITIONED = ("bulk_deals", "block_deals", "index_constituents", "holidays")


class TestCleanDays:
    @pytest.mark.parametrize("name", PARTITIONED)
    def test_every_suite_passes(self, name, silver, lake_root):
        """A generated day passes every expectation of its dataset."""
        assert silver[name, DAY].height > 0
        report = quality.validate_partition(_lake(lake_root, silver, name), sources.get(name), DAY)
        assert report.failed == [], [o.describe() for o in report.failed]
        assert report.skipped == []
        assert len(report.outcomes) == len(quality.suite(sources.get(name))) > 2

    def test_generated_index_day_has_weights_and_isins(self, silver):
        """The clean index day exercises both the weight and the ISIN checks."""
        day = silver["index_constituents", DAY]
        assert day["weight"].drop_nulls().len() == 100
        assert day["isin"].drop_nulls().len() > 100

    def test_day_without_block_deals_passes(self, silver, lake_root):
        """A `NO RECORDS` day (no rows) passes; its row count is at most a warning."""
        empty = silver["block_deals", DAY].clear()
        report = _validate(lake_root, silver, "block_deals", empty)
        assert report.passed
        assert failed(report, checks.CRITICAL) == set()


class TestDeals:
    @pytest.mark.parametrize(
        ("column", "value", "expected"),
        [
            ("side", "BOUGHT", (IN_SET, "side")),
            ("quantity", 0, (BETWEEN, "quantity")),
            ("price", -1.5, (BETWEEN, "price")),
            ("trade_date", PREVIOUS, (IN_SET, "trade_date")),
        ],
    )
    @pytest.mark.parametrize("name", ["bulk_deals", "block_deals"])
    def test_bad_value_fails_critical(self, name, column, value, expected, silver, lake_root):
        """A bad side, a zero quantity, a negative price, another day's deal: critical."""
        report = _validate(lake_root, silver, name, set_row(silver[name, DAY], column, value))
        assert not report.passed
        assert failed(report, checks.CRITICAL) == {expected}

    def test_missing_symbol_fails_critical(self, silver, lake_root):
        """A deal without a symbol fails the key's not-null check."""
        day = set_row(silver["bulk_deals", DAY], "symbol", None)
        report = _validate(lake_root, silver, "bulk_deals", day)
        assert ("expect_column_values_to_not_be_null", "symbol") in failed(report, checks.CRITICAL)

    def test_row_count_swing_is_only_a_warning(self, silver, lake_root):
        """Far fewer deals than the day before is recorded, not stopped."""
        day = silver["bulk_deals", DAY].head(2)
        assert silver["bulk_deals", PREVIOUS].height * DEALS_ROW_BAND[0] > 2
        report = _validate(lake_root, silver, "bulk_deals", day)
        assert report.passed
        assert failed(report, checks.WARNING) == {("expect_table_row_count_to_be_between",)}
        assert report.warnings[0].observed_value == 2


class TestIndexConstituents:
    @pytest.mark.parametrize(
        ("column", "value", "expected"),
        [
            ("isin", "INE00XYZ", ("expect_column_values_to_match_regex", "isin")),
            ("isin", "US0378331005", ("expect_column_values_to_match_regex", "isin")),
            ("weight", 101.0, (BETWEEN, "weight")),
            ("weight", -0.5, (BETWEEN, "weight")),
        ],
    )
    def test_bad_value_fails_critical(self, column, value, expected, silver, lake_root):
        """A malformed or foreign ISIN, a weight outside 0..100: critical."""
        day = silver["index_constituents", DAY]
        row = day.with_row_index().filter(pl.col(column).is_not_null())["index"][0]
        report = _validate(
            lake_root, silver, "index_constituents", set_row(day, column, value, row)
        )
        assert failed(report, checks.CRITICAL) == {expected}

    def test_symbol_twice_in_an_index_fails_critical(self, silver, lake_root):
        """One index listing a symbol twice fails the key's uniqueness."""
        day = silver["index_constituents", DAY]
        report = _validate(lake_root, silver, "index_constituents", pl.concat([day, day.tail(1)]))
        key = str(list(sources.get("index_constituents").key))
        assert failed(report, checks.CRITICAL) == {
            ("expect_compound_columns_to_be_unique", key),
            ("expect_compound_columns_to_be_unique", "['trade_date', 'index_name', 'isin']"),
        }

    def test_isin_under_two_symbols_fails_critical(self, silver, lake_root):
        """Two symbols of one index sharing an ISIN fail the ISIN's uniqueness per index."""
        day = silver["index_constituents", DAY]
        listed = day.filter(pl.col("isin").is_not_null())
        twin = listed.head(1).with_columns(symbol=pl.lit("TWIN"))
        report = _validate(lake_root, silver, "index_constituents", pl.concat([day, twin]))
        assert failed(report, checks.CRITICAL) == {
            ("expect_compound_columns_to_be_unique", "['trade_date', 'index_name', 'isin']")
        }

    def test_unknown_series_is_only_a_warning(self, silver, lake_root):
        """A series outside the known set is recorded; the snapshot still loads."""
        day = silver["index_constituents", DAY]
        row = day.with_row_index().filter(pl.col("series").is_not_null())["index"][0]
        report = _validate(
            lake_root, silver, "index_constituents", set_row(day, "series", "XX", row)
        )
        assert report.passed
        assert failed(report, checks.WARNING) == {(IN_SET, "series")}
        assert report.warnings[0].unexpected_values == ["XX"]


class TestHolidays:
    @pytest.mark.parametrize(
        ("column", "value", "expected"),
        [
            ("description", None, ("expect_column_values_to_not_be_null", "description")),
            ("weekday", "Funday", (IN_SET, "weekday")),
            ("morning_session", "Half", (IN_SET, "morning_session")),
        ],
    )
    def test_bad_value_fails_critical(self, column, value, expected, silver, lake_root):
        """A holiday without a description, a made-up weekday or session state: critical."""
        report = _validate(
            lake_root, silver, "holidays", set_row(silver["holidays", DAY], column, value)
        )
        assert failed(report, checks.CRITICAL) == {expected}

    def test_unknown_segment_is_only_a_warning(self, silver, lake_root):
        """A segment code NSE has not used before is recorded; the lists still load."""
        day = set_row(silver["holidays", DAY], "segment", "NEWSEG")
        report = _validate(lake_root, silver, "holidays", day)
        assert report.passed
        assert failed(report, checks.WARNING) == {(IN_SET, "segment")}


#: Real files of each dataset (category folder, glob); the two left out do not parse (a trimmed
#: chain without its timestamp, a trimmed index answer without constituents). The bhavcopies'
#: real files are put through the gate by their conformance tests.
REAL = {
    "bulk_deals": ("bulk_deals", "bulk_block_deals", "*bulk*"),
    "block_deals": ("block_deals", "bulk_block_deals", "*block*"),
    "index_constituents": ("index_constituents", "index_constituents", "[!T]*"),
    "holidays": ("holidays", "holidays", "*.json"),
    "option_chain": ("option_chain", "option_chain", "[!T]*.json"),
    "option_chain_v3": ("option_chain", "option_chain", "TRIMMED_option-chain-v3_*.json"),
}


@pytest.mark.parametrize(("name", "folder", "pattern"), list(REAL.values()), ids=list(REAL))
def test_real_files_pass_every_expectation(name, folder, pattern, samples_dir):
    """NSE's real files pass every expectation, warnings included: no check cries wolf."""
    dataset = sources.get(name)
    paths = sorted((samples_dir / folder).glob(pattern))
    assert paths
    for path in paths:
        frame = dataset.parse(path.read_bytes(), path.name)
        day = DAY  # the day a file without dates (holidays, an index list) is fetched on
        if "trade_date" in frame.columns:
            frame = frame.with_columns(pl.col("trade_date").fill_null(DAY))
            day = frame["trade_date"].first() or DAY
        report, _ = quality.validate_frame(name, quality.suite(dataset), frame, day)
        assert report.failed == [], (path.name, [o.describe() for o in report.failed])


# ---- option chain: a cycle's new rows, validated before the load -------------------------------
OPTION_CHAIN = sources.get("option_chain")


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict:
    """A cycle of NIFTY and RELIANCE fetched from the stand-in and parsed into silver parts."""
    root = tmp_path_factory.mktemp("chain")
    write_option_chains(root / "nse", ["NIFTY", "RELIANCE"], SNAPSHOT)
    with StandIn(root / "nse") as standin:
        ctx = pipeline.Context(standin_settings(standin.url, lake_root=root / "lake"))
        fetched = pipeline.fetch(ctx, OPTION_CHAIN, Request(DAY, ("NIFTY", "RELIANCE")))
    parsed = pipeline.parse(ctx, OPTION_CHAIN, DAY, fetched)
    assert parsed["stored"] == ["NIFTY", "RELIANCE"] and len(parsed["silver"]) == 2
    return {"ctx": ctx, "parts": parsed["silver"], "parsed": parsed}


def _corrupted(tmp_path, parts: list[str], change) -> list[str]:
    """Copies of the parts, the first one changed by `change(frame)`."""
    changed = change(pl.read_parquet(parts[0]))
    copies = []
    for n, part in enumerate(parts):
        # The others take the changed part's types (a negative volume needs a signed column).
        frame = changed if n == 0 else pl.read_parquet(part).cast(dict(changed.schema))
        copies.append(str(tmp_path / f"{n}.parquet"))
        frame.write_parquet(copies[-1])
    return copies


def _validate_parts(ctx, parts: list[str]) -> list[quality.Report]:
    return OPTION_CHAIN.publication.validate_parts(ctx, OPTION_CHAIN, parts)


class TestOptionChain:
    def test_clean_cycle_passes_and_keeps_its_result(self, stored):
        """A cycle's new rows pass every expectation; the result is kept under quality/ and
        the gate says what it checked."""
        ctx = stored["ctx"]
        validated = pipeline.validate(ctx, OPTION_CHAIN, stored["parsed"])
        assert validated["rows"] == stored["parsed"]["rows"] > 0
        assert validated["expectations"] == len(quality.suite(OPTION_CHAIN))
        assert validated["warnings"] == [] and validated["pass_rate"] == 1.0
        (path,) = validated["artifacts"]
        folder = ctx.lake.partition("quality", "option_chain", DAY)
        assert Path(path).parent == folder
        assert json.loads(Path(path).read_text())["summary"]["critical_failed"] == 0

    def test_one_report_per_trade_date(self, stored):
        """The cycle's rows are checked together, once for their trade date."""
        (report,) = _validate_parts(stored["ctx"], stored["parts"])
        assert report.trade_date == DAY
        assert report.failed == [], [o.describe() for o in report.failed]
        assert report.rows == pl.read_parquet(stored["parts"]).height
        assert report.skipped == []

    def test_no_new_rows_no_validation(self, stored):
        """A cycle that stored nothing (all stale) validates nothing."""
        assert _validate_parts(stored["ctx"], []) == []

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            (lambda f: set_row(f, "strike_price", 0.0), (BETWEEN, "strike_price")),
            (lambda f: set_row(f, "option_type", "CA"), (IN_SET, "option_type")),
            (lambda f: set_row(f, "open_interest", -3.0), (BETWEEN, "open_interest")),
            (lambda f: set_row(f, "open_interest", None), (NOT_NULL, "open_interest")),
            (lambda f: set_row(f, "volume", -1), (BETWEEN, "volume")),
            (lambda f: set_row(f, "implied_volatility", -0.1), (BETWEEN, "implied_volatility")),
            (lambda f: set_row(f, "last_price", -2.0), (BETWEEN, "last_price")),
            (
                lambda f: set_row(f, "expiry_date", PREVIOUS),
                (PAIR, "expiry_date", "trade_date"),
            ),
        ],
        ids=["strike", "option_type", "oi", "no-oi", "volume", "iv", "price", "expired"],
    )
    def test_bad_value_fails_critical(self, change, expected, stored, tmp_path):
        """A zero strike, an unknown leg, a negative or missing OI, a negative volume, IV or
        price, an expired contract: critical, whichever underlying it is in; the gate raises."""
        parts = _corrupted(tmp_path, stored["parts"], change)
        (report,) = _validate_parts(stored["ctx"], parts)
        assert not report.passed
        assert failed(report, checks.CRITICAL) == {expected}
        with pytest.raises(QualityError, match="option_chain 2024-05-31: 1 critical") as caught:
            pipeline.validate(stored["ctx"], OPTION_CHAIN, {"trade_date": None, "silver": parts})
        assert "Result: " in str(caught.value)

    @pytest.mark.parametrize("column", ["volume", "change_in_oi", "bid_qty", "ask_qty", "change"])
    def test_missing_figure_is_only_a_warning(self, column, stored, tmp_path):
        """A leg without its volume, OI change, quote sizes or price change is recorded; the
        cycle still loads."""
        parts = _corrupted(tmp_path, stored["parts"], lambda f: set_row(f, column, None))
        (report,) = _validate_parts(stored["ctx"], parts)
        assert report.passed
        assert failed(report, checks.WARNING) == {(NOT_NULL, column)}

    def test_crossed_quote_is_only_a_warning(self, stored, tmp_path):
        """A bid above the ask is recorded; the cycle still loads."""

        def crossed(frame: pl.DataFrame) -> pl.DataFrame:
            row = frame.with_row_index().filter(pl.col("ask_price").is_not_null())["index"][0]
            return set_row(frame, "bid_price", frame["ask_price"][int(row)] + 5, int(row))

        (report,) = _validate_parts(stored["ctx"], _corrupted(tmp_path, stored["parts"], crossed))
        assert report.passed
        assert failed(report, checks.WARNING) == {(PAIR, "ask_price", "bid_price")}


# ---- option chain DAG: a critical failure loads nothing -----------------------------------------
CHAIN_SNAPSHOT = dt.datetime(2024, 7, 5, 10, 14, 58, tzinfo=IST)
#: A scheduled slot: 10:15 in Mumbai on a trading day.
CHAIN_RUN_AT = dt.datetime(2024, 7, 5, 4, 45, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    """The stand-in's chains of NIFTY and TCS, one NIFTY leg with a negative open interest."""
    root = tmp_path_factory.mktemp("nse")
    write_option_chains(root, ["NIFTY", "TCS"], CHAIN_SNAPSHOT)
    expiry = min(chain("NIFTY", CHAIN_SNAPSHOT)["expiries"])
    params = {"type": "Indices", "symbol": "NIFTY", "expiry": nse_date_text(expiry)}
    path = api_file(root, "option-chain-v3", params)
    answer = json.loads(path.read_text())
    answer["records"]["data"][0]["PE"]["openInterest"] = -5
    path.write_text(json.dumps(answer))
    return root


@pytest.mark.airflow
@pytest.mark.clickhouse
@pytest.mark.slow
def test_option_chain_dag_loads_nothing_on_a_critical_failure(dag_env, ch_client):
    """The gate fails the run before anything is loaded; silver and the result stay, the failure
    is recorded, and the coverage check after it still runs and fails the run."""
    dag = parse_dag("nse_option_chain")
    conf = {"underlyings": ["NIFTY", "TCS"], "chart_underlyings": []}
    run = dag.test(logical_date=CHAIN_RUN_AT, run_conf=conf)
    assert state(run) == "failed"
    assert task_states(dag.dag_id, run.run_id) == {
        "plan_option_chain": "success",
        "fetch_option_chain": "success",
        "parse_option_chain": "success",
        "validate_option_chain": "failed",
        "load_option_chain": "upstream_failed",
        "analytics_option_chain": "upstream_failed",
        "charts_option_chain": "upstream_failed",
        "check_coverage_option_chain": "failed",
    }

    db, lake = dag_env["database"], dag_env["lake"]
    assert ch_client.execute(f"SELECT count() FROM {db}.option_chain") == [(0,)]
    assert ch_client.execute(f"SELECT count() FROM {db}.option_chain_analytics") == [(0,)]
    (row,) = ch_client.execute(
        f"SELECT dataset, trade_date, critical_failed, result_path, run_id "
        f"FROM {db}.quality_validations"
    )
    assert row[:3] == ("option_chain", CHAIN_SNAPSHOT.date(), 1) and row[4] == run.run_id
    assert json.loads(Path(row[3]).read_text())["summary"]["critical_failed"] == 1
    silver = lake / "silver/option_chain/trade_date=2024-07-05"
    assert sorted(p.parent.name for p in silver.glob("*/*.parquet")) == [
        "underlying=NIFTY",
        "underlying=TCS",
    ]
