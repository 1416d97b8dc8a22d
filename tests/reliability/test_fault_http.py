"""Faults on the wire: what NSE's hosts (or something posing as them) can send, driven for real.

Each case serves the fault over loopback (the stand-in, or `hostile.Hostile` for what the
stand-in cannot do), runs the gated chain (in this process, or `python -m include.nse` in a child
whose peak memory the kernel reports), and checks three things: nothing lost (bronze holds what
NSE sent, ClickHouse every row it should), nothing duplicated (exact counts after the retries and
a rerun), and a clear error or skip reason naming the URL and the bound that tripped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import brotli
import pytest

from include.nse import history, pipeline, sources
from include.nse.lake import MANIFEST, Lake
from include.nse.sources.base import Request
from include.nse.warehouse import Warehouse, connector
from include.nse_standin.generate import generate
from include.nse_standin.server import StandIn, api_file
from tests.helpers import standin_settings, unzipped, zipped
from tests.reliability.hostile import MIB, Hostile, Reply, gzip_zeros, run_cli, zip_bomb

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]

DAY = dt.date(2024, 7, 8)
BHAVCOPY = sources.get("cm_bhavcopy").publication.paths(DAY)[-1]
DELIVERY = sources.get("cm_delivery").publication.paths(DAY)[-1]
#: Days of bulk deals that come from NSE's API (the archive's bulk.csv holds 2024-07-08).
API_DAYS = [dt.date(2024, 7, 3), dt.date(2024, 7, 4), dt.date(2024, 7, 5)]
#: What a memory-bound case may add to a clean run's peak: the bound (32 MiB for cm_delivery)
#: once or twice over while it is read, and change. Without the bounds these cases go past 1 GiB.
MEMORY_SLACK_MIB = 100


@pytest.fixture(scope="module")
def nse_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nse")
    generate(
        dt.date(2024, 7, 1),
        DAY,
        root,
        symbols=60,
        datasets=["cm_bhavcopy", "cm_delivery", "bulk_deals", "holidays"],
    )
    return root


def _served(root: Path, path: str) -> bytes:
    return (root / path.lstrip("/")).read_bytes()


def _rows(raw: bytes) -> int:
    """Data lines of a CSV as NSE serves it (zipped or not): every line but the header."""
    _, data = unzipped(raw)
    return sum(1 for line in data.splitlines()[1:] if line.strip())


def _bronze(lake: Path, dataset: str, day: dt.date) -> dict[str, bytes]:
    """The files bronze keeps for a date (manifest, lock and superseded copies aside)."""
    folder = lake / "bronze" / dataset / f"trade_date={day}"
    if not folder.exists():
        return {}
    assert folder.is_dir(), f"{folder} is not a folder"
    return {
        p.name: p.read_bytes()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(("_", "."))
    }


def _manifest(lake: Path, dataset: str, day: dt.date) -> list[dict]:
    return Lake(lake).bronze_manifest(dataset, day)


def _count(ch_client, database: str, table: str, day: dt.date | None = None) -> int:
    where = " WHERE trade_date = %(d)s" if day else ""
    return ch_client.execute(f"SELECT count() FROM {database}.{table}{where}", {"d": day})[0][0]


@pytest.fixture()
def warehouse(clickhouse_server, ch_database):
    return Warehouse(connector(**clickhouse_server), ch_database)


@pytest.fixture()
def standin(nse_root):
    with StandIn(nse_root) as server:
        yield server


@pytest.fixture()
def hostile(nse_root):
    with Hostile(nse_root) as server:
        yield server


def _context(url: str, lake: Path, warehouse, **changes) -> pipeline.Context:
    return pipeline.Context(standin_settings(url, lake_root=lake, **changes), warehouse, "test")


def _ingest(ctx, dataset: str, *days: dt.date) -> list[history.Outcome]:
    return history.load_days(ctx, sources.get(dataset), list(days))


@pytest.fixture()
def cli_env(tmp_path, clickhouse_server, ch_database):
    """The environment of `python -m include.nse` against a server: give it the server's URL."""

    def env(url: str, **changes: str) -> dict:
        return {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
            "NSE_LAKE_ROOT": str(tmp_path / "lake"),
            "NSE_ARCHIVE_BASE_URL": url,
            "NSE_API_BASE_URL": url,
            "NSE_HTTP_BACKOFF_INITIAL": "0.01",
            "NSE_HTTP_BACKOFF_MAX": "0.05",
            "NSE_ARCHIVE_RATE": "200",
            "CLICKHOUSE_HOST": clickhouse_server["host"],
            "CLICKHOUSE_PORT": str(clickhouse_server["port"]),
            "CLICKHOUSE_USER": clickhouse_server["user"],
            "CLICKHOUSE_PASSWORD": clickhouse_server["password"],
            "CLICKHOUSE_DATABASE": ch_database,
            **changes,
        }

    env.lake = tmp_path / "lake"
    return env


