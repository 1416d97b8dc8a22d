"""The quality gate: each dataset's expectations on generated silver partitions, good and broken;
the same verdicts as Great Expectations' own pandas engine on real days; the severities the
README documents."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from include.nse import quality, sources, warehouse
from include.nse.lake import Lake
from include.nse.sources import checks
from include.nse.sources.checks import FLOAT_MAX
from include.nse_standin.generate import generate
from tests.conftest import PROJECT_ROOT
from tests.helpers import failed, set_row, small_chain, two_day_lake

DATASETS = ("cm_bhavcopy", "cm_delivery", "fo_bhavcopy")
PREVIOUS, DAY = dt.date(2024, 7, 4), dt.date(2024, 7, 5)


@pytest.fixture(scope="module")
def silver(tmp_path_factory) -> dict[tuple[str, dt.date], pl.DataFrame]:
    """Generated NSE files for two trading days, parsed: (dataset, day) -> silver frame."""
    root = tmp_path_factory.mktemp("nse")
    generate(PREVIOUS, DAY, root, symbols=300, datasets=DATASETS)
    frames = {}
    for name in DATASETS:
        dataset = sources.get(name)
        for day in (PREVIOUS, DAY):
            path = next(root / p.lstrip("/") for p in dataset.publication.paths(day))
            frames[name, day] = dataset.parse(path.read_bytes(), path.name)
    return frames


def _lake(lake_root, silver, name: str, day_frame: pl.DataFrame | None = None) -> Lake:
    """A lake holding the previous day's partition and `day_frame` (default: the clean day)."""
    day = silver[name, DAY] if day_frame is None else day_frame
    return two_day_lake(lake_root, name, {PREVIOUS: silver[name, PREVIOUS], DAY: day})


HIGH_BELOW_LOW = ("expect_column_pair_values_a_to_be_greater_than_b", "high", "low")


class TestCleanDays:
    @pytest.mark.parametrize("name", DATASETS)
    def test_every_suite_passes(self, name, silver, lake_root):
        """A generated day passes every expectation, row counts compared with the day before."""
        report = quality.validate_partition(_lake(lake_root, silver, name), sources.get(name), DAY)
        assert report.failed == [], [o.describe() for o in report.failed]
        assert report.skipped == []
        assert report.previous_trade_date == PREVIOUS
        assert report.previous_rows == silver[name, PREVIOUS].height
        assert len(report.outcomes) == len(quality.suite(sources.get(name)))
        assert report.passed and report.pass_rate == 1.0

    def test_result_json_is_kept_in_the_lake(self, silver, lake_root):
        """The validation's JSON holds the summary and GX's own result, under quality/."""
        report = quality.validate_partition(
            _lake(lake_root, silver, "cm_bhavcopy"), sources.get("cm_bhavcopy"), DAY
        )
        path = lake_root / "quality/cm_bhavcopy/trade_date=2024-07-05/validation.json"
        assert report.path == str(path)
        document = json.loads(path.read_text())
        assert document["summary"]["rows"] == silver["cm_bhavcopy", DAY].height
        assert document["summary"]["critical_failed"] == 0
        gx_results = document["great_expectations"]["results"]
        assert len(gx_results) == len(report.outcomes)
        assert {r["expectation_config"]["severity"] for r in gx_results} == {"critical", "warning"}

    def test_first_partition_skips_row_count_checks(self, silver, lake_root):
        """With no earlier partition the row-count checks are skipped, and the report says so."""
        lake = Lake(lake_root)
        lake.write_silver("cm_delivery", DAY, silver["cm_delivery", DAY])
        report = quality.validate_partition(lake, sources.get("cm_delivery"), DAY)
        assert report.passed and report.previous_trade_date is None
        assert len(report.skipped) == len(checks.rows_like_previous_day())
        assert all("no earlier silver partition" in s for s in report.skipped)


def _high_below_low(df: pl.DataFrame) -> pl.DataFrame:
    """The first traded row's high and low swapped."""
    row = df.with_row_index().filter(pl.col("high") > pl.col("low"))["index"][0]
    swapped = pl.int_range(pl.len()) == row
    return df.with_columns(
        high=pl.when(swapped).then(pl.col("low")).otherwise(pl.col("high")),
        low=pl.when(swapped).then(pl.col("high")).otherwise(pl.col("low")),
    )


