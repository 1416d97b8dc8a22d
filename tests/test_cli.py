"""The command line as a user runs it: `python -m include.nse ...` in a subprocess, against the
stand-in over loopback and a fresh ClickHouse database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import resource
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

from include.nse import sources
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn
from tests.conftest import PROJECT_ROOT, new_database, parse_dag
from tests.helpers import blank_field, free_port, state, task_states

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]

FIRST, LAST = dt.date(2024, 7, 1), dt.date(2024, 7, 5)
#: Its equity bhavcopy has one row whose close is blank.
BROKEN = dt.date(2024, 7, 4)
CM = sources.get("cm_bhavcopy")
RESULT = f"quality/cm_bhavcopy/trade_date={BROKEN}/validation.json"


def _archive_file(root: Path, day: dt.date) -> Path:
    """The equity bhavcopy the stand-in serves for `day` (the legacy file, tried first)."""
    return root / CM.publication.paths(day)[0].lstrip("/")


def _file_rows(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as archive:
        (name,) = archive.namelist()
        return list(csv.DictReader(io.StringIO(archive.read(name).decode())))


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(
        FIRST,
        LAST,
        root,
        symbols=300,
        datasets=["cm_bhavcopy", "cm_delivery", "index_constituents"],
    )
    path = _archive_file(root, BROKEN)
    path.write_bytes(blank_field(path.read_bytes(), 2, "CLOSE"))
    return root


@pytest.fixture()
def cli(nse_root, tmp_path, clickhouse_server, ch_database):
    """Runs `python -m include.nse ARGS...` with NSE's hosts on a stand-in, a fresh lake and a
    fresh database; the runner also carries `lake` and `database`."""
    with StandIn(nse_root) as standin:
        env = {
            **os.environ,
            "NSE_LAKE_ROOT": str(tmp_path / "lake"),
            "NSE_ARCHIVE_BASE_URL": standin.url,
            "NSE_API_BASE_URL": standin.url,
            "NSE_HTTP_BACKOFF_INITIAL": "0.05",
            "NSE_HTTP_BACKOFF_MAX": "0.2",
            "CLICKHOUSE_HOST": clickhouse_server["host"],
            "CLICKHOUSE_PORT": str(clickhouse_server["port"]),
            "CLICKHOUSE_USER": clickhouse_server["user"],
            "CLICKHOUSE_PASSWORD": clickhouse_server["password"],
            "CLICKHOUSE_DATABASE": ch_database,
        }
        env.pop("NSE_HOLIDAYS_FILE", None)

        def run(*args: str, limit_file_bytes: int | None = None, **changes: str):
            def limit() -> None:  # a file may not grow past the limit: writes fail with EFBIG
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

            return subprocess.run(
                [sys.executable, "-m", "include.nse", *args],
                capture_output=True,
                text=True,
                cwd=PROJECT_ROOT,
                env=env | changes,
                timeout=300,
                preexec_fn=limit if limit_file_bytes else None,
            )

        run.lake = tmp_path / "lake"
        run.database = ch_database
        yield run


def _lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _validations(ch_client, database: str) -> list[tuple]:
    return ch_client.execute(
        "SELECT trade_date, dataset, rows, expectations, failed, critical_failed, skipped "
        f"FROM {database}.quality_validations ORDER BY trade_date, dataset"
    )


def test_ingest_loads_a_good_day(cli, nse_root, ch_client):
    """One good day: fetched, kept in bronze, checked, loaded; exit 0 and one line saying so."""
    day = dt.date(2024, 7, 5)
    done = cli("ingest", "cm_bhavcopy", "--date", day.isoformat())
    assert done.returncode == 0, done.stderr
    (line,) = _lines(done.stdout)
    expected = len(_file_rows(_archive_file(nse_root, day)))
    assert line["dataset"] == "cm_bhavcopy" and line["trade_date"] == day.isoformat()
    assert line["rows"] == expected
    (bronze,) = line["bronze"]
    assert Path(bronze).read_bytes() == _archive_file(nse_root, day).read_bytes()
    assert ch_client.execute(
        f"SELECT trade_date, count() FROM {cli.database}.cm_bhavcopy GROUP BY trade_date"
    ) == [(day, expected)]
    assert [
        (d, name, critical) for d, name, *_, critical, _ in _validations(ch_client, cli.database)
    ] == [(day, "cm_bhavcopy", 0)]


def test_a_day_failing_the_gate_loads_nothing_and_the_range_goes_on(cli, nse_root, ch_client):
    """A blank close fails the gate's critical not-null check: that day loads nothing, keeps its
    bronze and silver, is recorded as failed, and is named with the failed expectation on
    stderr (exit 1); the other days of the range load."""
    done = cli("ingest", "cm_bhavcopy", "--date", "2024-07-03", "--to", "2024-07-05")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    for part in ("cm_bhavcopy", BROKEN.isoformat(), "not_be_null", "column=close"):
        assert part in done.stderr, (part, done.stderr)

    lines = {line["trade_date"]: line for line in _lines(done.stdout)}
    assert sorted(lines) == ["2024-07-03", BROKEN.isoformat(), "2024-07-05"]
    assert "column=close" in lines[BROKEN.isoformat()]["failed"]
    good = {
        day: len(_file_rows(_archive_file(nse_root, day)))
        for day in (dt.date(2024, 7, 3), dt.date(2024, 7, 5))
    }
    assert {
        dt.date.fromisoformat(d): line["rows"] for d, line in lines.items() if "rows" in line
    } == good
    loaded = ch_client.execute(
        f"SELECT trade_date, count() FROM {cli.database}.cm_bhavcopy GROUP BY trade_date"
    )
    assert dict(loaded) == good

    bronze = (
        cli.lake / f"bronze/cm_bhavcopy/trade_date={BROKEN}" / _archive_file(nse_root, BROKEN).name
    )
    assert bronze.read_bytes() == _archive_file(nse_root, BROKEN).read_bytes()
    silver = pl.read_parquet(cli.lake / f"silver/cm_bhavcopy/trade_date={BROKEN}/part-0.parquet")
    assert silver.height == len(_file_rows(_archive_file(nse_root, BROKEN)))
    assert silver["close"].null_count() == 1
    result = json.loads((cli.lake / RESULT).read_text())
    assert "great_expectations" in result
    recorded = [
        (d, critical) for d, _, _, _, _, critical, _ in _validations(ch_client, cli.database)
    ]
    assert recorded == [(dt.date(2024, 7, 3), 0), (BROKEN, 1), (dt.date(2024, 7, 5), 0)]


def test_cli_and_dag_judge_the_same_broken_bytes_alike(
    cli, dag_env, clickhouse_server, ch_client, tmp_path
):
    """The same broken file fails the gate from the command line and in the DAG: the DAG's
    validate task fails and its load never runs, neither loads a row, and both record the same
    validation (the DAG's under its run)."""
    with new_database(clickhouse_server) as cli_database:
        done = cli(
            "ingest",
            "cm_bhavcopy",
            "--date",
            BROKEN.isoformat(),
            CLICKHOUSE_DATABASE=cli_database,
            NSE_LAKE_ROOT=str(tmp_path / "cli_lake"),
        )
        assert done.returncode == 1 and "column=close" in done.stderr
        from_cli = _validations(ch_client, cli_database)
        cli_loaded = ch_client.execute(f"SELECT count() FROM {cli_database}.cm_bhavcopy")

    dag = parse_dag("nse_cm_bhavcopy")
    run = dag.test(logical_date=dt.datetime.combine(BROKEN, dt.time(13, 0), dt.UTC))
    assert state(run) == "failed"
    states = task_states(dag.dag_id, run.run_id)
    assert states["validate_cm_bhavcopy"] == "failed"
    assert states["load_cm_bhavcopy"] == "upstream_failed"
    assert {states[f"{step}_cm_bhavcopy"] for step in ("fetch", "parse")} == {"success"}
    db = dag_env["database"]
    assert ch_client.execute(f"SELECT count() FROM {db}.cm_bhavcopy") == cli_loaded == [(0,)]
    from_dag = [row for row in _validations(ch_client, db) if row[1] == "cm_bhavcopy"]
    assert from_dag == from_cli and from_dag[0][-2] == 1
    assert ch_client.execute(
        f"SELECT run_id FROM {db}.quality_validations WHERE dataset = 'cm_bhavcopy'"
    ) == [(run.run_id,)]
    # The same expectations, judged the same, in the results each kept in its lake.
    verdicts = [
        [
            (o["expectation"], o["kwargs"], o["success"], o["unexpected_count"])
            for o in json.loads((lake / RESULT).read_text())["summary"]["outcomes"]
        ]
        for lake in (tmp_path / "cli_lake", dag_env["lake"])
    ]
    assert verdicts[0] == verdicts[1]
    assert sum(not success for *_, success, _ in verdicts[0]) == 1


def test_parse_out_writes_through_a_temporary_name(cli, nse_root, tmp_path):
    """`parse --out` writes the silver rows; a write that fails (its folder is a file, or the
    file cannot grow) exits 1 naming the path, and leaves no file, or the earlier one whole."""
    source = _archive_file(nse_root, dt.date(2024, 7, 5))
    out = tmp_path / "out" / "day.parquet"
    done = cli("parse", "cm_bhavcopy", str(source), "--date", "2024-07-05", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert pl.read_parquet(out).height == len(_file_rows(source)) == _lines(done.stdout)[0]["rows"]
    kept = out.read_bytes()

    not_a_folder = tmp_path / "a_file"
    not_a_folder.write_text("keep me")
    blocked = not_a_folder / "day.parquet"
    done = cli("parse", "cm_bhavcopy", str(source), "--out", str(blocked))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"cannot write {blocked}" in done.stderr
    assert not_a_folder.read_text() == "keep me"

    other = _archive_file(nse_root, dt.date(2024, 7, 3))
    done = cli(
        "parse", "cm_bhavcopy", str(other), "--out", str(out), limit_file_bytes=len(kept) // 2
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write {out}" in done.stderr
    assert out.read_bytes() == kept
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_members_prints_what_an_index_run_loaded(cli, nse_root):
    """After an index run, `members` prints the index's members on that day from ClickHouse."""
    day = dt.date(2024, 7, 5)
    done = cli("ingest", "index_constituents", "--date", day.isoformat(), "--item", "NIFTY 50")
    assert done.returncode == 0, done.stderr
    text = (nse_root / "content/indices/ind_nifty50list.csv").read_text()
    listed = sorted(row["Symbol"] for row in csv.DictReader(io.StringIO(text)))
    done = cli("members", "NIFTY 50", "--date", day.isoformat())
    assert done.returncode == 0, done.stderr
    assert _lines(done.stdout) == [
        {"index_name": "NIFTY 50", "date": day.isoformat(), "members": listed}
    ]


def test_ingest_without_clickhouse_names_its_address(cli):
    """With nothing listening where ClickHouse should be, `ingest` exits 1 with one message
    naming the address, the dataset and the date, and no traceback."""
    port = free_port()
    done = cli("ingest", "cm_bhavcopy", "--date", "2024-07-05", CLICKHOUSE_PORT=str(port))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (message,) = [line for line in done.stderr.splitlines() if line.strip()]
    for part in (f"127.0.0.1:{port}", "cm_bhavcopy", "2024-07-05"):
        assert part in message, message


def test_an_invalid_setting_is_a_usage_error(cli):
    """A bound set to what is not one (NSE_MAX_BODY_MB=-1) stops the command before any request,
    naming the variable and its value, without a traceback."""
    done = cli("fetch", "cm_bhavcopy", "--date", "2024-07-05", NSE_MAX_BODY_MB="-1")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "Error: NSE_MAX_BODY_MB='-1' is not a valid max_body_bytes" in done.stderr
    assert not cli.lake.exists()
