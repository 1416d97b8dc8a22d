"""The benchmarks' reporting: results, their table, JSON and chart, and the child processes."""

from __future__ import annotations

import json
import subprocess
import sys

from bench.results import Result, table, write_chart, write_json

PARSE = Result(
    name="parse x",
    figure=30.0,
    unit="ms",
    baseline=10.0,
    baseline_name="plain read",
    higher_is_better=False,
    target="under 20 ms",
    met=False,
    peak_mib=123.4,
    note="2200 rows",
)
NO_BASELINE = Result("run y", 12.5, "s", None, "", False, "under 60 s", True)


def test_ratio_is_figure_over_baseline():
    """ratio is figure / baseline, None without a baseline."""
    assert PARSE.ratio == 3.0
    assert NO_BASELINE.ratio is None


def test_round_trip_through_a_dict():
    """to_dict carries the ratio; from_dict rebuilds the same result from it."""
    data = json.loads(json.dumps(PARSE.to_dict()))
    assert data["ratio"] == 3.0
    assert Result.from_dict(data) == PARSE


def test_table_has_a_row_per_result():
    """Each row: figure with unit, baseline with its name, ratio, peak, target and verdict."""
    lines = table([PARSE, NO_BASELINE]).splitlines()
    assert len(lines) == 4
    parse, run = lines[2], lines[3]
    for text in ("parse x", "30 ms", "plain read 10 ms", "3x", "123", "under 20 ms", "NOT MET"):
        assert text in parse
    assert "12.5 s" in run and run.rstrip().endswith("met")


def test_json_and_chart_are_written(tmp_path):
    """bench.json holds what it was given and every result; the chart is a PNG."""
    write_json(tmp_path / "bench.json", [PARSE, NO_BASELINE], {"crashed": {"z": "exit 1"}})
    body = json.loads((tmp_path / "bench.json").read_text())
    assert body["crashed"] == {"z": "exit 1"}
    assert [r["name"] for r in body["results"]] == ["parse x", "run y"]
    write_chart(tmp_path / "bench.png", [PARSE, NO_BASELINE], "title")
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_peak_memory_of_a_child():
    """The child's peak resident memory comes back with its exit status."""
    from bench.__main__ import _wait

    grow = "b = bytearray(150 * 2**20); b[:: 4096] = b'x' * len(b[:: 4096])"
    status, usage = _wait(subprocess.Popen([sys.executable, "-c", grow]), timeout=60)
    assert status == 0
    assert usage.ru_maxrss / 1024 > 150


def test_a_child_past_its_time_is_interrupted():
    """A child still running at its deadline gets SIGINT, and its non-zero status is returned."""
    from bench.__main__ import _wait

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    status, _ = _wait(sleeper, timeout=0.5)
    assert status != 0
    assert sleeper.returncode == status


def test_unknown_benchmark_is_refused():
    """An unknown name exits 2 and lists the known benchmarks."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "no_such_bench"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "no_such_bench" in done.stderr and "dag_import" in done.stderr


def test_a_crashed_child_is_reported(tmp_path):
    """A child that exits non-zero gives no results and says why, for the table and the exit."""
    from bench.__main__ import run_child

    results, crash = run_child("no_such_bench", tmp_path, tmp_path)
    assert results == []
    assert crash == "exit status 2"