class TestCorruptedDays:
    @pytest.mark.parametrize("name", DATASETS)
    def test_high_below_low(self, name, silver, lake_root):
        """A row whose high is below its low fails the critical `low <= high`."""
        day = _high_below_low(silver[name, DAY])
        report = quality.validate_partition(
            _lake(lake_root, silver, name, day), sources.get(name), DAY
        )
        assert not report.passed
        assert HIGH_BELOW_LOW in failed(report, checks.CRITICAL)
        # The open or close of that row now lies outside the swapped range as well.
        assert all("high" in f or "low" in f for f in failed(report, checks.CRITICAL))

    @pytest.mark.parametrize("name", DATASETS)
    def test_duplicated_key(self, name, silver, lake_root):
        """A key present twice fails only the critical key uniqueness."""
        clean = silver[name, DAY]
        day = pl.concat([clean, clean.tail(1)])
        report = quality.validate_partition(
            _lake(lake_root, silver, name, day), sources.get(name), DAY
        )
        key = str(list(sources.get(name).key))
        assert failed(report, checks.CRITICAL) == {("expect_compound_columns_to_be_unique", key)}

    def test_duplicated_future_with_null_strike(self, silver, lake_root):
        """Two rows of the same future (strike and option type null) count as a duplicate."""
        clean = silver["fo_bhavcopy", DAY]
        future = clean.filter(pl.col("strike_price").is_null()).head(1)
        assert future.height == 1
        report = quality.validate_partition(
            _lake(lake_root, silver, "fo_bhavcopy", pl.concat([clean, future])),
            sources.get("fo_bhavcopy"),
            DAY,
        )
        assert [o.expectation for o in report.critical_failed] == [
            "expect_compound_columns_to_be_unique"
        ]

    @pytest.mark.parametrize(
        ("name", "column", "also"),
        [
            ("cm_bhavcopy", "volume", set()),
            # The delivered quantity now exceeds the volume too.
            (
                "cm_delivery",
                "volume",
                {("expect_column_pair_values_a_to_be_greater_than_b", "volume", "delivery_qty")},
            ),
            ("fo_bhavcopy", "contracts", set()),
        ],
    )
    def test_negative_volume(self, name, column, also, silver):
        """A negative volume fails the critical `volume >= 0` (silver's unsigned type refuses it
        at parse; the expectation guards frames that did not come through the parser)."""
        df = silver[name, DAY].with_columns(pl.col(column).cast(pl.Int64))
        df = df.with_columns(
            pl.when(pl.int_range(pl.len()) == 3).then(-100).otherwise(pl.col(column)).alias(column)
        )
        report, _ = quality.validate_frame(
            name, quality.suite(sources.get(name)), df, DAY, previous_rows=df.height
        )
        assert failed(report, checks.CRITICAL) == {
            ("expect_column_values_to_be_between", column),
            *also,
        }
        between = [o for o in report.critical_failed if o.kwargs.get("column") == column]
        assert between[0].unexpected_values == [-100]

    def test_negative_open_interest(self, silver, lake_root):
        """A negative open interest (a signed silver column) fails the critical `>= 0`."""
        day = silver["fo_bhavcopy", DAY].with_columns(
            open_interest=pl.when(pl.int_range(pl.len()) == 0)
            .then(-1)
            .otherwise(pl.col("open_interest"))
        )
        report = quality.validate_partition(
            _lake(lake_root, silver, "fo_bhavcopy", day), sources.get("fo_bhavcopy"), DAY
        )
        assert failed(report, checks.CRITICAL) == {
            ("expect_column_values_to_be_between", "open_interest")
        }

    @pytest.mark.parametrize("name", DATASETS)
    def test_half_the_rows_missing(self, name, silver, lake_root):
        """Half of the previous day's row count fails the critical row-count band (and the
        warning one), nothing else."""
        clean = silver[name, DAY]
        day = clean.head(clean.height // 2)
        report = quality.validate_partition(
            _lake(lake_root, silver, name, day), sources.get(name), DAY
        )
        row_count = {("expect_table_row_count_to_be_between",)}
        assert failed(report, checks.CRITICAL) == row_count
        assert failed(report, checks.WARNING) == row_count
        assert report.critical_failed[0].observed_value == day.height

    def test_error_names_dataset_date_and_expectation(self, silver, lake_root):
        """The error raised for a failed partition says which, when, what failed and where."""
        day = _high_below_low(silver["cm_bhavcopy", DAY])
        report = quality.validate_partition(
            _lake(lake_root, silver, "cm_bhavcopy", day), sources.get("cm_bhavcopy"), DAY
        )
        message = str(report.error())
        assert message.startswith("cm_bhavcopy 2024-07-05: ")
        assert "column_A=high, column_B=low" in message
        assert report.path in message


class TestWarnings:
    def test_unknown_series_is_only_a_warning(self, silver, lake_root):
        """A series outside the known set is a warning: the partition still passes."""
        day = silver["cm_bhavcopy", DAY].with_columns(
            series=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("ZZZ")).otherwise("series")
        )
        report = quality.validate_partition(
            _lake(lake_root, silver, "cm_bhavcopy", day), sources.get("cm_bhavcopy"), DAY
        )
        assert report.passed
        assert failed(report, checks.WARNING) == {("expect_column_values_to_be_in_set", "series")}
        assert report.warnings[0].unexpected_values == ["ZZZ"]
        assert 0 < report.pass_rate < 1

    def test_known_series_of_real_files(self):
        """Series seen in real bhavcopies are known; made-up ones are not."""
        assert {
            "EQ",
            "BE",
            "SM",
            "GB",
            "N1",
            "NA",
            "Y4",
            "AP",
            "Q1",
            "IV",
            "RR",
        } <= checks.CM_SERIES
        assert not {"ZZZ", "eq", "", "E"} & checks.CM_SERIES


