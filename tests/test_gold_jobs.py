"""The gold jobs, each through a real `spark-submit --master local[2]` with only the job zip on
its path, on ~300 trading days of generated history, against the polars reference.

The history: the stand-in's NSE files for 60 listed securities from 2023-06-01 to 2024-08-09
(NSE's holidays, so some weeks are short), parsed into silver by the library; F&O files over the
last seven weeks (across NSE's switch from legacy to UDiFF files), deals over the last three
months. Three symbols are added by hand to the CM bhavcopy: HAND, a 30-day series whose
indicators are worked out below; SPARSE, trading every third day (its last 199 rows reach beyond
a year, so an incremental run must read further back, and it never has 200 rows); GAPPY, away
for over a year (its series starts again). Some of their numbers are blank, as NSE leaves them.

The submissions start together when the first test needs them and run two at a time, while the
reference is computed; each test waits for the one it checks.
"""

from __future__ import annotations

import ast
import datetime as dt
import sys
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from include.nse.calendar import load_calendar
from include.nse.lake import Lake
from include.nse.quality import suite, validate_frame
from include.nse.warehouse import load, migrate, query_polars, table_columns
from include.nse_gold import local
from include.nse_gold.datasets import DATASETS, gold_dates, partition_dir, read_gold, read_partition
from tests import gold_reference as reference
from tests.helpers import ChdbClient

pytestmark = pytest.mark.slow

FIRST, LAST = dt.date(2023, 6, 1), dt.date(2024, 8, 9)
#: The runs of the jobs without look-back (a day is no other day's business): the last four
#: months; deals from a fortnight in (the dates before have no deals partition).
DAILY = (dt.date(2024, 4, 15), LAST)
FO = (dt.date(2024, 6, 24), LAST)
DEALS = (dt.date(2024, 5, 2), LAST)
#: The calendar goes on past the history: the August bar ends on its last trading day, and the
#: roll-over counts trading days to the August expiry.
CALENDAR_END = dt.date(2024, 9, 30)
SYMBOLS = 60
RANGES = {
    "equity_eod": DAILY,
    "equity_indicators": (FIRST, LAST),
    "equity_bars_weekly": (FIRST, LAST),
    "equity_bars_monthly": (FIRST, LAST),
    "fo_daily": FO,
    "market_daily_summary": DAILY,
}
#: The incremental run starts here: the first run's last day, computed again.
SPLIT = dt.date(2024, 6, 14)
#: A day whose monthly bar is computed alone.
MID_JULY = dt.date(2024, 7, 18)
#: Relative tolerance against the reference. macd, its signal and histogram are differences of
#: EMAs of the close, so theirs is relative to the close.
TOLERANCE = 1e-9
OF_CLOSE = ("macd", "macd_signal", "macd_hist")


# ---- the history ------------------------------------------------------------------------------
def synthetic_rows(days: list[dt.date]) -> list[dict]:
    """HAND, SPARSE and GAPPY as CM bhavcopy rows."""
    rows = []

    def add(symbol, day, close, prev, **fields):
        rows.append(
            {
                "trade_date": day,
                "symbol": symbol,
                "series": "EQ",
                "isin": None,
                "open": close - 0.5,
                "high": close + 1,
                "low": close - 1,
                "close": close,
                "last_price": close,
                "prev_close": prev,
                "volume": 1000,
                "turnover": 1000 * close,
                "trades": 10,
            }
            | fields
        )

    # HAND: rows 1..30 are 2024-02-22 .. 2024-04-08; close c(k) = 100 + k // 2 + (k even), i.e.
    # 100, 102, 101, 103, 102, 104, ...; open = close - 0.5, high = close + 1, low = close - 1,
    # volume = 1000 * k, turnover = volume * close.
    hand = [d for d in days if dt.date(2024, 2, 22) <= d][:30]
    for k, day in enumerate(hand, start=1):
        close = 100.0 + k // 2 + (k % 2 == 0)
        prev = None if k == 1 else 100.0 + (k - 1) // 2 + ((k - 1) % 2 == 0)
        add("HAND", day, close, prev, volume=1000 * k, turnover=1000 * k * close)
    # SPARSE: every third trading day; its first day in May 2024 with blanks (open, turnover).
    blanks = False
    for i, day in enumerate(days[::3]):
        close = 50.0 + i % 7 + (i % 5) / 4
        add("SPARSE", day, close, 50.0 + (i - 1) % 7 + ((i - 1) % 5) / 4)
        if day >= dt.date(2024, 5, 1) and not blanks:
            rows[-1] |= {"open": None, "turnover": None}
            blanks = True
    # GAPPY: the first 10 days, then from 2024-07-01 (over a year later), with a day of volume 0,
    # one without prev_close and one without a high (out of the indicators' series).
    back = [d for d in days if d >= dt.date(2024, 7, 1)]
    for i, day in enumerate(days[:10] + back):
        add("GAPPY", day, 20.0 + i % 3, 20.0 + (i - 1) % 3)
        if i == 12:
            rows[-1] |= {"volume": 0, "turnover": 0.0}
        if i == 13:
            rows[-1] |= {"prev_close": None}
        if i == 14:
            rows[-1] |= {"high": None}
    return rows


