"""Faults in loading ClickHouse: a load killed with its staging table made, the server killed
in the middle of a load and restarted, two loads of one date at once, a backfill run twice.

The server that is killed is a private one started for the test (`private_clickhouse.py`);
the others use the shared test server with a database of their own. Every case asserts that
the date holds exactly one copy of the rows it should (nothing lost, nothing duplicated:
rows == distinct keys == the file's rows), that no staging table outlives the next load, and
that the error a task would log names the dataset and the date.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError

from include.nse import history, pipeline, sources, warehouse
from include.nse.lake import Lake
from include.nse.warehouse import Warehouse, connector, migrate
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.conftest import PROJECT_ROOT
from tests.helpers import read_records, stage_tables, standin_settings
from tests.reliability.private_clickhouse import PrivateClickHouse

pytestmark = [pytest.mark.clickhouse]

DAY = dt.date(2022, 5, 24)
CM_FILE = "cm24MAY2022bhav.csv.zip"
DATASET = sources.get("cm_bhavcopy")


@pytest.fixture(scope="module")
def day_frames(samples_dir) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The real day as NSE first and last published it: 2000 rows, then all 2213."""
    full = DATASET.parse((samples_dir / "cm_bhavcopy_legacy" / CM_FILE).read_bytes(), CM_FILE)
    return full.head(2000), full


def held(client: Client, database: str, day: dt.date = DAY) -> tuple[int, int]:
    """(rows, distinct keys) the table holds for `day`."""
    return client.execute(
        f"SELECT count(), uniqExact(symbol, series) FROM {database}.cm_bhavcopy "
        "WHERE trade_date = %(day)s",
        {"day": day},
    )[0]


@pytest.fixture()
def shared(clickhouse_server, ch_database):
    client = Client(**clickhouse_server, database=ch_database)
    migrate(client, ch_database)
    yield client, ch_database
    client.disconnect()


# ---- a load killed with its staging table made --------------------------------------------
DYING_LOAD = """
import sys, time, types
import polars as pl
from clickhouse_driver import Client
from include.nse import sources, warehouse

host, port, database, frame = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
real = time.time
# The load began two hours ago: its staging table's name says when.
warehouse.time = types.SimpleNamespace(time=lambda: real() - 7200)


class Hangs(Client):
    def execute(self, query, *args, **kwargs):
        done = super().execute(query, *args, **kwargs)
        if query.startswith("CREATE TABLE") and "__stage_" in query:
            print("STAGED", query.split()[2], flush=True)
            time.sleep(120)  # SIGKILLed here, its stage made and not yet filled
        return done


client = Hangs(host=host, port=port, database=database)
warehouse.load(client, sources.get("cm_bhavcopy"), "2022-05-24", pl.read_parquet(frame), database)
"""