@pytest.mark.clickhouse
class TestRecord:
    def test_summary_row_per_validation(self, silver, lake_root, ch_client, ch_database):
        """Each validation adds one summary row: dataset, date, run, failed, critical failed."""
        warehouse.migrate(ch_client, ch_database)
        lake = _lake(lake_root, silver, "cm_bhavcopy", _high_below_low(silver["cm_bhavcopy", DAY]))
        report = quality.validate_partition(lake, sources.get("cm_bhavcopy"), DAY)
        for run_id in ("first", "second"):
            quality.record(ch_client, [report], ch_database, run_id=run_id)
        rows = ch_client.execute(
            f"SELECT dataset, trade_date, run_id, rows, expectations, failed, critical_failed, "
            f"skipped, result_path FROM {ch_database}.quality_validations ORDER BY run_id"
        )
        expected = (
            "cm_bhavcopy",
            DAY,
            len(report.outcomes),
            len(report.failed),
            len(report.critical_failed),
            0,
            report.path,
        )
        assert [(r[0], r[1], *r[4:]) for r in rows] == [expected, expected]
        assert [r[2] for r in rows] == ["first", "second"]
        assert rows[0][3] == silver["cm_bhavcopy", DAY].height
        assert len(report.critical_failed) >= 1

    def test_reports_of_one_run_in_one_insert(self, silver, ch_client, ch_database):
        """Several reports (a cycle's dates, a run's datasets) add one row each."""
        warehouse.migrate(ch_client, ch_database)
        reports = [
            quality.validate_frame(name, quality.suite(sources.get(name)), silver[name, DAY], DAY)[
                0
            ]
            for name in ("cm_bhavcopy", "fo_bhavcopy")
        ]
        assert quality.record(ch_client, reports, ch_database, run_id="run") == 2
        assert quality.record(ch_client, [], ch_database, run_id="none") == 0
        rows = ch_client.execute(
            f"SELECT dataset, rows, skipped, run_id FROM {ch_database}.quality_validations "
            "ORDER BY dataset"
        )
        assert rows == [
            ("cm_bhavcopy", silver["cm_bhavcopy", DAY].height, 2, "run"),
            ("fo_bhavcopy", silver["fo_bhavcopy", DAY].height, 2, "run"),
        ]

    def test_the_record_is_great_expectations_own(self, silver, lake_root):
        """The validation JSON in the lake is what GX's own suite result writes for the same
        expectation results, failures and their unexpected values included."""
        from great_expectations.core.expectation_validation_result import (
            ExpectationSuiteValidationResult,
            ExpectationValidationResultSchema,
        )

        lake = _lake(lake_root, silver, "cm_bhavcopy", _high_below_low(silver["cm_bhavcopy", DAY]))
        report = quality.validate_partition(lake, sources.get("cm_bhavcopy"), DAY)
        document = json.loads(Path(report.path).read_text())["great_expectations"]
        results = [ExpectationValidationResultSchema().load(r) for r in document["results"]]
        by_gx = ExpectationSuiteValidationResult(
            success=all(r.success for r in results),
            results=results,
            suite_name="cm_bhavcopy",
            statistics=document["statistics"],
            meta={"trade_date": DAY.isoformat(), "engine": "polars metrics"},
        ).to_json_dict()
        assert json.loads(json.dumps(by_gx, default=str)) == document
        failed = [r for r in document["results"] if not r["success"]]
        assert len(failed) == len(report.failed) >= 1
        assert failed[0]["result"]["unexpected_count"] >= 1


# ---- the gate against Great Expectations' own pandas engine ------------------------------------
BETWEEN = "expect_column_values_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
IN_SET = "expect_column_values_to_be_in_set"
REGEX = "expect_column_values_to_match_regex"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
UNIQUE = "expect_compound_columns_to_be_unique"


def _edit(column: str, value):
    """A corruption setting `column` of the given row to `value`."""
    return lambda df, row: set_row(df, column, value, row)


def _swap_high_low(df: pl.DataFrame, row: int) -> pl.DataFrame:
    """High and low swapped on the first row from `row` on whose high is above its low."""
    row = df.with_row_index().filter(pl.col("index") >= row, pl.col("high") > pl.col("low"))
    swapped = pl.int_range(pl.len()) == row["index"][0]
    return df.with_columns(
        high=pl.when(swapped).then(pl.col("low")).otherwise(pl.col("high")),
        low=pl.when(swapped).then(pl.col("high")).otherwise(pl.col("low")),
    )