def add_to_silver(root: Path, rows: list[dict]) -> None:
    lake, dataset = Lake(root), "cm_bhavcopy"
    added = pl.DataFrame(rows)
    for (day,), extra in added.partition_by("trade_date", as_dict=True).items():
        frame = lake.read_silver(dataset, day)
        extra = extra.with_columns(source_format=pl.lit(frame["source_format"][0]))
        lake.write_silver(
            dataset,
            day,
            pl.concat([frame, extra.select(frame.columns)], how="vertical_relaxed").cast(
                frame.schema
            ),
        )


@dataclass
class History:
    root: Path
    calendar: list[dt.date]
    calendar_file: Path
    package: Path
    incremental_root: Path


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    base = tmp_path_factory.mktemp("gold")
    root = base / "lake"
    days = local.generated_lake(
        root, base / "files", FIRST, LAST, symbols=SYMBOLS, fo=FO, deals=DEALS
    )
    add_to_silver(root, synthetic_rows(days))
    calendar = load_calendar().trading_days(FIRST, CALENDAR_END)
    # A second lake on the same silver, for the runs in two parts.
    incremental = base / "incremental"
    incremental.mkdir()
    (incremental / "silver").symlink_to(root / "silver")
    return History(
        root,
        calendar,
        local.write_calendar(base / "calendar.csv", calendar),
        local.build_zip(base / "nse_gold.zip"),
        incremental,
    )


