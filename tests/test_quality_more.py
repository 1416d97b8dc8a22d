"""The quality gate of deals, index constituents, holidays and option chains, on generated data."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import polars as pl
import pytest
import test_dag_option_chain as chain_dag
from test_quality import _failed

from include.nse import option_chain, quality, sources
from include.nse.lake import Lake
from include.nse.sources import checks
from include.nse.sources.deals import DEALS_ROW_BAND
from include.nse.sources.option_chain import IST
from include.nse_standin.deals import api_json as deals_json
from include.nse_standin.deals import deals
from include.nse_standin.holidays import holiday_master
from include.nse_standin.indices import SPECS, mcwb_csv, members
from include.nse_standin.indices import api_json as index_json
from include.nse_standin.market import Universe
from include.nse_standin.market import sessions as _market
from include.nse_standin.option_chain import chain, v3_response

#: The last weekday of May 2024, when NSE's monthly weightage archive (weights) is out too.
PREVIOUS, DAY = dt.date(2024, 5, 30), dt.date(2024, 5, 31)
SNAPSHOT = dt.datetime(2024, 5, 31, 11, 0, 2, tzinfo=IST)
BETWEEN = "expect_column_values_to_be_between"
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
    lake = Lake(lake_root)
    lake.write_silver(name, PREVIOUS, silver[name, PREVIOUS])
    lake.write_silver(name, DAY, silver[name, DAY] if day_frame is None else day_frame)
    return lake


def _validate(lake_root, silver, name: str, day_frame: pl.DataFrame) -> quality.Report:
    return quality.validate_partition(
        _lake(lake_root, silver, name, day_frame), sources.get(name), DAY
    )


def _set_row(df: pl.DataFrame, column: str, value, row: int = 0) -> pl.DataFrame:
    """`df` with `column` of one row replaced by `value` (the column cast to hold it)."""
    kind = pl.Int64 if isinstance(value, int) and df[column].dtype.is_unsigned_integer() else None
    values = df[column].cast(kind) if kind else df[column]
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(values).alias(column)
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
        assert _failed(report, checks.CRITICAL) == set()


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
        report = _validate(lake_root, silver, name, _set_row(silver[name, DAY], column, value))
        assert not report.passed
        assert _failed(report, checks.CRITICAL) == {expected}

    def test_missing_symbol_fails_critical(self, silver, lake_root):
        """A deal without a symbol fails the key's not-null check."""
        day = _set_row(silver["bulk_deals", DAY], "symbol", None)
        report = _validate(lake_root, silver, "bulk_deals", day)
        assert ("expect_column_values_to_not_be_null", "symbol") in _failed(report, checks.CRITICAL)

    def test_row_count_swing_is_only_a_warning(self, silver, lake_root):
        """Far fewer deals than the day before is recorded, not stopped."""
        day = silver["bulk_deals", DAY].head(2)
        assert silver["bulk_deals", PREVIOUS].height * DEALS_ROW_BAND[0] > 2
        report = _validate(lake_root, silver, "bulk_deals", day)
        assert report.passed
        assert _failed(report, checks.WARNING) == {("expect_table_row_count_to_be_between",)}
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
            lake_root, silver, "index_constituents", _set_row(day, column, value, row)
        )
        assert _failed(report, checks.CRITICAL) == {expected}

    def test_symbol_twice_in_an_index_fails_critical(self, silver, lake_root):
        """One index listing a symbol twice fails the key's uniqueness."""
        day = silver["index_constituents", DAY]
        report = _validate(lake_root, silver, "index_constituents", pl.concat([day, day.tail(1)]))
        key = str(list(sources.get("index_constituents").key))
        assert _failed(report, checks.CRITICAL) == {
            ("expect_compound_columns_to_be_unique", key),
            ("expect_compound_columns_to_be_unique", "['trade_date', 'index_name', 'isin']"),
        }

    def test_isin_under_two_symbols_fails_critical(self, silver, lake_root):
        """Two symbols of one index sharing an ISIN fail the ISIN's uniqueness per index."""
        day = silver["index_constituents", DAY]
        listed = day.filter(pl.col("isin").is_not_null())
        twin = listed.head(1).with_columns(symbol=pl.lit("TWIN"))
        report = _validate(lake_root, silver, "index_constituents", pl.concat([day, twin]))
        assert _failed(report, checks.CRITICAL) == {
            ("expect_compound_columns_to_be_unique", "['trade_date', 'index_name', 'isin']")
        }

    def test_unknown_series_is_only_a_warning(self, silver, lake_root):
        """A series outside the known set is recorded; the snapshot still loads."""
        day = silver["index_constituents", DAY]
        row = day.with_row_index().filter(pl.col("series").is_not_null())["index"][0]
        report = _validate(
            lake_root, silver, "index_constituents", _set_row(day, "series", "XX", row)
        )
        assert report.passed
        assert _failed(report, checks.WARNING) == {(IN_SET, "series")}
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
            lake_root, silver, "holidays", _set_row(silver["holidays", DAY], column, value)
        )
        assert _failed(report, checks.CRITICAL) == {expected}

    def test_unknown_segment_is_only_a_warning(self, silver, lake_root):
        """A segment code NSE has not used before is recorded; the lists still load."""
        day = _set_row(silver["holidays", DAY], "segment", "NEWSEG")
        report = _validate(lake_root, silver, "holidays", day)
        assert report.passed
        assert _failed(report, checks.WARNING) == {(IN_SET, "segment")}