def _repeat_row(df: pl.DataFrame, row: int) -> pl.DataFrame:
    """The given row once more at the end: a key twice."""
    return pl.concat([df, df.slice(row, 1)])


def _bid_above_ask(df: pl.DataFrame, row: int) -> pl.DataFrame:
    row = df.with_row_index().filter(pl.col("index") >= row, pl.col("ask_price").is_not_null())
    at = int(row["index"][0])
    return set_row(df, "bid_price", df["ask_price"][at] + 5, at)


def _unique_key(dataset) -> tuple:
    return (UNIQUE, str(list(dataset.key)))


#: Per dataset: a real sample (folder, file) and its corruptions, each with the expectations
#: (as `failed` names them) it must make fail. Each corruption hits a row of its own.
DIFFERENTIAL = {
    "cm_bhavcopy": (
        ("cm_bhavcopy_legacy", "cm24MAY2022bhav.csv.zip"),
        [
            (_swap_high_low, {(PAIR, "high", "low")}),
            (_repeat_row, {"key"}),
            (_edit("volume", -5), {(BETWEEN, "volume")}),
            (_edit("close", None), {(NOT_NULL, "close")}),
            (_edit("open", float("nan")), {(NOT_NULL, "open")}),
            (_edit("series", "ZZZ"), {(IN_SET, "series")}),
            (_edit("isin", "US0378331005"), {(REGEX, "isin")}),
            (_edit("isin", "INE00XYZ"), {(REGEX, "isin")}),
            (_edit("open", 0.0), {(BETWEEN, "open")}),
            (_edit("last_price", 0.0), set()),  # on the bound of `>= 0`
            (_edit("symbol", None), {(NOT_NULL, "symbol")}),
        ],
    ),
    "cm_delivery": (
        ("cm_bhavcopy_legacy", "sec_bhavdata_full_01012018.csv"),
        [
            (_swap_high_low, {(PAIR, "high", "low")}),
            (_repeat_row, {"key"}),
            (_edit("volume", -5), {(BETWEEN, "volume")}),
            (_edit("close", None), {(NOT_NULL, "close")}),
            (_edit("delivery_pct", 100.5), {(BETWEEN, "delivery_pct")}),
            (_edit("delivery_pct", 100.0), set()),  # on the bound of 0..100
            (_edit("delivery_qty", 10**12), {(PAIR, "volume", "delivery_qty")}),
            (_edit("avg_price", float("nan")), {(NOT_NULL, "avg_price")}),
            (_edit("series", "eq"), {(IN_SET, "series")}),
        ],
    ),
    "fo_bhavcopy": (
        ("fo_bhavcopy", "BhavCopy_NSE_FO_0_0_0_20250203_F_0000.csv.zip"),
        [
            (_swap_high_low, {(PAIR, "high", "low")}),
            (_repeat_row, {"key"}),
            (_edit("contracts", -1), {(BETWEEN, "contracts")}),
            (_edit("close", None), {(NOT_NULL, "close")}),
            (_edit("open_interest", None), {(NOT_NULL, "open_interest")}),
            (_edit("instrument", "FUTIVX"), {(IN_SET, "instrument")}),
            (_edit("option_type", "XX"), {(IN_SET, "option_type")}),
            (_edit("strike_price", 0.0), {(BETWEEN, "strike_price")}),
            (_edit("expiry_date", dt.date(2025, 1, 30)), {(PAIR, "expiry_date", "trade_date")}),
        ],
    ),
    "bulk_deals": (
        ("bulk_block_deals", "bulk_2024-12-03_tsrajpurohit.csv"),
        [
            (_repeat_row, {"key"}),
            (_edit("quantity", 0), {(BETWEEN, "quantity")}),
            (_edit("price", -1.5), {(BETWEEN, "price")}),
            (_edit("side", "HOLD"), {(IN_SET, "side")}),
            (_edit("trade_date", dt.date(2024, 12, 2)), {(IN_SET, "trade_date")}),
            (_edit("security_name", None), {(NOT_NULL, "security_name")}),
            (_edit("client_name", None), {(NOT_NULL, "client_name")}),
        ],
    ),
    "block_deals": (
        ("bulk_block_deals", "block_2026-08-20_tsrajpurohit.csv"),
        [
            (_repeat_row, {"key"}),
            (_edit("price", 0.0), {(BETWEEN, "price")}),
            (_edit("side", None), {(NOT_NULL, "side")}),
        ],
    ),
    "index_constituents": (
        # The list (ISINs, series) and the monthly archive (weights, no ISINs), as one day.
        ("index_constituents", "ind_nifty500list_2026-02_rehmahahmed.csv", "mcwb_may22.zip"),
        [
            (_repeat_row, {"key", (UNIQUE, "['trade_date', 'index_name', 'isin']")}),
            # An archive row: no ISIN, so only the key repeats.
            (lambda df, _: _repeat_row(df, df.height - 1), {"key"}),
            (_edit("weight", 101.0), {(BETWEEN, "weight")}),
            (_edit("weight", -0.5), {(BETWEEN, "weight")}),
            (_edit("company_name", None), {(NOT_NULL, "company_name")}),
            (_edit("series", "XX"), {(IN_SET, "series")}),
            (_edit("trade_date", dt.date(2022, 5, 30)), {(IN_SET, "trade_date")}),
            (_edit("isin", "INE0NHL2301"), {(REGEX, "isin")}),
        ],
    ),
    "holidays": (
        ("holidays", "holiday-master_trading_2025_misterdas.json"),
        [
            (_repeat_row, {"key"}),
            (_edit("description", None), {(NOT_NULL, "description")}),
            (_edit("weekday", "Funday"), {(IN_SET, "weekday")}),
            (_edit("morning_session", "Half"), {(IN_SET, "morning_session")}),
            (_edit("segment", "NEWSEG"), {(IN_SET, "segment")}),
        ],
    ),
    "option_chain": (
        ("option_chain", "NIFTY_optionchain_indices_2019-08-23_aadityatamrakar.json"),
        [
            (_repeat_row, {"key"}),
            (_edit("strike_price", 0.0), {(BETWEEN, "strike_price")}),
            (_edit("option_type", "CA"), {(IN_SET, "option_type")}),
            (_edit("open_interest", None), {(NOT_NULL, "open_interest")}),
            (_edit("volume", -1), {(BETWEEN, "volume")}),
            (_edit("implied_volatility", -0.1), {(BETWEEN, "implied_volatility")}),
            # NaN is not a number: the finite check stops it (GX's pandas engine takes it for
            # a null, see `_nan_seen`).
            (_edit("implied_volatility", float("nan")), {(BETWEEN, "implied_volatility")}),
            (_edit("change", float("inf")), {(BETWEEN, "change")}),
            (_bid_above_ask, {(PAIR, "ask_price", "bid_price")}),
            (_edit("expiry_date", dt.date(2019, 8, 22)), {(PAIR, "expiry_date", "trade_date")}),
        ],
    ),
}