@pytest.fixture(scope="module")
def baseline(nse_root, tmp_path_factory):
    """Peak memory of a clean `fetch` and a clean `parse` of the day, in child processes: what a
    bounded fault is measured against."""
    lake = tmp_path_factory.mktemp("baseline")
    with Hostile(nse_root) as nse:
        env = {**os.environ, "NSE_LAKE_ROOT": str(lake), "NSE_ARCHIVE_BASE_URL": nse.url}
        fetched = run_cli("fetch", "cm_bhavcopy", "--date", DAY.isoformat(), env=env)
    assert fetched.returncode == 0, fetched.stderr
    (bronze,) = json.loads(fetched.stdout)["files"]
    parsed = run_cli("parse", "cm_bhavcopy", bronze["path"], env=env)
    assert parsed.returncode == 0, parsed.stderr
    return {"fetch": fetched.peak_mib, "parse": parsed.peak_mib}


def _loads_once(url, lake, warehouse, ch_client, dataset: str, root: Path) -> None:
    """Once NSE serves the day's file as it should, an ingest keeps it in bronze as served and
    loads its rows, and a rerun loads nothing more."""
    path = DELIVERY if dataset == "cm_delivery" else BHAVCOPY
    ctx = _context(url, lake, warehouse)
    (loaded,) = _ingest(ctx, dataset, DAY)
    assert loaded.status == "loaded", loaded.error
    (again,) = _ingest(ctx, dataset, DAY)
    assert again.status == "skipped"
    served = _served(root, path)
    assert _bronze(lake, dataset, DAY) == {Path(path).name: served}
    assert _count(ch_client, warehouse.database, dataset) == loaded.rows == _rows(served)


