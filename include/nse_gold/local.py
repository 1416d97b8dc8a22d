"""Running the gold jobs on this machine: the job zip, the calendar file, `spark-submit`, and a
lake of generated history to run them on (tests and benchmarks).

Not shipped to executors: it imports the library and the stand-in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
RUN_SCRIPT = PACKAGE_DIR / "run.py"
#: The zip's package name: the jobs import as `nse_gold` on executors.
PACKAGE = "nse_gold"
#: Modules that run on the warehouse side only and stay out of the zip.
NOT_SHIPPED = frozenset({"datasets.py", "local.py", "publish.py"})
#: Settings for small local runs: no UI, few shuffle partitions, files listed in the driver.
LOCAL_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.log.level": "WARN",
    # List a run's partition files in the driver, not with a Spark job per few dozen paths.
    "spark.sql.sources.parallelPartitionDiscovery.threshold": "100000",
}
#: The driver JVM of a short local run: it compiles less (C1 only), which halves its start-up on
#: two cores, and logs its own warnings to stderr (the job's stdout is its JSON line).
LOCAL_JAVA = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xlog:disable -Xlog:all=warning:stderr"


def build_zip(dest: Path) -> Path:
    """The job modules as a zip for `--py-files`: `nse_gold/<module>.py` at its root."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for module in sorted(PACKAGE_DIR.glob("*.py")):
            if module.name not in NOT_SHIPPED:
                archive.write(module, f"{PACKAGE}/{module.name}")
    return dest