def _real_frame(samples_dir, dataset, folder: str, *names: str) -> pl.DataFrame:
    """The samples parsed, all filed under the date one of them names, as a day's partition."""
    frame = pl.concat([dataset.parse((samples_dir / folder / n).read_bytes(), n) for n in names])
    if "trade_date" in frame.columns:
        frame = frame.with_columns(trade_date=pl.lit(frame["trade_date"].drop_nulls()[0]))
    return frame


def _corrupted(frame: pl.DataFrame, corruptions) -> pl.DataFrame:
    for n, (corrupt, _) in enumerate(corruptions):
        frame = corrupt(frame, 2 * n + 1)
    return frame


def _comparable(value):
    """A configuration value as both engines hold it: pandas takes dates as datetimes, and GX
    records a datetime in its configuration as ISO text."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k != "batch_id"}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, str) and value.endswith("T00:00:00"):
        return dt.date.fromisoformat(value.removesuffix("T00:00:00"))
    return value.date() if isinstance(value, dt.datetime) else value


def _nan_seen(reference: dict, suite: list, frame: pl.DataFrame) -> dict:
    """GX's verdicts as the gate must give them: pandas holds a null float as NaN, so GX's
    engine cannot see a NaN, and only the gate's finite checks differ: failed, by the NaN rows."""
    seen = dict(reference)
    for check in suite:
        nans = frame[check.kwargs["column"]].is_nan().sum() if checks.is_finite(check) else 0
        if nans:
            key = (BETWEEN, check.severity, repr(sorted(_comparable(dict(check.kwargs)).items())))
            _, count, observed = seen[key]
            seen[key] = (False, count + nans, observed)
    return seen


def _verdicts(results) -> dict[tuple, tuple]:
    """(expectation, severity, kwargs) -> (success, unexpected count, observed value)."""
    found = {}
    for result in results:
        config = result.expectation_config
        kwargs = _comparable(dict(config.kwargs))
        severity = str(getattr(config.severity, "value", config.severity))
        details = result.result or {}
        found[config.type, severity, repr(sorted(kwargs.items()))] = (
            bool(result.success),
            details.get("unexpected_count"),
            details.get("observed_value"),
        )
    return found


