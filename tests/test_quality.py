"""The quality gate: each dataset's expectations on generated silver partitions, good and broken."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from include.nse import quality, sources, warehouse
from include.nse.lake import Lake
from include.nse.sources import checks
from include.nse_standin.generate import generate

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
            path = next(root / p.lstrip("/") for p in dataset.remote_paths(day))
            frames[name, day] = dataset.parse(path.read_bytes(), path.name)
    return frames


def _lake(lake_root, silver, name: str, day_frame: pl.DataFrame | None = None) -> Lake:
    """A lake holding the previous day's partition and `day_frame` (default: the clean day)."""
    lake = Lake(lake_root)
    lake.write_silver(name, PREVIOUS, silver[name, PREVIOUS])
    lake.write_silver(name, DAY, silver[name, DAY] if day_frame is None else day_frame)
    return lake


def _failed(report: quality.Report, severity: str) -> set[tuple]:
    """(expectation, the columns it is about) of each failed expectation of a severity."""
    columns = ("column", "column_A", "column_B", "column_list")
    return {
        (o.expectation, *(str(o.kwargs[c]) for c in columns if c in o.kwargs))
        for o in report.failed
        if o.severity == severity
    }


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
        assert HIGH_BELOW_LOW in _failed(report, checks.CRITICAL)
        # The open or close of that row now lies outside the swapped range as well.
        assert all("high" in f or "low" in f for f in _failed(report, checks.CRITICAL))

    @pytest.mark.parametrize("name", DATASETS)
    def test_duplicated_key(self, name, silver, lake_root):
        """A key present twice fails only the critical key uniqueness."""
        clean = silver[name, DAY]
        day = pl.concat([clean, clean.tail(1)])
        report = quality.validate_partition(
            _lake(lake_root, silver, name, day), sources.get(name), DAY
        )
        key = str(list(sources.get(name).key))
        assert _failed(report, checks.CRITICAL) == {("expect_compound_columns_to_be_unique", key)}

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
        assert _failed(report, checks.CRITICAL) == {
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
        assert _failed(report, checks.CRITICAL) == {
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
        assert _failed(report, checks.CRITICAL) == row_count
        assert _failed(report, checks.WARNING) == row_count
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
        assert _failed(report, checks.WARNING) == {("expect_column_values_to_be_in_set", "series")}
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
            quality.record(ch_client, report, ch_database, run_id=run_id)
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