def test_stage_of_a_killed_load_is_dropped_by_the_next(
    shared, clickhouse_server, day_frames, tmp_path, fault
):
    client, database = shared
    first, full = day_frames
    warehouse.load(client, DATASET, DAY, first, database)
    frame_file = tmp_path / "full.parquet"
    full.write_parquet(frame_file)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            DYING_LOAD,
            clickhouse_server["host"],
            str(clickhouse_server["port"]),
            database,
            str(frame_file),
        ],
        cwd=PROJECT_ROOT,
        env=os.environ | {"PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline()
        assert line.startswith("STAGED"), child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
    stage = line.split()[1].split(".", 1)[1]
    assert stage_tables(client, database) == [stage]
    assert held(client, database) == (first.height, first.height)  # untouched by the dead load

    for _ in range(2):  # the retry, then a rerun of the date
        warehouse.load(client, DATASET, DAY, full, database)
        assert stage_tables(client, database) == []
        rows, keys = held(client, database)
        assert rows == keys == full.height
    fault(
        "load SIGKILLed with its staging table made",
        outcome=f"next load dropped {stage}; the date holds the new file once",
        lost=full.height - keys,
        duplicated=rows - keys,
    )


# ---- the server killed in the middle of a load -----------------------------------------------
class KillsServerBefore(Client):
    """A client that kills the server just before its first statement holding `marker`."""

    def __init__(self, *args, marker: str, server: PrivateClickHouse, **kwargs):
        super().__init__(*args, **kwargs)
        self.marker, self.server, self.killed = marker, server, False

    def execute(self, query, *args, **kwargs):
        if self.marker in query and not self.killed:
            self.killed = True
            self.server.kill()
        return super().execute(query, *args, **kwargs)


@pytest.mark.slow
def test_clickhouse_killed_mid_load_and_restarted(tmp_path, day_frames, fault):
    from include.nse_airflow.tasks import outcomes

    first, full = day_frames
    with PrivateClickHouse(tmp_path / "clickhouse") as server:
        client = Client(**server.settings)
        migrate(client, "nse")
        warehouse.load(client, DATASET, DAY, first, "nse")
        dying = KillsServerBefore(**server.settings, marker="REPLACE PARTITION", server=server)
        with pytest.raises(Exception) as caught, outcomes("cm_bhavcopy", DAY):
            warehouse.load(dying, DATASET, DAY, full, "nse")
        # The task's message names what it was loading; the driver's error is the cause.
        message = str(caught.value)
        assert message.startswith("cm_bhavcopy for 2022-05-24: ClickHouse failed: Code: 210.")
        assert f"127.0.0.1:{server.tcp_port}" in message
        assert isinstance(caught.value.__cause__, ClickHouseError)

        server.start()
        client = Client(**server.settings)
        (stage,) = stage_tables(client, "nse")  # filled, never swapped in, its load gone
        assert held(client, "nse") == (first.height, first.height)
        for _ in range(2):  # the retry after the restart, then a rerun of the date
            warehouse.load(client, DATASET, DAY, full, "nse")
            assert stage_tables(client, "nse") == []
            rows, keys = held(client, "nse")
            assert rows == keys == full.height
        client.disconnect()
    fault(
        "ClickHouse SIGKILLed mid-load (stage filled, before the swap), restarted",
        outcome=f"retried: {message[:60]}...; rerun dropped {stage}, one copy",
        lost=full.height - keys,
        duplicated=rows - keys,
    )


# ---- two loads of one date at once ----------------------------------------------------------
def _loader(start, settings: dict, database: str, frame_file: str, times: int) -> None:
    start.wait()
    client = Client(**settings, database=database)
    frame = pl.read_parquet(frame_file)
    for _ in range(times):
        warehouse.load(client, sources.get("cm_bhavcopy"), DAY, frame, database)


def test_two_loads_of_one_date_at_once(shared, clickhouse_server, day_frames, tmp_path, fault):
    import multiprocessing

    client, database = shared
    first, full = day_frames
    files = []
    for name, frame in (("first", first), ("full", full)):
        files.append(tmp_path / f"{name}.parquet")
        frame.write_parquet(files[-1])
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    times = 8
    loaders = [
        spawn.Process(target=_loader, args=(start, clickhouse_server, database, str(f), times))
        for f in files
    ]
    seen: set[tuple[int, int]] = set()
    stop = threading.Event()

    def watch() -> None:
        reader = Client(**clickhouse_server)
        while not stop.is_set():
            seen.add(held(reader, database))
            time.sleep(0.01)
        reader.disconnect()

    watcher = threading.Thread(target=watch)
    watcher.start()
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join(180)
    stop.set()
    watcher.join()
    assert [loader.exitcode for loader in loaders] == [0, 0]
    # Readers only ever saw one whole load's rows: never both, never half.
    allowed = {(0, 0), (first.height, first.height), (full.height, full.height)}
    assert seen <= allowed and len(seen & allowed - {(0, 0)}) >= 1, seen
    rows, keys = held(client, database)
    assert rows == keys and rows in (first.height, full.height)
    assert stage_tables(client, database) == []
    fault(
        f"two processes loading one date {times} times each, at once",
        outcome=f"the date always held one load's rows ({len(seen)} states seen); no stage left",
        duplicated=rows - keys,
    )


# ---- a backfill chunk run twice ---------------------------------------------------------------
FIRST, LAST = dt.date(2024, 7, 1), dt.date(2024, 7, 5)


def test_backfill_rerun_skips_and_changes_nothing(tmp_path, clickhouse_server, ch_database, fault):
    root = tmp_path / "nse"
    generate(FIRST, LAST, root, symbols=80, datasets=["cm_bhavcopy", "cm_delivery"])

    (chunk,) = history.plan(FIRST, LAST, ["cm_bhavcopy", "cm_delivery"], chunk="week")
    client = Client(**clickhouse_server)

    def counts() -> dict:
        return {
            name: dict(
                client.execute(
                    f"SELECT trade_date, count() FROM {ch_database}.{name} GROUP BY trade_date"
                )
            )
            for name in ("cm_bhavcopy", "cm_delivery")
        }

    with StandIn(root) as standin:
        ctx = pipeline.Context(
            standin_settings(standin.url, lake_root=tmp_path / "lake"),
            Warehouse(connector(**clickhouse_server), ch_database),
            run_id="fault",
        )
        first = history.load_chunk(ctx, chunk)
        loaded = counts()
        manifests = {
            (name, day): Lake(tmp_path / "lake").bronze_manifest(name, day)
            for name, days in chunk.days.items()
            for day in days
        }
        standin.clear_log()
        again = history.load_chunk(ctx, chunk)
        requests = standin.request_log
    days = sum(len(d) for d in chunk.days.values())
    assert [o.status for o in first] == ["loaded"] * days
    assert [o.status for o in again] == ["skipped"] * days
    assert requests == []  # nothing fetched again
    assert counts() == loaded
    assert {
        (name, day): Lake(tmp_path / "lake").bronze_manifest(name, day) for name, day in manifests
    } == manifests
    # Every row of every file fetched, counted with the csv module, is loaded once.
    expected = {name: {} for name in chunk.days}
    for (name, day), manifest in manifests.items():
        (entry,) = manifest
        expected[name][day] = len(read_records(Path(entry["path"]).read_bytes()))
    assert loaded == expected
    client.disconnect()
    fault(
        f"backfill chunk of {days} dataset-days run twice",
        outcome="second run skipped every day, fetched nothing; counts and bronze unchanged",
    )