@pytest.fixture(scope="module")
def gx_pandas():
    """Great Expectations' own pandas engine: `run(name, checks, frame, day, previous_rows)`
    validates the frame the way GX's validator does, every metric computed by pandas."""
    import great_expectations as gx

    from include.nse.sources.checks import PREVIOUS_ROWS, TRADE_DATE

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("reference")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    runs = []

    def resolved(value, day: dt.date, previous_rows: int):
        if not (isinstance(value, dict) and "$PARAMETER" in value):
            return value
        name, _, factor = value["$PARAMETER"].partition("*")
        if name.strip() == TRADE_DATE:
            return [dt.datetime.combine(day, dt.time())]
        assert name.strip() == PREVIOUS_ROWS
        return previous_rows * float(factor)

    def run(name: str, checks, frame: pl.DataFrame, day: dt.date, previous_rows: int):
        runs.append(name)
        expectations = [
            getattr(gx.expectations, check.expectation)(
                **{k: resolved(v, day, previous_rows) for k, v in check.kwargs.items()},
                severity=check.severity,
            )
            for check in checks
        ]
        suite = context.suites.add(
            gx.ExpectationSuite(name=f"{name}-{len(runs)}", expectations=expectations)
        )
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}-{len(runs)}", data=batch, suite=suite)
        )
        result = definition.run(
            batch_parameters={"dataframe": frame.to_pandas()}, result_format="SUMMARY"
        )
        return result.results

    return run


@pytest.mark.parametrize("name", list(DIFFERENTIAL))
# GX's pandas engine compares a date column with the ISO text its configuration keeps.
@pytest.mark.filterwarnings("ignore:The behavior of 'isin':FutureWarning")
def test_polars_metrics_agree_with_gx_pandas(name, samples_dir, gx_pandas):
    """On a real day and on a copy corrupted every way the suite guards against, the gate
    (metrics in polars) and GX's pandas engine agree on every expectation's verdict, unexpected
    count and observed value; the row-count bands are crossed through the previous day's count."""
    dataset = sources.get(name)
    (folder, *files), corruptions = DIFFERENTIAL[name]
    clean = _real_frame(samples_dir, dataset, folder, *files)
    # A holiday list is filed under the day it was fetched on.
    day = clean[dataset.date_column][0] if dataset.date_column else DAY
    corrupted = _corrupted(clean, corruptions)
    checks = quality.suite(dataset)
    # The clean day 1.4 times the previous one (a warning), the corrupted one half (critical).
    for frame, previous_rows in ((clean, round(clean.height / 1.4)), (corrupted, 2 * clean.height)):
        ours, _ = quality.validate_frame(name, checks, frame, day, previous_rows=previous_rows)
        reference = _nan_seen(
            _verdicts(gx_pandas(name, checks, frame, day, previous_rows)), checks, frame
        )
        mine = {
            (o.expectation, o.severity, repr(sorted(_comparable(o.kwargs).items()))): (
                o.success,
                o.unexpected_count,
                o.observed_value,
            )
            for o in ours.outcomes
        }
        assert len(mine) == len(ours.outcomes) == len(checks)
        assert mine == reference
    hit = failed(ours, "critical") | failed(ours, "warning")
    targets = {t for _, expected in corruptions for t in expected}
    assert {_unique_key(dataset) if t == "key" else t for t in targets} <= hit


@pytest.mark.parametrize(
    ("column", "value", "rows"),
    [
        ("last_price", float("inf"), [3]),
        ("change", float("-inf"), [0, 5]),
        ("implied_volatility", float("nan"), [4]),
        ("ask_price", float("nan"), "all"),
    ],
)
def test_finite_checks_stop_nan_and_infinity(column, value, rows):
    """A NaN or an infinity in any float column fails that column's critical finite check,
    with the count of such rows; a column of nothing but NaN too (no vacuous truth)."""
    chain = small_chain()
    rows = range(chain.height) if rows == "all" else rows
    for row in rows:
        chain = set_row(chain, column, value, row)
    dataset = sources.get("option_chain")
    report, _ = quality.validate_frame(
        dataset.name, quality.suite(dataset), chain, chain["trade_date"][0]
    )
    (outcome,) = [o for o in report.critical_failed if o.kwargs.get("min_value") == -FLOAT_MAX]
    assert outcome.kwargs["column"] == column and outcome.unexpected_count == len(rows)
    assert not report.passed


# ---- every severity the README's table states is the suite's ------------------------------------
README = PROJECT_ROOT / "README.md"
PRICES = ("open", "high", "low", "close", "last_price", "avg_price", "prev_close")
#: The README's words for columns whose name it does not spell out.
WORDS = {
    "prev close": ["prev_close"],
    "iv": ["implied_volatility"],
    "delivery %": ["delivery_pct"],
    "settle": ["settle_price"],
    "strike": ["strike_price"],
    "snapshot date": ["trade_date"],
    "com sessions": ["morning_session", "evening_session"],
    "bid quantities": ["bid_qty"],
    "ask quantities": ["ask_qty"],
    "oi": ["open_interest"],
    "change in oi": ["change_in_oi"],
    "oi change": ["change_in_oi"],
}
ROW_COUNT = "ExpectTableRowCountToBeBetween"