def write_calendar(path: Path, days: Iterable[dt.date]) -> Path:
    """The jobs' calendar file: one ISO date a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{day.isoformat()}\n" for day in sorted(set(days))))
    return path


class SubmitError(RuntimeError):
    def __init__(self, command: list[str], returncode: int, stderr: str) -> None:
        self.returncode, self.stderr = returncode, stderr
        tail = "\n".join(stderr.strip().splitlines()[-30:])
        super().__init__(f"{' '.join(command[:8])} ... exited {returncode}:\n{tail}")


def spark_env() -> dict[str, str]:
    """The environment `spark-submit` needs from this virtualenv, without PYTHONPATH: the jobs
    must come from the zip."""
    import pyspark

    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return env | {
        "SPARK_HOME": str(Path(pyspark.__file__).parent),
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    }


def submit(
    job: str | list[str],
    start: dt.date,
    end: dt.date,
    lake_root: Path,
    package: Path,
    *,
    calendar: Path | None = None,
    master: str = "local[2]",
    expect_master: str | None = None,
    conf: dict[str, str] | None = None,
    class_archive: Path | None = None,
) -> dict:
    """`spark-submit` one job (or several, in one application) with only `package` on its path;
    its JSON line, parsed (a list of them, one per job, for a list of jobs).

    With `class_archive`, the driver maps Spark's classes from that class-data archive instead
    of loading and verifying them (a third of a short run's start-up); the first submission
    that finds none writes it as it exits, the others run without it meanwhile.
    """
    java, dumping = LOCAL_JAVA, None
    if class_archive is not None:
        if class_archive.exists():
            java += f" -XX:SharedArchiveFile={class_archive}"
        elif (dumping := _claim(class_archive)) is not None:
            java += f" -XX:ArchiveClassesAtExit={dumping}"
    command = [str(Path(sys.executable).parent / "spark-submit"), "--master", master]
    command += ["--py-files", str(package)]
    for key, value in (LOCAL_CONF | {"spark.driver.extraJavaOptions": java} | (conf or {})).items():
        command += ["--conf", f"{key}={value}"]
    jobs = [job] if isinstance(job, str) else list(job)
    command += [str(RUN_SCRIPT), *jobs, "--start", start.isoformat(), "--end", end.isoformat()]
    command += ["--lake-root", str(lake_root)]
    if calendar is not None:
        command += ["--calendar", str(calendar)]
    if expect_master is not None:
        command += ["--expect-master", expect_master]
    try:
        done = subprocess.run(  # noqa: S603 — an argument list, no shell: the venv's spark-submit
            command, env=spark_env(), capture_output=True, text=True, cwd=tempfile.gettempdir()
        )
        if dumping is not None and done.returncode == 0 and dumping.exists():
            for stale in class_archive.parent.glob("classes-*.jsa"):
                stale.unlink()
            os.replace(dumping, class_archive)
    finally:
        if dumping is not None:
            dumping.unlink(missing_ok=True)
            _lock(class_archive).unlink(missing_ok=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or len(lines) != len(jobs):
        raise SubmitError(command, done.returncode, done.stderr + done.stdout)
    documents = [json.loads(line) for line in lines]
    return documents[0] if isinstance(job, str) else documents


def class_archive() -> Path:
    """This checkout's class-data archive for local drivers, named by the jars and the Java it
    is made from: a JVM refuses an archive of other files (a rebuilt virtualenv), so a new one
    is made then."""
    import pyspark

    jars = Path(pyspark.__file__).resolve().parent / "jars"
    java = Path(shutil.which("java") or "java").resolve()
    made_from = [(str(p), p.stat().st_mtime_ns) for p in (jars, java) if p.exists()]
    name = hashlib.sha256(repr(made_from).encode()).hexdigest()[:16]
    return PACKAGE_DIR.parents[1] / ".local" / "spark" / f"classes-{name}.jsa"


def _lock(archive: Path) -> Path:
    return archive.with_name(f".{archive.name}.lock")


def _claim(archive: Path) -> Path | None:
    """Where this submission may write `archive` (to rename it into place after), holding its
    lock; None while another live process holds it."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock(archive)
    for _ in range(2):
        try:
            with open(lock, "x") as f:
                f.write(str(os.getpid()))
            return archive.with_name(f".{archive.name}.{os.getpid()}.tmp")
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return None
            except (ProcessLookupError, ValueError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # left by a process that died
    return None


# ---- a lake of generated history ---------------------------------------------------------------
CASH = ("cm_bhavcopy", "cm_delivery")
DEALS = ("bulk_deals", "block_deals")


def _silver_range(args: tuple) -> list[dt.date]:
    """Generate NSE's files for one range of days and parse each day into silver, as the
    pipeline would (the first published candidate file, deals from the history API)."""
    from include.nse import pipeline, sources
    from include.nse.lake import Lake
    from include.nse_standin.generate import generate
    from include.nse_standin.server import api_file

    files, lake_root, start, end, datasets, holidays, symbols = args
    days = generate(
        start, end, files, symbols=symbols, datasets=datasets, holidays=holidays
    ).trading_days
    lake = Lake(lake_root)
    for name in datasets:
        dataset = sources.get(name)
        publication = dataset.publication
        for day in days:
            if name in DEALS:
                path, params = publication.history_request(day)
                source = api_file(files, path.removeprefix("/api/"), params)
            else:
                source = next(
                    files / p.lstrip("/")
                    for p in publication.paths(day)
                    if (files / p.lstrip("/")).exists()
                )
            lake.write_silver(
                name, day, pipeline.parse_file(dataset, source.read_bytes(), source.name, day)
            )
    return days


def generated_lake(
    lake_root: Path,
    files: Path,
    start: dt.date,
    end: dt.date,
    *,
    symbols: int,
    fo: tuple[dt.date, dt.date] | None = None,
    deals: tuple[dt.date, dt.date] | None = None,
    workers: int = 2,
) -> list[dt.date]:
    """Silver from the stand-in's generated NSE files, parsed by the library: CM bhavcopy and
    delivery over [start, end], F&O bhavcopy over `fo`, bulk and block deals over `deals`.
    Holidays are NSE's (`include.nse.calendar`); returns the trading days, the lake's calendar.
    Ranges are generated and parsed in `workers` processes, each into its own files folder."""
    from include.nse.calendar import load_calendar

    trading = load_calendar().trading_days(start, end)
    weekdays = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    holidays = [d for d in weekdays if d.weekday() < 5 and d not in set(trading)]
    tasks = []
    for datasets, span in ((CASH, (start, end)), (("fo_bhavcopy",), fo), (DEALS, deals)):
        days = [d for d in trading if span and span[0] <= d <= span[1]]
        step = max(1, -(-len(days) // workers))
        for n, i in enumerate(range(0, len(days), step)):
            chunk = days[i : i + step]
            folder = files / f"{datasets[0]}-{n}"
            tasks.append((folder, lake_root, chunk[0], chunk[-1], datasets, holidays, symbols))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        made = sorted({day for days in pool.map(_silver_range, tasks) for day in days})
    return made
