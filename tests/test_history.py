"""History loads: chunks of the trading calendar, every day gated, resumed without refetching."""

from __future__ import annotations

import datetime as dt

import pytest

from include.nse import history, pipeline, sources
from include.nse.calendar import default_calendar
from include.nse.warehouse import Warehouse, connector
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.helpers import blank_field, read_records, standin_settings

pytestmark = pytest.mark.clickhouse

FIRST, LAST = dt.date(2024, 7, 8), dt.date(2024, 7, 19)
#: Muharram: NSE was closed.
HOLIDAY = dt.date(2024, 7, 17)
BROKEN, MISSING = dt.date(2024, 7, 10), dt.date(2024, 7, 15)


class TestPlan:
    def test_months_weeks_and_days_of_the_trading_calendar(self):
        """Chunks hold each dataset's trading days: no weekend, no holiday, in calendar order."""
        months = history.plan(dt.date(2024, 6, 27), dt.date(2024, 7, 19), ["cm_bhavcopy"])
        assert [c.label for c in months] == ["2024-06", "2024-07"]
        july = months[1].days["cm_bhavcopy"]
        assert HOLIDAY not in july and dt.date(2024, 7, 13) not in july
        assert july == default_calendar().trading_days(dt.date(2024, 7, 1), LAST, "CM")
        weeks = history.plan(FIRST, LAST, ["cm_bhavcopy", "fo_bhavcopy"], chunk="week")
        assert [(c.label, c.first, c.last) for c in weeks] == [
            ("2024-W28", FIRST, dt.date(2024, 7, 12)),
            ("2024-W29", dt.date(2024, 7, 15), LAST),
        ]
        assert weeks[1].days["fo_bhavcopy"] == weeks[1].days["cm_bhavcopy"]
        days = history.plan(FIRST, LAST, ["cm_bhavcopy"], chunk="day")
        assert len(days) == 9 and all(c.first == c.last for c in days)

    def test_a_weekend_session_is_a_trading_day(self):
        """The 2025 Budget Saturday is in the plan; the Sunday after it is not."""
        (chunk,) = history.plan(dt.date(2025, 2, 1), dt.date(2025, 2, 3), ["cm_bhavcopy"])
        assert chunk.days["cm_bhavcopy"] == [dt.date(2025, 2, 1), dt.date(2025, 2, 3)]

    def test_chunks_survive_a_round_trip_through_xcom(self):
        """A chunk is plain JSON-ready data and comes back equal."""
        (chunk,) = history.plan(FIRST, LAST, ["bulk_deals"])
        assert history.Chunk.from_dict(chunk.to_dict()) == chunk

    @pytest.mark.parametrize(
        ("start", "end", "names", "chunk", "message"),
        [
            (FIRST, LAST, ["option_chain"], "month", "not published per trading day"),
            (FIRST, LAST, ["holidays"], "month", "not published per trading day"),
            (FIRST, LAST, ["cm_bhavcopy"], "year", "chunk must be one of"),
            (LAST, FIRST, ["cm_bhavcopy"], "month", "ends .* before it starts"),
        ],
    )
    def test_refuses_what_it_cannot_plan(self, start, end, names, chunk, message):
        """A dataset without days to load, an unknown chunk or a reversed range is refused."""
        with pytest.raises(ValueError, match=message):
            history.plan(start, end, names, chunk=chunk)


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(
        FIRST, LAST, root, symbols=120, holidays=[HOLIDAY], datasets=["cm_bhavcopy", "fo_bhavcopy"]
    )
    return root


def _bhavcopy(root, day: dt.date):
    path = sources.get("cm_bhavcopy").publication.paths(day)[-1]
    return root / path.lstrip("/")


@pytest.fixture()
def history_env(nse_root, lake_root, clickhouse_server, ch_database):
    """The generated fortnight on a stand-in, one day broken (a blank close) and one missing."""
    broken, missing = _bhavcopy(nse_root, BROKEN), _bhavcopy(nse_root, MISSING)
    good = {BROKEN: broken.read_bytes(), MISSING: missing.read_bytes()}

    broken.write_bytes(blank_field(good[BROKEN], 2, "ClsPric"))
    missing.unlink()

    with StandIn(nse_root) as standin:
        ctx = pipeline.Context(
            standin_settings(standin.url, lake_root=lake_root),
            Warehouse(connector(**clickhouse_server), ch_database),
            run_id="test",
        )
        yield {"ctx": ctx, "standin": standin, "good": good, "root": nse_root}
    for day, raw in good.items():
        _bhavcopy(nse_root, day).write_bytes(raw)


def _counts(ch_client, database: str) -> dict[dt.date, int]:
    return dict(
        ch_client.execute(
            f"SELECT trade_date, count() FROM {database}.cm_bhavcopy GROUP BY trade_date"
        )
    )


def _ledger(ch_client, database: str) -> list[tuple]:
    return ch_client.execute(
        f"SELECT trade_date, status, rows, run_id FROM {database}.backfill_days "
        "ORDER BY trade_date, attempt"
    )