def readme_table() -> dict[str, dict[str, list[str]]]:
    """dataset -> {"critical": [phrase, ...], "warning": [...]} from the README's table under
    "Quality gates and alerts" (a row may name several datasets)."""
    section = README.read_text().split("## Quality gates and alerts", 1)[1].split("\n## ", 1)[0]
    lines = iter(section.splitlines())
    assert any(line.replace(" ", "") == "|dataset|critical|warning|" for line in lines)
    next(lines)  # the |---| line
    table = {}
    for line in lines:
        if not line.startswith("|"):
            break
        names, critical, warning = (cell.strip() for cell in line.strip("|").split("|"))
        for name in re.findall(r"`(\w+)`", names):
            table[name] = {"critical": _phrases(critical), "warning": _phrases(warning)}
    return table


def _columns(text: str, dataset) -> list[str]:
    """The columns a list of the README's words names ("open, high, low, close"; "last, bid and
    ask price"; "other prices")."""
    names = set(dataset.column_names)
    prices = [c for c in PRICES if c in names]
    items = [w.strip() for w in re.split(r",|\band\b", text.lower()) if w.strip()]
    noun = items[-1].split(" ", 1)[1] if " " in items[-1] else None
    found = []
    for item in items:
        for word in (item, f"{item} {noun}" if noun else None):
            if word == "prices":
                found += prices
            elif word == "other prices":
                found += [c for c in prices if c != "close"]
            elif word in WORDS:
                found += WORDS[word]
            elif word and word.replace(" ", "_") in names:
                found.append(word.replace(" ", "_"))
            elif word == "underlying" and "underlying_price" in names:
                found.append("underlying_price")
            else:
                continue
            break
        else:
            raise AssertionError(f"{dataset.name}: no column for {item!r} in {text!r}")
    return found


def _is(expectation: str, **kwargs):
    return lambda check: (
        check.expectation == expectation
        and all(check.kwargs.get(k) == v for k, v in kwargs.items())
    )


def _at_most(lower: str, upper: str):
    return _is("ExpectColumnPairValuesAToBeGreaterThanB", column_A=upper, column_B=lower)


def _band(low: str, high: str):
    def matches(check) -> bool:
        factors = [
            float(check.kwargs[k]["$PARAMETER"].split("*")[1]) for k in ("min_value", "max_value")
        ]
        return factors == [float(low), float(high)]

    return lambda check: check.expectation == ROW_COUNT and matches(check)


def _chain(text: str, dataset) -> list:
    """`a ≤ b, c ≤ d` (or with ≥): every column of a group at most every one of a later group."""
    groups = [_columns(g, dataset) for g in re.split("≤|≥", text)]
    if "≥" in text:
        groups.reverse()
    return [
        _at_most(a, b)
        for i, lower in enumerate(groups)
        for upper in groups[i + 1 :]
        for a in lower
        for b in upper
    ]


def _in_set(columns: list[str], listed: str | None = None):
    values = None
    if listed == "Monday-Sunday":
        values = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}
    elif listed:
        values = set(listed.split("/"))
    return [
        lambda check, c=c: (
            _is("ExpectColumnValuesToBeInSet", column=c)(check)
            and (values is None or values <= set(check.kwargs["value_set"]))
        )
        for c in columns
    ]


def _not_null(columns: list[str]) -> list:
    return [_is("ExpectColumnValuesToNotBeNull", column=c) for c in columns]


def _positive(columns: list[str]) -> list:
    return [
        _is("ExpectColumnValuesToBeBetween", column=c, min_value=0, strict_min=True)
        for c in columns
    ]


def _non_negative(columns: list[str]) -> list:
    return [
        lambda check, c=c: (
            _is("ExpectColumnValuesToBeBetween", column=c, min_value=0)(check)
            and not check.kwargs.get("strict_min")
        )
        for c in columns
    ]


def _key_checks(dataset) -> list:
    """The key's checks: its columns that hold no nulls not null, and unique together."""
    nullable = {c.name for c in dataset.columns if c.nullable}
    columns = [c for c in dataset.key if c not in nullable]
    return [
        *_not_null(columns),
        _is("ExpectCompoundColumnsToBeUnique", column_list=list(dataset.key)),
    ]


