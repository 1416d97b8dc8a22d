"""What every gold job shares: finding the lake's partitions, reading them, writing gold.

Paths go through Hadoop's FileSystem, so a lake root can be a local folder or `hdfs://...`.
A job lists partition folders (cheap: names, no data) to decide which dates to read, then
reads exactly those files; it never scans a dataset's whole history to filter it.

Gold is written with `partitionBy("trade_date")` and dynamic partition overwrite, set on the
writer so that the session's `spark.sql.sources.partitionOverwriteMode` cannot change it: the
folders of the dates a run produced are replaced whole, one Parquet file each, and every other
date's folder is left as it was. A date the run was
responsible for that produced no rows has its folder removed, so a rerun never leaves stale rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

PARTITION = "trade_date"
SILVER_FILE = "part-0.parquet"
EQUITY = "EQ"
FUTURES = ("FUTIDX", "FUTSTK")


def dataset_path(lake_root: str, layer: str, dataset: str) -> str:
    return f"{lake_root.rstrip('/')}/{layer}/{dataset}"


def partition_path(lake_root: str, layer: str, dataset: str, day: dt.date) -> str:
    return f"{dataset_path(lake_root, layer, dataset)}/{PARTITION}={day.isoformat()}"


def _filesystem(spark: SparkSession, path: str):
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(path)
    return jvm_path, jvm_path.getFileSystem(spark._jsc.hadoopConfiguration())


def partition_dates(spark: SparkSession, lake_root: str, layer: str, dataset: str) -> list[dt.date]:
    """Dates of a dataset's `trade_date=YYYY-MM-DD` folders, sorted; none when it has none."""
    path, fs = _filesystem(spark, dataset_path(lake_root, layer, dataset))
    if not fs.exists(path):
        return []
    dates = []
    for status in fs.listStatus(path):
        name = status.getPath().getName()
        if status.isDirectory() and name.startswith(f"{PARTITION}="):
            try:
                dates.append(dt.date.fromisoformat(name.split("=", 1)[1]))
            except ValueError:
                continue
    return sorted(dates)


def silver_dates(
    spark: SparkSession, lake_root: str, dataset: str, first: dt.date, last: dt.date
) -> list[dt.date]:
    """The dataset's silver dates from `first` to `last`, both included."""
    return [d for d in partition_dates(spark, lake_root, "silver", dataset) if first <= d <= last]


def read_silver(
    spark: SparkSession,
    lake_root: str,
    dataset: str,
    dates: Iterable[dt.date],
    columns: dict[str, str],
) -> DataFrame:
    """`columns` (name -> Spark SQL type) of the silver partitions of `dates`, cast to those
    types (silver's UInt64 reads as decimal(20,0)); an empty frame of that shape for no dates."""
    paths = [f"{partition_path(lake_root, 'silver', dataset, d)}/{SILVER_FILE}" for d in dates]
    schema = ", ".join(f"`{name}` {kind}" for name, kind in columns.items())
    if not paths:
        return spark.createDataFrame([], schema)
    frame = spark.read.parquet(*paths)
    return frame.select([F.col(name).cast(kind).alias(name) for name, kind in columns.items()])


def read_silver_between(
    spark: SparkSession,
    lake_root: str,
    dataset: str,
    first: dt.date,
    last: dt.date,
    columns: dict[str, str],
) -> DataFrame:
    """`read_silver` of the dataset's silver dates from `first` to `last`, both included."""
    dates = silver_dates(spark, lake_root, dataset, first, last)
    return read_silver(spark, lake_root, dataset, dates, columns)


def read_gold(
    spark: SparkSession, lake_root: str, dataset: str, dates: Iterable[dt.date]
) -> DataFrame | None:
    """The gold partitions of `dates` with their `trade_date`; None for no dates."""
    base = dataset_path(lake_root, "gold", dataset)
    paths = [partition_path(lake_root, "gold", dataset, d) for d in dates]
    if not paths:
        return None
    frame = spark.read.option("basePath", base).parquet(*paths)
    return frame.withColumn(PARTITION, F.col(PARTITION).cast("date"))


def write_gold(
    frame: DataFrame, lake_root: str, dataset: str, dates: Iterable[dt.date]
) -> dict[dt.date, int]:
    """Make `frame` the gold partitions of `dates` (one Parquet file per date); rows per date.

    `frame` must hold rows of `dates` only: a job writes nothing it was not asked for.
    """
    spark = frame.sparkSession
    dates = sorted(set(dates))
    frame = frame.persist()
    try:
        counts = {
            row[PARTITION]: row["count"] for row in frame.groupBy(PARTITION).count().collect()
        }
        outside = sorted(set(counts) - set(dates))
        if outside:
            raise RuntimeError(
                f"{dataset}: rows for {[d.isoformat() for d in outside[:5]]} outside the run's "
                "dates; nothing written"
            )
        if counts:
            (
                frame.repartition(PARTITION)
                .write.mode("overwrite")
                .option("partitionOverwriteMode", "dynamic")
                .option("compression", "zstd")
                .partitionBy(PARTITION)
                .parquet(dataset_path(lake_root, "gold", dataset))
            )
    finally:
        frame.unpersist()
    for day in dates:
        if day not in counts:
            path, fs = _filesystem(spark, partition_path(lake_root, "gold", dataset, day))
            if fs.exists(path):
                fs.delete(path, True)
    return {day: counts.get(day, 0) for day in dates}


def require_calendar(job: str, calendar: list[dt.date] | None) -> list[dt.date]:
    if not calendar:
        raise ValueError(f"{job} needs the trading calendar (--calendar FILE, one date a line)")
    return sorted(set(calendar))


def check_calendar(job: str, calendar: list[dt.date], days: Iterable[dt.date]) -> None:
    """Refuse silver dates the calendar does not list: the calendar would misplace them."""
    listed = set(calendar)
    unknown = sorted(d for d in days if d not in listed)
    if unknown:
        raise ValueError(
            f"{job}: silver has {[d.isoformat() for d in unknown[:5]]}, which the trading "
            "calendar does not list; write the calendar for the whole range"
        )