def _zeros(total: int):
    def chunks():
        for _ in range(total // MIB):
            yield bytes(MIB)

    return chunks


# ---- bounded memory ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "reply", "refusal"),
    [
        (
            "server declares a 2 GB Content-Length",
            Reply(200, _zeros(2 << 30), {"Content-Type": "text/csv"}, length=2 << 30),
            "declares a body of 2 GiB (2147483648 bytes, Content-Length), over the 32 MiB "
            "allowed for cm_delivery; not read",
        ),
        (
            "oversize body without a length (chunked)",
            Reply(200, _zeros(1 << 30), {"Content-Type": "text/csv"}, length=None),
            "body over the 32 MiB allowed for cm_delivery; stopped after",
        ),
    ],
    ids=["declared_2gb", "chunked_1gb"],
)
def test_oversize_body(
    name, reply, refusal, hostile, nse_root, cli_env, baseline, warehouse, fault, ch_client
):
    """An oversized body is refused at the dataset's bound, before or while it is read: the
    fetch exits 1 naming the URL and the bound, bronze keeps nothing of it, and the child's
    memory stays near a clean run's. Once NSE serves the file, one ingest loads it once."""
    hostile.script(DELIVERY, reply)
    env = cli_env(hostile.url)
    done = run_cli("fetch", "cm_delivery", "--date", DAY.isoformat(), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{hostile.url}{DELIVERY}: {refusal}" in done.stderr, done.stderr
    assert done.peak_mib < baseline["fetch"] + MEMORY_SLACK_MIB, (done.peak_mib, baseline)
    assert len(hostile.requests(DELIVERY)) == 1  # a bound is not retried
    assert _bronze(cli_env.lake, "cm_delivery", DAY) == {}

    hostile.script(DELIVERY, Reply(200, _served(nse_root, DELIVERY), {"Content-Type": "text/csv"}))
    _loads_once(hostile.url, cli_env.lake, warehouse, ch_client, "cm_delivery", nse_root)
    fault(name, outcome=f"refused: {refusal[:48]}...", peak_mib=done.peak_mib)


@pytest.mark.parametrize("coding", ["gzip", "br"])
def test_compression_bomb(
    coding, hostile, nse_root, cli_env, baseline, warehouse, fault, ch_client
):
    """A small encoded body that decodes to a gigabyte (gzip) or 64 MiB (brotli) is stopped at
    the dataset's bound as it decodes: exit 1 naming the URL, the bound and the encoding, nothing
    in bronze, memory near a clean run's."""
    bomb = gzip_zeros(1 << 30) if coding == "gzip" else brotli.compress(bytes(64 * MIB), quality=5)
    headers = {"Content-Type": "text/csv", "Content-Encoding": coding}
    hostile.script(DELIVERY, Reply(200, bomb, headers))
    env = cli_env(hostile.url)
    done = run_cli("fetch", "cm_delivery", "--date", DAY.isoformat(), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    message = f"{hostile.url}{DELIVERY}: body over the 32 MiB allowed for cm_delivery once"
    assert f"{message} {coding} decoded" in done.stderr, done.stderr
    assert done.peak_mib < baseline["fetch"] + MEMORY_SLACK_MIB, (done.peak_mib, baseline)
    assert _bronze(cli_env.lake, "cm_delivery", DAY) == {}
    hostile.script(DELIVERY, Reply(200, _served(nse_root, DELIVERY), {"Content-Type": "text/csv"}))
    _loads_once(hostile.url, cli_env.lake, warehouse, ch_client, "cm_delivery", nse_root)
    fault(
        f"{coding} bomb ({len(bomb):,} bytes -> {'1 GiB' if coding == 'gzip' else '64 MiB'})",
        outcome=f"refused once {coding} decoded past 32 MiB",
        peak_mib=done.peak_mib,
    )


def test_brotli_encoded_body_lands_decoded(
    standin, nse_root, tmp_path, warehouse, fault, ch_client
):
    """NSE's brotli-encoded CSV is accepted: bronze keeps the file as NSE serves it (the CSV,
    its Content-Encoding recorded), every row lands once, and a rerun changes nothing."""
    ctx = _context(standin.url, tmp_path / "lake", warehouse)
    (loaded,) = _ingest(ctx, "cm_delivery", DAY)
    assert loaded.status == "loaded", loaded.error
    assert standin.request_log[-1]["headers"]["accept-encoding"] == "gzip, deflate, br"
    served = _served(nse_root, DELIVERY)
    assert _bronze(tmp_path / "lake", "cm_delivery", DAY) == {Path(DELIVERY).name: served}
    (entry,) = _manifest(tmp_path / "lake", "cm_delivery", DAY)
    assert entry["headers"]["content-encoding"] == "br" and entry["size"] == len(served)
    assert int(entry["headers"]["content-length"]) < len(served)  # it came compressed
    expected = _rows(served)
    (again,) = _ingest(ctx, "cm_delivery", DAY)
    assert again.status == "skipped"
    assert _count(ch_client, warehouse.database, "cm_delivery", DAY) == loaded.rows == expected
    fault("brotli-encoded body", outcome=f"accepted: bronze holds the decoded CSV, {expected} rows")


@pytest.fixture(scope="module")
def bombs() -> dict[str, bytes]:
    member = Path(BHAVCOPY).name.removesuffix(".zip")
    return {
        "honest": zip_bomb(member, 1 << 30),
        # Declares 50 MiB, within the size and ratio bounds: only reading finds it out.
        "lying": zip_bomb(member, 1 << 30, declared=50 * MIB),
    }


@pytest.mark.parametrize("kind", ["honest", "lying"])
def test_zip_bomb(kind, bombs, hostile, nse_root, cli_env, baseline, warehouse, fault, ch_client):
    """A 1 MB ZIP whose member inflates to a gigabyte: bronze keeps it as served; parsing it
    refuses it on its declared size before inflating, or (declaring less) stops at the declared
    size and refuses it on its CRC, naming the file and the member, with memory near a clean
    parse's; the day loads nothing. Once NSE serves the real file, the day loads once."""
    bomb = bombs[kind]
    hostile.script(BHAVCOPY, Reply(200, bomb, {"Content-Type": "application/zip"}))
    env = cli_env(hostile.url)
    fetched = run_cli("fetch", "cm_bhavcopy", "--date", DAY.isoformat(), env=env)
    assert fetched.returncode == 0, fetched.stderr
    name = Path(BHAVCOPY).name
    assert _bronze(cli_env.lake, "cm_bhavcopy", DAY) == {name: bomb}
    (kept,) = json.loads(fetched.stdout)["files"]
    done = run_cli("parse", "cm_bhavcopy", kept["path"], env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    if kind == "honest":
        assert f"{name}:{name.removesuffix('.zip')}: declares 1073741824 bytes" in done.stderr
    else:
        assert f"{name}: expected a readable ZIP: Bad CRC-32" in done.stderr, done.stderr
    assert done.peak_mib < baseline["parse"] + MEMORY_SLACK_MIB, (done.peak_mib, baseline)

    ctx = _context(hostile.url, cli_env.lake, warehouse)
    (failed,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert failed.status == "failed" and name in failed.error
    assert _count(ch_client, warehouse.database, "cm_bhavcopy") == 0
    hostile.script(BHAVCOPY, Reply(200, _served(nse_root, BHAVCOPY)))
    _loads_once(hostile.url, cli_env.lake, warehouse, ch_client, "cm_bhavcopy", nse_root)
    fault(
        f"ZIP bomb, {kind} sizes ({len(bomb) // 1024} KiB -> 1 GiB)",
        outcome="refused before inflating" if kind == "honest" else "refused on reading (CRC)",
        peak_mib=done.peak_mib,
    )


@pytest.mark.parametrize(
    ("name", "members", "refusal"),
    [
        (
            "ZIP with two members",
            {"a.csv": "FIRST", "b.csv": "FIRST"},
            ": expected a ZIP holding one CSV, found a.csv, b.csv",
        ),
        (
            "ZIP member escaping its folder (../)",
            {"../../../escaped.csv": "FIRST"},
            ":../../../escaped.csv: member name leaves its folder",
        ),
    ],
    ids=["two_members", "escaping_member"],
)
def test_unexpected_zip(
    name, members, refusal, hostile, nse_root, tmp_path, warehouse, fault, ch_client
):
    """A ZIP NSE would not send fails its day, named with the file and what was wrong; bronze
    keeps it as served, nothing is written outside the lake's folders, nothing loads."""
    _, csv = unzipped(_served(nse_root, BHAVCOPY))
    bad = zipped({member: csv for member in members})
    hostile.script(BHAVCOPY, Reply(200, bad, {"Content-Type": "application/zip"}))
    lake = tmp_path / "lake"
    ctx = _context(hostile.url, lake, warehouse)
    (outcome,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert outcome.status == "failed"
    assert f"{Path(BHAVCOPY).name}{refusal}" in outcome.error, outcome.error
    assert _bronze(lake, "cm_bhavcopy", DAY) == {Path(BHAVCOPY).name: bad}
    assert not list(tmp_path.rglob("escaped.csv"))
    assert {p.name for p in lake.iterdir()} <= {"bronze", "silver", "quality"}
    assert _count(ch_client, warehouse.database, "cm_bhavcopy") == 0
    assert (
        _count(ch_client, warehouse.database, "backfill_days") == 1
    )  # the failure is recorded once
    fault(name, outcome=f"day failed: {refusal.lstrip(': ')}")


# ---- bounded time --------------------------------------------------------------------------------
def test_trickling_body_hits_the_deadline(hostile, nse_root, cli_env, warehouse, fault, ch_client):
    """A body trickling a byte every half second never trips the 5 s read timeout; the 2 s
    deadline of each download does: two attempts, then exit 1 naming the URL and the deadline,
    long before the trickle would end (hours). Nothing is kept; a rerun once NSE is fast loads
    the day once."""
    served = _served(nse_root, DELIVERY)
    hostile.script(DELIVERY, Reply(200, served, {"Content-Type": "text/csv"}, trickle=0.5))
    env = cli_env(
        hostile.url, NSE_HTTP_TIMEOUT="5", NSE_HTTP_DEADLINE="2", NSE_HTTP_MAX_ATTEMPTS="2"
    )
    started = time.monotonic()
    done = run_cli("fetch", "cm_delivery", "--date", DAY.isoformat(), env=env, timeout=60)
    seconds = time.monotonic() - started
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "gave up after 2 attempts" in done.stderr
    assert "not received in full within the 2 s allowed for a download" in done.stderr
    assert len(hostile.requests(DELIVERY)) == 2
    assert _bronze(cli_env.lake, "cm_delivery", DAY) == {}

    hostile.script(DELIVERY, Reply(200, served, {"Content-Type": "text/csv"}))
    _loads_once(hostile.url, cli_env.lake, warehouse, ch_client, "cm_delivery", nse_root)
    fault(
        "body trickling a byte every 0.5 s (read timeout 5 s)",
        outcome=f"gave up at the 2 s deadline, twice; exit 1 after {seconds:.0f} s",
    )


# ---- redirects -----------------------------------------------------------------------------------
def test_redirect_to_another_host_is_not_followed(
    hostile, nse_root, tmp_path, warehouse, fault, ch_client
):
    """A redirect to a host that is not NSE's is refused without a request to it; the day fails
    naming both URLs; bronze keeps nothing; once NSE answers itself, the day loads once."""
    target = f"{hostile.other_url}{BHAVCOPY}"
    hostile.script(BHAVCOPY, Reply(302, headers={"Location": target}))
    lake = tmp_path / "lake"
    ctx = _context(hostile.url, lake, warehouse)
    (outcome,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert outcome.status == "failed"
    assert f"{hostile.url}{BHAVCOPY}: redirected to {target}, which is not NSE's host" in (
        outcome.error
    )
    assert [e["host"] for e in hostile.log] == [f"127.0.0.1:{hostile.port}"]
    assert _bronze(lake, "cm_bhavcopy", DAY) == {}

    hostile.script(BHAVCOPY, Reply(200, _served(nse_root, BHAVCOPY)))
    (loaded,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert loaded.status == "loaded"
    expected = _rows(_served(nse_root, BHAVCOPY))
    assert _count(ch_client, warehouse.database, "cm_bhavcopy", DAY) == expected
    fault("redirect to another host", outcome="refused, not followed; day failed naming it")


def test_redirect_to_a_url_without_a_file_name(
    hostile, nse_root, tmp_path, warehouse, fault, ch_client
):
    """A redirect to `/content/cm/` (no file name) never reaches the lake: the day fails naming
    both URLs, the date's bronze folder stays a folder, and the next fetch of the date works."""
    hostile.script(BHAVCOPY, Reply(302, headers={"Location": "/content/cm/"}))
    hostile.script(
        "/content/cm/", Reply(200, b"SYMBOL,SERIES\nABC,EQ\n", {"Content-Type": "text/csv"})
    )
    lake = tmp_path / "lake"
    ctx = _context(hostile.url, lake, warehouse)
    (outcome,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert outcome.status == "failed"
    assert (
        f"{hostile.url}/content/cm/ (redirected from {hostile.url}{BHAVCOPY}): the answer's URL "
        "names no usable file"
    ) in outcome.error
    folder = lake / "bronze" / "cm_bhavcopy" / f"trade_date={DAY}"
    assert not folder.exists() or folder.is_dir()
    assert _bronze(lake, "cm_bhavcopy", DAY) == {}

    hostile.script(BHAVCOPY, Reply(200, _served(nse_root, BHAVCOPY)))
    (loaded,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert loaded.status == "loaded" and folder.is_dir()
    assert _bronze(lake, "cm_bhavcopy", DAY) == {Path(BHAVCOPY).name: _served(nse_root, BHAVCOPY)}
    expected = _rows(_served(nse_root, BHAVCOPY))
    assert _count(ch_client, warehouse.database, "cm_bhavcopy", DAY) == expected
    fault("redirect to a URL with an empty file name", outcome="refused before the lake")


def test_redirect_loop(hostile, nse_root, cli_env, warehouse, fault, ch_client):
    """Two paths redirecting to each other: `fetch` exits 1 with one line naming the loop, after
    two requests (not retried), and bronze keeps nothing."""
    loop = "/content/cm/elsewhere.csv.zip"
    hostile.script(BHAVCOPY, Reply(302, headers={"Location": loop}))
    hostile.script(loop, Reply(302, headers={"Location": BHAVCOPY}))
    env = cli_env(hostile.url)
    done = run_cli("fetch", "cm_bhavcopy", "--date", DAY.isoformat(), env=env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    urls = [f"{hostile.url}{p}" for p in (BHAVCOPY, loop, BHAVCOPY)]
    assert line == f"Error: cm_bhavcopy {DAY}: {urls[0]}: redirect loop: {' -> '.join(urls)}"
    assert [e["path"] for e in hostile.log] == [BHAVCOPY, loop]
    assert _bronze(cli_env.lake, "cm_bhavcopy", DAY) == {}
    hostile.script(BHAVCOPY, Reply(200, _served(nse_root, BHAVCOPY)))
    _loads_once(hostile.url, cli_env.lake, warehouse, ch_client, "cm_bhavcopy", nse_root)
    fault("redirect loop", outcome="exit 1: redirect loop named, no traceback")


# ---- NSE's bad days: sessions, throttling, bursts ------------------------------------------------
def _holidays(root: Path) -> int:
    document = json.loads(api_file(root, "holiday-master", {"type": "trading"}).read_text())
    return sum(len(entries) for entries in document.values())


def test_cookie_warmup_refused_then_granted(
    standin, nse_root, tmp_path, warehouse, fault, ch_client
):
    """Both warm-up pages refuse cookies on the first attempt; the retry's warm-up gets them and
    the API answers. Every holiday lands once, also after a rerun of the same day."""
    standin.add_fault("refuse_cookies", "*", times=2)
    ctx = _context(standin.url, tmp_path / "lake", warehouse)
    dataset = sources.get("holidays")
    done = pipeline.run(ctx, dataset, Request(DAY))
    assert [(e["path"], e["status"]) for e in standin.request_log] == [
        ("/", 403),
        ("/option-chain", 403),
        ("/", 200),
        ("/api/holiday-master", 200),
    ]
    expected = _holidays(nse_root)
    assert done["load"]["rows"] == expected
    pipeline.run(ctx, dataset, Request(DAY))
    assert _count(ch_client, warehouse.database, "holidays") == expected
    fault("cookie warm-up refused, then granted", outcome=f"session on retry; {expected} rows")


def test_401_mid_session_renews_it(standin, nse_root, tmp_path, warehouse, fault, ch_client):
    """Past days of bulk deals come from the API in one session; NSE ends it after the first
    day (401). The client warms up again and goes on: each day's deals land once."""
    ctx = _context(standin.url, tmp_path / "lake", warehouse)
    served = {
        day: json.loads(
            api_file(
                nse_root,
                "historicalOR/bulk-block-short-deals",
                {"optionType": "bulk_deals", "from": f"{day:%d-%m-%Y}", "to": f"{day:%d-%m-%Y}"},
            ).read_text()
        )["data"]
        for day in API_DAYS
    }
    dataset = sources.get("bulk_deals")

    def chain(day: dt.date, client) -> dict:
        fetched = pipeline.fetch(ctx, dataset, Request(day), client=client)
        parsed = pipeline.parse(ctx, dataset, day, fetched)
        return pipeline.load(ctx, dataset, pipeline.validate(ctx, dataset, parsed))

    with ctx.client() as client:
        for day in API_DAYS:
            chain(day, client)
            if day == API_DAYS[0]:
                standin.add_fault("expire_session", "/api/*")
        chain(API_DAYS[-1], client)  # a rerun of the last day
    api = [e["status"] for e in standin.request_log if e["path"].startswith("/api/")]
    assert api == [200, 401, 200, 200, 200]
    assert [e["path"] for e in standin.request_log].count("/") == 2  # warmed up again, once
    counts = dict(
        ch_client.execute(
            f"SELECT trade_date, count() FROM {warehouse.database}.bulk_deals GROUP BY trade_date"
        )
    )
    assert counts == {day: len(rows) for day, rows in served.items()}
    fault("401 mid-session", outcome="session renewed; every day loaded once")


def test_throttled_empty_bodies_are_retried(
    standin, nse_root, tmp_path, warehouse, fault, ch_client
):
    """`{}` twice and an empty 200 once are NSE throttling, not files: retried until the CSV
    comes; bronze keeps one copy, the rows land once, and a rerun adds none."""
    standin.add_fault("throttle_empty_json", DELIVERY, times=2)
    standin.add_fault("empty_body", DELIVERY)
    ctx = _context(standin.url, tmp_path / "lake", warehouse)
    (loaded,) = _ingest(ctx, "cm_delivery", DAY)
    assert loaded.status == "loaded", loaded.error
    assert [e["fault"] for e in standin.request_log] == [
        "throttle_empty_json",
        "throttle_empty_json",
        "empty_body",
        None,
    ]
    served = _served(nse_root, DELIVERY)
    assert _bronze(tmp_path / "lake", "cm_delivery", DAY) == {Path(DELIVERY).name: served}
    (again,) = _ingest(ctx, "cm_delivery", DAY)
    assert again.status == "skipped"
    assert len(_manifest(tmp_path / "lake", "cm_delivery", DAY)) == 1
    assert _count(ch_client, warehouse.database, "cm_delivery", DAY) == _rows(served)
    fault("throttling: {} twice, then an empty 200", outcome="retried; loaded once")


@pytest.mark.parametrize(
    ("name", "statuses"),
    [("429 burst then success", [429, 429, 429]), ("5xx burst then success", [500, 502, 503])],
    ids=["429", "5xx"],
)
def test_burst_then_success(
    name, statuses, standin, nse_root, tmp_path, warehouse, fault, ch_client
):
    """A burst of refusals is retried with backoff until the file comes: one bronze copy (one
    manifest entry), the rows once, and a rerun skips the day without a request."""
    for status in statuses:
        standin.add_fault("status", BHAVCOPY, status=status)
    lake = tmp_path / "lake"
    ctx = _context(standin.url, lake, warehouse)
    (loaded,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert loaded.status == "loaded", loaded.error
    assert [e["status"] for e in standin.request_log] == [*statuses, 200]
    served = _served(nse_root, BHAVCOPY)
    assert _bronze(lake, "cm_bhavcopy", DAY) == {Path(BHAVCOPY).name: served}
    (again,) = _ingest(ctx, "cm_bhavcopy", DAY)
    assert again.status == "skipped" and len(standin.request_log) == len(statuses) + 1
    assert len(_manifest(lake, "cm_bhavcopy", DAY)) == 1
    assert (lake / "bronze" / "cm_bhavcopy" / f"trade_date={DAY}" / MANIFEST).is_file()
    assert _count(ch_client, warehouse.database, "cm_bhavcopy", DAY) == _rows(served)
    fault(name, outcome=f"retried {len(statuses)} times; loaded once")