#: Real files of each dataset (category folder, glob); the two left out do not parse (a trimmed
#: chain without its timestamp, a trimmed index answer without constituents).
REAL = [
    ("bulk_deals", "bulk_block_deals", "*bulk*"),
    ("block_deals", "bulk_block_deals", "*block*"),
    ("index_constituents", "index_constituents", "[!T]*"),
    ("holidays", "holidays", "*.json"),
    ("option_chain", "option_chain", "[!T]*.json"),
]


@pytest.mark.parametrize(("name", "folder", "pattern"), REAL, ids=[r[0] for r in REAL])
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


# ---- option chain: a cycle's new rows, validated in the load step -------------------------------
@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> dict:
    """Two underlyings' v3 answers stored as silver parts, as a cycle's store step leaves them."""
    root = tmp_path_factory.mktemp("chain")
    lake = Lake(root / "lake")
    fetched_at = SNAPSHOT.astimezone(dt.UTC) + dt.timedelta(seconds=3)
    parts = []
    for underlying in ("NIFTY", "RELIANCE"):
        model = chain(underlying, SNAPSHOT)
        responses = []
        for expiry in model["expiries"]:
            path = root / f"{underlying}_{expiry}.json"
            path.write_text(json.dumps(v3_response(model, expiry)))
            responses.append({"path": str(path), "fetched_at": fetched_at.isoformat()})
        snapshot = {"underlying": underlying, "responses": responses}
        parts += option_chain.store_snapshot(lake, snapshot)["parts"]
    return {"lake": lake, "parts": parts}


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