def matchers(phrase: str, dataset) -> list:
    """What a phrase of the README's table says is checked, as predicates on checks."""
    # The README's ranges and factors are typeset: "0.6\u20131.7\u00d7" is "0.6-1.7x" here.
    text = phrase.replace("`", "").replace("\u2013", "-").replace("\u00d7", "x").strip()
    lower = text.lower()
    listed = re.fullmatch(r"(.+?) (?:in )?([A-Za-z]+(?:/[A-Za-z]+)+|Monday-Sunday)", text)
    if listed:  # "side BUY/SELL", "weekday Monday-Sunday"
        return _in_set(_columns(listed[1], dataset), listed[2])
    regex = re.search(r"`(\^.+\$)`", phrase)
    rules = {
        r"key\b.*": lambda m: _key_checks(dataset),
        r"isin .+": lambda m: [
            _is(
                "ExpectColumnValuesToMatchRegex",
                column="isin",
                **({"regex": regex[1]} if regex else {}),
            )
        ],
        r"one row per isin per index": lambda m: [
            _is("ExpectCompoundColumnsToBeUnique", column_list=["trade_date", "index_name", "isin"])
        ],
        r"every row of the partition's trade date": lambda m: [
            _is(
                "ExpectColumnValuesToBeInSet",
                column="trade_date",
                value_set={"$PARAMETER": "trade_date"},
            )
        ],
        r"rows(?: within| outside)? ([\d.]+)-([\d.]+)x.*": lambda m: [_band(m[1], m[2])],
        r"close outside the day's range.*": lambda m: [
            _at_most("low", "close"),
            _at_most("close", "high"),
        ],
        r"bid above ask": lambda m: [_at_most("bid_price", "ask_price")],
        r"(.+) in ([\d.]+)-([\d.]+)": lambda m: [
            _is(
                "ExpectColumnValuesToBeBetween",
                column=c,
                min_value=float(m[2]),
                max_value=float(m[3]),
            )
            for c in _columns(m[1], dataset)
        ],
        r"(.+) > 0(?: where present.*)?": lambda m: _positive(_columns(m[1], dataset)),
        r"(.+) ≥ 0": lambda m: _non_negative(_columns(m[1], dataset)),
        r".*[≤≥].*": lambda m: _chain(lower, dataset),
        # "close not null" as a rule; "volume, turnover null (blank in the file)" as a finding.
        r"(.+?) (?:not )?null(?: \(.+\))?": lambda m: _not_null(_columns(m[1], dataset)),
        r"(\w+)(?: outside (?:the known set|nse's codes.*))?": lambda m: _in_set(
            _columns(m[1], dataset)
        ),
    }
    for pattern, build in rules.items():
        if match := re.fullmatch(pattern, lower):
            return build(match)
    raise AssertionError(f"{dataset.name}: the README's {phrase!r} names no check this test knows")


def _phrases(cell: str) -> list[str]:
    """A cell's phrases: split at semicolons outside parentheses."""
    phrases, depth, current = [], 0, ""
    for char in cell:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            phrases.append(current.strip())
            current = ""
        else:
            current += char
    return [p for p in [*phrases, current.strip()] if p]


@pytest.mark.parametrize("name", sources.names())
def test_readme_severities_are_the_suites(name):
    """Each check the README's table names as critical is critical in the dataset's suite, and
    each it names as a warning is a warning: the documented behaviour is the code's."""
    table = readme_table()
    assert name in table, f"the README's quality table has no row for {name}"
    dataset = sources.get(name)
    suite = quality.suite(dataset)
    for severity, phrases in table[name].items():
        assert phrases or severity == "warning"
        for phrase in phrases:
            for match in matchers(phrase, dataset):
                found = [check for check in suite if match(check)]
                assert len(found) == 1, f"{name}: {phrase!r} matches {found}"
                assert found[0].severity == severity, (
                    f"{name}: the README says {phrase!r} is {severity}; the suite has "
                    f"{found[0].expectation}({dict(found[0].kwargs)}) as {found[0].severity}"
                )


@pytest.mark.parametrize("repeated", [False, True])
def test_a_one_column_key_is_checked_as_gx_checks_it(repeated, gx_pandas):
    """A key of one column (a daily summary's `trade_date`) is checked unique with GX's
    single-column expectation (its compound one refuses a single column), and the gate's polars
    metric agrees with GX's pandas engine on it."""
    frame = pl.DataFrame(
        {"trade_date": [DAY - dt.timedelta(days=n) for n in (3, 2, 1, 0)], "n": [1, 2, 3, 4]}
    )
    if repeated:
        frame = pl.concat([frame, frame.slice(1, 1)])
    suite = [checks.unique(["trade_date"])]
    assert suite[0].expectation == "ExpectColumnValuesToBeUnique"
    ours, _ = quality.validate_frame("summary", suite, frame, DAY, previous_rows=4)
    (outcome,) = ours.outcomes
    reference = _verdicts(gx_pandas("summary", suite, frame, DAY, 4))
    assert {
        (
            outcome.expectation,
            outcome.severity,
            repr(sorted(_comparable(outcome.kwargs).items())),
        ): (
            outcome.success,
            outcome.unexpected_count,
            outcome.observed_value,
        )
    } == reference
    assert outcome.success is not repeated
    assert outcome.unexpected_count == (2 if repeated else 0)