def _fetched_days(standin) -> set[str]:
    return {entry["path"].rsplit("_", 3)[-3] for entry in standin.request_log}


def test_a_range_loads_every_good_day_once_and_records_every_day(
    history_env, ch_client, ch_database
):
    """Good days load exactly the file's rows; the broken day (critical gate failure) and the
    missing day load nothing; each day's outcome is recorded; a bad day stops nothing."""
    ctx, root = history_env["ctx"], history_env["root"]
    days = default_calendar().trading_days(FIRST, LAST, "CM")
    seen = []
    outcomes = history.load_days(ctx, sources.get("cm_bhavcopy"), days, on_outcome=seen.append)
    by_day = {o.trade_date: o for o in outcomes}
    assert [o.trade_date for o in outcomes] == days
    assert sorted(seen, key=lambda o: o.trade_date) == outcomes
    assert by_day[BROKEN].status == "failed" and "column=close" in by_day[BROKEN].error
    assert by_day[MISSING].status == "not_published"
    good = [d for d in days if d not in (BROKEN, MISSING)]
    expected = {d: len(read_records(_bhavcopy(root, d).read_bytes())) for d in good}
    assert {d: o.rows for d, o in by_day.items() if o.status == "loaded"} == expected
    assert _counts(ch_client, ch_database) == expected
    assert [(d, s) for d, s, *_ in _ledger(ch_client, ch_database)] == [
        (d, by_day[d].status) for d in days
    ]
    critical = ch_client.execute(
        f"SELECT trade_date, critical_failed FROM {ch_database}.quality_validations "
        "WHERE critical_failed > 0"
    )
    assert critical == [(BROKEN, 1)]


def test_a_rerun_loads_only_what_failed_and_fetches_nothing_else(
    history_env, ch_client, ch_database
):
    """After the broken day is mended and the missing one published, a rerun of the range
    fetches just those two, loads them, and leaves one copy of every day."""
    ctx, standin, root = history_env["ctx"], history_env["standin"], history_env["root"]
    dataset = sources.get("cm_bhavcopy")
    days = default_calendar().trading_days(FIRST, LAST, "CM")
    history.load_days(ctx, dataset, days)
    for day, raw in history_env["good"].items():
        _bhavcopy(root, day).write_bytes(raw)
    standin.clear_log()

    again = {o.trade_date: o.status for o in history.load_days(ctx, dataset, days)}
    assert {d for d, s in again.items() if s == "loaded"} == {BROKEN, MISSING}
    assert {d for d, s in again.items() if s == "skipped"} == set(days) - {BROKEN, MISSING}
    assert _fetched_days(standin) == {f"{d:%Y%m%d}" for d in (BROKEN, MISSING)}
    expected = {d: len(read_records(_bhavcopy(root, d).read_bytes())) for d in days}
    assert _counts(ch_client, ch_database) == expected


def test_a_day_whose_rows_changed_is_loaded_again(history_env, ch_client, ch_database):
    """A day recorded as loaded whose partition no longer holds the recorded rows (dropped by
    hand) is loaded again; `reload` loads every day again; neither duplicates a row."""
    ctx, standin = history_env["ctx"], history_env["standin"]
    dataset = sources.get("cm_bhavcopy")
    days = [FIRST, dt.date(2024, 7, 9)]
    history.load_days(ctx, dataset, days)
    loaded = _counts(ch_client, ch_database)
    ch_client.execute(f"ALTER TABLE {ch_database}.cm_bhavcopy DROP PARTITION '{FIRST}'")
    standin.clear_log()
    statuses = {o.trade_date: o.status for o in history.load_days(ctx, dataset, days)}
    assert statuses == {FIRST: "loaded", dt.date(2024, 7, 9): "skipped"}
    assert _fetched_days(standin) == {f"{FIRST:%Y%m%d}"}
    statuses = {o.trade_date: o.status for o in history.load_days(ctx, dataset, days, reload=True)}
    assert set(statuses.values()) == {"loaded"}
    assert _counts(ch_client, ch_database) == loaded


def test_a_chunk_loads_each_of_its_datasets(history_env, ch_client, ch_database):
    """A chunk of two datasets on different calendars loads both, and its summary adds up."""
    ctx = history_env["ctx"]
    (chunk,) = history.plan(
        dt.date(2024, 7, 8), dt.date(2024, 7, 9), ["cm_bhavcopy", "fo_bhavcopy"]
    )
    outcomes = history.load_chunk(ctx, chunk)
    summary = history.summarize(outcomes)
    assert summary["loaded"] == 4 and summary["failed"] == 0 and summary["days"] == 4
    fo = dict(
        ch_client.execute(
            f"SELECT trade_date, count() FROM {ch_database}.fo_bhavcopy GROUP BY trade_date"
        )
    )
    assert summary["rows"] == sum(fo.values()) + sum(_counts(ch_client, ch_database).values())
    assert {o.chunk for o in outcomes} == {chunk.label}