class TestOptionChain:
    def test_clean_cycle_passes_and_keeps_its_result(self, stored):
        """A cycle's new rows pass every expectation; the result is kept under quality/."""
        reports = option_chain.validate_parts(stored["lake"], stored["parts"])
        assert [r.trade_date for r in reports] == [DAY]
        report = reports[0]
        assert report.failed == [], [o.describe() for o in report.failed]
        assert report.rows == pl.read_parquet(stored["parts"]).height
        assert len(report.outcomes) == len(quality.suite(sources.get("option_chain")))
        path = stored["lake"].root / "quality/option_chain/trade_date=2024-05-31/110005_000000.json"
        assert report.path == str(path)
        assert json.loads(path.read_text())["summary"]["critical_failed"] == 0

    def test_no_new_rows_no_validation(self, stored):
        """A cycle that stored nothing (all stale) validates nothing."""
        assert option_chain.validate_parts(stored["lake"], []) == []

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            (lambda f: _set_row(f, "strike_price", 0.0), (BETWEEN, "strike_price")),
            (lambda f: _set_row(f, "option_type", "CA"), (IN_SET, "option_type")),
            (lambda f: _set_row(f, "open_interest", -3.0), (BETWEEN, "open_interest")),
            (lambda f: _set_row(f, "volume", -1), (BETWEEN, "volume")),
            (lambda f: _set_row(f, "implied_volatility", -0.1), (BETWEEN, "implied_volatility")),
            (lambda f: _set_row(f, "last_price", -2.0), (BETWEEN, "last_price")),
            (
                lambda f: _set_row(f, "expiry_date", PREVIOUS),
                (PAIR, "expiry_date", "trade_date"),
            ),
        ],
        ids=["strike", "option_type", "oi", "volume", "iv", "price", "expired"],
    )
    def test_bad_value_fails_critical(self, change, expected, stored, tmp_path):
        """A zero strike, an unknown leg, negative OI, volume, IV or price, an expired
        contract: critical, whichever underlying it is in."""
        parts = _corrupted(tmp_path, stored["parts"], change)
        (report,) = option_chain.validate_parts(stored["lake"], parts)
        assert not report.passed
        assert _failed(report, checks.CRITICAL) == {expected}
        assert report.path in str(report.error())

    def test_crossed_quote_is_only_a_warning(self, stored, tmp_path):
        """A bid above the ask is recorded; the cycle still loads."""

        def crossed(frame: pl.DataFrame) -> pl.DataFrame:
            row = frame.with_row_index().filter(pl.col("ask_price").is_not_null())["index"][0]
            return _set_row(frame, "bid_price", frame["ask_price"][int(row)] + 5, int(row))

        (report,) = option_chain.validate_parts(
            stored["lake"], _corrupted(tmp_path, stored["parts"], crossed)
        )
        assert report.passed
        assert _failed(report, checks.WARNING) == {(PAIR, "ask_price", "bid_price")}


# ---- option chain DAG: a critical failure loads nothing -----------------------------------------
dag, dag_env = chain_dag.dag, chain_dag.dag_env


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    """The stand-in's chains of NIFTY and TCS, one NIFTY leg with a negative open interest."""
    from include.nse.sources.option_chain import nse_date_text
    from include.nse_standin.option_chain import write_option_chains
    from include.nse_standin.server import api_file

    root = tmp_path_factory.mktemp("nse")
    write_option_chains(root, ["NIFTY", "TCS"], chain_dag.SNAPSHOT)
    expiry = min(chain("NIFTY", chain_dag.SNAPSHOT)["expiries"])
    params = {"type": "Indices", "symbol": "NIFTY", "expiry": nse_date_text(expiry)}
    path = api_file(root, "option-chain-v3", params)
    answer = json.loads(path.read_text())
    answer["records"]["data"][0]["PE"]["openInterest"] = -5
    path.write_text(json.dumps(answer))
    return root


@pytest.mark.airflow
@pytest.mark.clickhouse
@pytest.mark.slow
def test_option_chain_dag_loads_nothing_on_a_critical_failure(dag, dag_env, ch_client):
    """The load task fails (and alerts) before loading anything; silver and the result stay, and
    the failure is recorded. The coverage check after it still runs, and fails the run."""
    from test_dag_cm_bhavcopy import _task_states

    conf = {"underlyings": ["NIFTY", "TCS"], "chart_underlyings": []}
    run = dag.test(logical_date=chain_dag.RUN_AT, run_conf=conf)
    assert str(getattr(run.state, "value", run.state)) == "failed"
    states = _task_states(dag.dag_id, run.run_id)
    assert states.pop("load") == "failed"
    assert states.pop("check_coverage") == "failed"
    assert set(states.values()) == {"success"}, states

    db, lake = dag_env["database"], dag_env["lake"]
    assert ch_client.execute(f"SELECT count() FROM {db}.option_chain") == [(0,)]
    assert ch_client.execute(f"SELECT count() FROM {db}.option_chain_analytics") == [(0,)]
    (row,) = ch_client.execute(
        f"SELECT dataset, trade_date, critical_failed, result_path, run_id "
        f"FROM {db}.quality_validations"
    )
    assert row[:3] == ("option_chain", chain_dag.RUN_AT.date(), 1) and row[4] == run.run_id
    assert json.loads(Path(row[3]).read_text())["summary"]["critical_failed"] == 1
    silver = lake / "silver/option_chain/trade_date=2024-07-05"
    assert sorted(p.parent.name for p in silver.glob("*/*.parquet")) == [
        "underlying=NIFTY",
        "underlying=TCS",
    ]