# ---- the submissions --------------------------------------------------------------------------
def gold_files(root: Path) -> dict[Path, tuple[int, int]]:
    """Every file under gold/ -> (inode, mtime in ns)."""
    return {
        p: (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in (root / "gold").rglob("*")
        if p.is_file()
    }


@dataclass
class Incremental:
    first: dict
    second: dict
    before: dict[Path, tuple[int, int]]
    after: dict[Path, tuple[int, int]]


class _OneOf:
    """One job's JSON line from a submission of several."""

    def __init__(self, together: Future, n: int) -> None:
        self.together, self.n = together, n

    def result(self) -> dict:
        return self.together.result()[self.n]


@pytest.fixture(scope="module")
def submitted(history) -> dict[str, Future]:
    """Every spark-submit of the module, started at once, two at a time."""

    archive = local.class_archive()

    def submit(job, start, end, root=history.root, **kwargs):
        return local.submit(
            job,
            start,
            end,
            root,
            history.package,
            calendar=history.calendar_file,
            class_archive=archive,
            **kwargs,
        )

    def in_two_parts() -> Incremental:
        first = submit(
            "equity_indicators", FIRST, SPLIT, history.incremental_root, expect_master="local"
        )
        before = gold_files(history.incremental_root)
        second = submit(
            "equity_indicators", SPLIT, LAST, history.incremental_root, expect_master="local"
        )
        return Incremental(first, second, before, gold_files(history.incremental_root))

    def wrong_master() -> local.SubmitError | None:
        try:
            submit("equity_eod", LAST, LAST, expect_master="yarn")
        except local.SubmitError as refused:
            return refused
        return None

    pool = ThreadPoolExecutor(2)
    futures = {"incremental": pool.submit(in_two_parts)}
    # Jobs over the same range share one application, as a day's run of the DAG does.
    groups: dict[tuple, list[str]] = {}
    for job in DATASETS:
        groups.setdefault(RANGES[job], []).append(job)
    for span, jobs in groups.items():
        together = pool.submit(submit, jobs, *span, expect_master="local")
        futures |= {job: _OneOf(together, n) for n, job in enumerate(jobs)}
    futures["one day's month"] = pool.submit(
        submit, "equity_bars_monthly", MID_JULY, MID_JULY, history.incremental_root
    )
    futures["wrong master"] = pool.submit(wrong_master)
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def expected(history) -> dict[str, pl.DataFrame]:
    root, calendar = history.root, history.calendar
    return {
        "equity_eod": reference.equity_eod(root),
        "equity_indicators": reference.equity_indicators(root),
        "equity_bars_weekly": reference.equity_bars(root, calendar, "weekly"),
        "equity_bars_monthly": reference.equity_bars(root, calendar, "monthly"),
        "fo_daily": reference.fo_daily(root, calendar),
        "market_daily_summary": reference.market_daily_summary(root),
    }


# ---- comparing ----------------------------------------------------------------------------------
def assert_matches(got: pl.DataFrame, expected: pl.DataFrame, name: str) -> None:
    """Same keys, equal non-float columns, float columns within TOLERANCE (nulls alike)."""
    dataset = DATASETS[name]
    key = list(dataset.key)
    got = got.sort(key, nulls_last=True)
    expected = dataset.conform(expected).sort(key, nulls_last=True)
    assert got.select(key).equals(expected.select(key)), f"{name}: rows differ"
    assert got.height > 0
    for column in dataset.columns:
        a, b = got[column.name], expected[column.name]
        if column.dtype == pl.List(pl.Float64):
            assert (a.list.len() == b.list.len()).all(), column.name
            a, b = a.explode(), b.explode()
        if a.dtype != pl.Float64:
            assert a.equals(b), f"{name}.{column.name} differs"
            continue
        assert a.is_null().equals(b.is_null()), f"{name}.{column.name}: nulls differ"
        pair = pl.DataFrame({"a": a, "b": b})
        scale = pl.max_horizontal(pl.col("a").abs(), pl.col("b").abs())
        if column.name in OF_CLOSE:
            pair, scale = pair.with_columns(close=got["close"]), pl.col("close").abs()
        off = pair.filter((pl.col("a") - pl.col("b")).abs() > TOLERANCE * scale)
        assert off.is_empty(), f"{name}.{column.name} differs:\n{off.head()}"


def rows_per_date(frame: pl.DataFrame) -> dict[str, int]:
    counts = frame.group_by("trade_date").len().sort("trade_date")
    return {d.isoformat(): n for d, n in counts.iter_rows()}


@pytest.mark.parametrize("name", list(DATASETS))
def test_job_matches_the_reference(submitted, history, expected, name):
    """Every gold row equals the reference's, and the JSON line counts the rows of each date."""
    printed = submitted[name].result()
    got = read_gold(history.root, name)
    assert_matches(
        got,
        expected[name].filter(pl.col("trade_date").is_in(got["trade_date"].unique().implode())),
        name,
    )
    assert printed["rows"] == rows_per_date(got)
    assert printed["job"] == name and printed["start"] == RANGES[name][0].isoformat()


def test_every_run_date_is_written(submitted, history, expected):
    """The daily datasets have a partition for every silver date of their run, no other."""
    lake = Lake(history.root)
    for name, source in (
        ("equity_eod", "cm_bhavcopy"),
        ("market_daily_summary", "cm_bhavcopy"),
        ("fo_daily", "fo_bhavcopy"),
    ):
        submitted[name].result()
        start, end = RANGES[name]
        dates = [d for d in lake.silver_dates(source) if start <= d <= end]
        assert gold_dates(history.root, name) == dates


def test_a_bar_is_dated_by_its_period_end(submitted, history):
    """The bar of a period is written under its last trading day, after the run's end for a
    bar to date (August, run to the 9th); a run for one day recomputes that day's whole month."""
    submitted["equity_bars_monthly"].result()
    monthly = read_gold(history.root, "equity_bars_monthly")
    august = monthly.filter(pl.col("trade_date") == dt.date(2024, 8, 30))
    assert gold_dates(history.root, "equity_bars_monthly")[-1] == dt.date(2024, 8, 30)
    assert august["trading_days"].max() == 7  # 1, 2, 5, 6, 7, 8 and 9 August
    alone = submitted["one day's month"].result()
    assert alone["rows"] == {
        "2024-07-31": monthly.filter(pl.col("trade_date") == dt.date(2024, 7, 31)).height
    }
    july = read_partition(history.incremental_root, "equity_bars_monthly", dt.date(2024, 7, 31))
    whole = read_partition(history.root, "equity_bars_monthly", dt.date(2024, 7, 31))
    assert_matches(july, whole, "equity_bars_monthly")  # sums in another order: not bit for bit
    assert gold_dates(history.incremental_root, "equity_bars_monthly") == [dt.date(2024, 7, 31)]


# ---- worked by hand ---------------------------------------------------------------------------
def test_hand_worked_values(submitted, history):
    """HAND's indicators and a weekly bar, worked out by hand (as in include/nse_gold/README.md).

    Closes c1..c30 (2024-02-22 .. 2024-04-08): 100, 102, 101, 103, 102, 104, ..., c(2m) = 101 + m,
    c(2m+1) = 100 + m; high = c + 1, low = c - 1, open = c - 0.5.
    """
    submitted["equity_indicators"].result()
    submitted["equity_bars_weekly"].result()
    rows = read_gold(history.root, "equity_indicators").filter(pl.col("symbol") == "HAND")
    day = {r["history_rows"]: r for r in rows.sort("trade_date").iter_rows(named=True)}
    assert len(day) == 30 and day[1]["trade_date"] == dt.date(2024, 2, 22)
    exact = pytest.approx

    # SMA 20 at row 20 (2024-03-21): odd rows 100..109 sum to 1045, even rows 102..111 to 1065;
    # (1045 + 1065) / 20 = 105.5. Rows 1..19 have none; SMA 50 and 200 never (30 rows).
    assert day[20]["trade_date"] == dt.date(2024, 3, 21)
    assert day[19]["sma20"] is None and day[20]["sma20"] == exact(105.5, rel=1e-12)
    assert all(day[k]["sma50"] is None and day[k]["sma200"] is None for k in day)
    # Bollinger (20, 2) at row 20: squared deviations from 105.5 are 30.25, 20.25, 12.25, 6.25,
    # 2.25, 0.25, 0.25, 2.25, 6.25, 12.25 for each half: 2 * 92.5 = 185; variance 185 / 20 =
    # 9.25, sd = 3.041381265149110; bands 105.5 +- 6.082762530298220.
    assert day[20]["bb_upper"] == exact(111.582762530298220, rel=1e-12)
    assert day[20]["bb_lower"] == exact(99.417237469701780, rel=1e-12)
    # EMA 20: seeded at row 20 with the SMA, 105.5; a = 2/21.
    # Row 21 (c = 110): 105.5 + (2/21)(110 - 105.5) = 105.5 + 9/21 = 741.5/7 = 105.928571428571...
    # Row 22 (c = 112): (2/21)112 + (19/21)(741.5/7) = (1568 + 14088.5)/147 = 106.506802721088...
    assert day[19]["ema20"] is None and day[20]["ema20"] == exact(105.5, rel=1e-12)
    assert day[21]["ema20"] == exact(741.5 / 7, rel=1e-12)
    assert day[22]["ema20"] == exact(15656.5 / 147, rel=1e-12)
    # RSI 14 at row 15 (2024-03-14): changes of rows 2..15 are +2 (even rows, 7 of them) and -1
    # (odd rows, 7): avg gain 14/14 = 1, avg loss 7/14 = 0.5, RSI = 100 * 1 / 1.5 = 66.666...
    # Row 16 (+2): gain (13 * 1 + 2)/14 = 15/14, loss (13 * 0.5)/14 = 6.5/14, RSI = 1500/21.5.
    assert day[14]["rsi14"] is None
    assert day[15]["avg_gain14"] == exact(1.0) and day[15]["avg_loss14"] == exact(0.5)
    assert day[15]["rsi14"] == exact(200 / 3, rel=1e-12)
    assert day[16]["rsi14"] == exact(1500 / 21.5, rel=1e-12)
    # ATR 14: an up day's true range is (c + 1) - (c - 2) = 3, a down day's (c + 1) - (c - 1) = 2;
    # row 15: (7 * 3 + 7 * 2)/14 = 2.5; row 16 (up): (13 * 2.5 + 3)/14 = 35.5/14.
    assert day[15]["atr14"] == exact(2.5, rel=1e-12)
    assert day[16]["atr14"] == exact(35.5 / 14, rel=1e-12)
    # 52 weeks at row 30: every row is in the window: high c30 + 1 = 117, low c1 - 1 = 99.
    assert (day[30]["high_52w"], day[30]["low_52w"]) == (117.0, 99.0)

    # The week of 2024-03-25: Monday (Holi) and Friday (Good Friday) are holidays, so the bar is
    # rows 22..24 (Tue 26 .. Thu 28) and ends on Thursday 2024-03-28. c22 = 112, c23 = 111,
    # c24 = 113: open 112 - 0.5 = 111.5, high 113 + 1 = 114, low 111 - 1 = 110, close 113;
    # volume 1000 * (22 + 23 + 24) = 69,000; turnover 1000 * (22*112 + 23*111 + 24*113) =
    # 7,729,000.
    weekly = read_gold(history.root, "equity_bars_weekly").filter(
        (pl.col("symbol") == "HAND") & (pl.col("trade_date") == dt.date(2024, 3, 28))
    )
    assert weekly.drop("trade_date", "symbol").row(0, named=True) == {
        "open": 111.5,
        "high": 114.0,
        "low": 110.0,
        "close": 113.0,
        "volume": 69_000,
        "turnover": 7_729_000.0,
        "trading_days": 3,
    }


def test_blank_numbers_stay_null(submitted, history):
    """NSE's blanks propagate: no ratio of a blank, and no vwap of a day with no volume, is 0."""
    submitted["equity_eod"].result()
    eod = read_gold(history.root, "equity_eod")
    blank = eod.filter(pl.col("symbol").is_in(["SPARSE", "GAPPY"]))
    no_open = blank.filter(pl.col("open").is_null())
    assert no_open.height == 1 and no_open["gap"].is_null().all()
    assert no_open["vwap"].is_null().all() and no_open["turnover"].is_null().all()
    assert blank.filter(pl.col("volume") == 0)["vwap"].is_null().all()
    assert blank.filter(pl.col("high").is_null())["day_range"].is_null().all()
    no_prev = blank.filter(pl.col("prev_close").is_null())
    assert no_prev.height == 1 and no_prev["close"].is_not_null().all()
    assert no_prev.select("daily_return", "gap", "day_range").null_count().row(0) == (1, 1, 1)
    # The hand-made symbols have no delivery rows: null, not 0.
    assert blank["delivery_qty"].is_null().all() and blank["delivery_pct"].is_null().all()


def test_a_series_starts_again_after_a_year_away(submitted, history):
    submitted["equity_indicators"].result()
    gappy = read_gold(history.root, "equity_indicators").filter(pl.col("symbol") == "GAPPY")
    back = gappy.filter(pl.col("trade_date") >= dt.date(2024, 7, 1)).sort("trade_date")
    assert back["history_rows"][0] == 1 and back["sma20"][0] is None


# ---- incremental ------------------------------------------------------------------------------
def bits(frame: pl.DataFrame) -> pl.DataFrame:
    """Floats as their 64 bits, so equality is bit for bit."""
    return frame.with_columns(pl.col(pl.Float64).reinterpret(signed=True))


def test_two_runs_equal_one_bit_for_bit(submitted, history):
    """Indicators for [first, split] then [split, last], seeded from gold, equal one run."""
    parts = submitted["incremental"].result()
    submitted["equity_indicators"].result()
    assert set(parts.second["rows"]) == {
        d.isoformat() for d in history.calendar if SPLIT <= d <= LAST
    }
    whole = read_gold(history.root, "equity_indicators").sort("trade_date", "symbol")
    split = read_gold(history.incremental_root, "equity_indicators").sort("trade_date", "symbol")
    assert bits(split).equals(bits(whole))
    # The symbols that take each path: seeded from gold, replayed from their first row, read
    # from further back than a year, started afresh.
    at_split = whole.filter(pl.col("trade_date") == SPLIT)
    assert at_split.filter(pl.col("history_rows") > 200).height > 30
    sparse = whole.filter((pl.col("symbol") == "SPARSE") & (pl.col("trade_date") < SPLIT))
    assert sparse["history_rows"].max() < 199
    assert sparse["trade_date"].min() < SPLIT - dt.timedelta(days=364)
    assert whole.filter(pl.col("trade_date") > SPLIT)["symbol"].is_in(["SPARSE", "GAPPY"]).sum()


def test_a_rerun_rewrites_its_date_only(submitted, history):
    """The second part ran `SPLIT` again: one file for it, every earlier file untouched."""
    parts = submitted["incremental"].result()
    rerun = partition_dir(history.incremental_root, "equity_indicators", SPLIT)
    earlier = {p: s for p, s in parts.before.items() if rerun not in p.parents}
    assert earlier and all(parts.after[p] == s for p, s in earlier.items())
    assert len(list(rerun.glob("*.parquet"))) == 1
    assert [p for p in parts.before if rerun in p.parents] != [
        p for p in parts.after if rerun in p.parents
    ]
    frame = read_partition(history.incremental_root, "equity_indicators", SPLIT)
    assert frame.height == parts.first["rows"][SPLIT.isoformat()] == frame["symbol"].n_unique()


# ---- the runner -------------------------------------------------------------------------------
def test_a_wrong_master_is_refused(submitted):
    refused = submitted["wrong master"].result()
    assert refused is not None and refused.returncode == 2
    assert "expected a yarn master" in refused.stderr and "'local[2]'" in refused.stderr


def test_the_zip_holds_the_jobs_only(tmp_path):
    with zipfile.ZipFile(local.build_zip(tmp_path / "nse_gold.zip")) as archive:
        names = set(archive.namelist())
    assert {"nse_gold/__init__.py", "nse_gold/jobs.py", "nse_gold/run.py"} <= names
    assert not names & {"nse_gold/datasets.py", "nse_gold/local.py"}


def test_job_code_imports_only_pyspark_and_the_standard_library():
    shipped = [p for p in local.PACKAGE_DIR.glob("*.py") if p.name not in local.NOT_SHIPPED]
    for module in shipped:
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names | {"pyspark", "nse_gold", "__future__"}, (
                    f"{module.name} imports {name}"
                )


# ---- the warehouse ----------------------------------------------------------------------------
@pytest.mark.clickhouse
def test_gold_loads_into_clickhouse(submitted, history, ch_client, ch_database):
    """The DDL applies on 18.16; a gold partition of each dataset conforms and loads, and comes
    back as it went in."""
    migrate(ch_client, ch_database)
    for name, dataset in DATASETS.items():
        submitted[name].result()
        assert table_columns(ch_client, ch_database, name) == [
            (c.name, c.ch_type) for c in dataset.columns
        ] + [("loaded_at", "DateTime")]
        day = gold_dates(history.root, name)[-1]
        frame = read_partition(history.root, name, day)
        assert load(ch_client, dataset, day, frame, ch_database)["rows"] == frame.height > 0
        back = query_polars(ch_client, f"SELECT * FROM {ch_database}.{name}").drop("loaded_at")
        key = list(dataset.key)
        assert back.sort(key, nulls_last=True).equals(frame.sort(key, nulls_last=True))


def test_gold_loads_on_current_clickhouse(submitted, history, tmp_path):
    """The same DDL and loads on a current release (chdb, in process)."""
    chdb_session = pytest.importorskip("chdb.session")
    session = chdb_session.Session(str(tmp_path / "chdb"))
    client = ChdbClient(session)
    try:
        migrate(client, "nse")
        for name, dataset in DATASETS.items():
            submitted[name].result()
            day = gold_dates(history.root, name)[-1]
            frame = read_partition(history.root, name, day)
            load(client, dataset, day, frame, "nse")
            assert client.execute(f"SELECT count() FROM nse.{name}") == [(frame.height,)]
    finally:
        session.close()


def test_gold_partitions_pass_their_checks(submitted, history):
    """Each dataset's checks, with its key's, hold on the last partition of each run: the quality
    gate's suite, as the load task runs it."""
    for name, dataset in DATASETS.items():
        submitted[name].result()
        day = gold_dates(history.root, name)[-1]
        frame = read_partition(history.root, name, day)
        report, _ = validate_frame(name, suite(dataset), frame, day)
        assert report.outcomes and not report.failed, report.summary_lines()
        assert frame.select(dataset.key).is_unique().all()
