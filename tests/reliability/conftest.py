"""The fault-injection suite's record: each case states its fault and what came of it.

A case asks for the `fault` fixture and calls it once, after its assertions:

    fault("server declares a 2 GB Content-Length", outcome="refused: body over 64 MiB",
          lost=0, duplicated=0, peak_mib=41.2)

`lost` and `duplicated` are the rows the case counted (they are asserted to be 0 by the case
itself, then recorded); `peak_mib` where memory is what the fault threatens. At the end of the
run the table of every recorded fault is printed, and written as JSON to
`.local/reliability.json` for the record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECORDS: list[dict] = []
OUT = Path(__file__).resolve().parents[2] / ".local" / "reliability.json"


@pytest.fixture()
def fault(request):
    recorded: list[dict] = []

    def record(
        name: str, outcome: str, lost: int = 0, duplicated: int = 0, peak_mib: float | None = None
    ) -> None:
        if recorded:
            raise AssertionError(f"{request.node.nodeid} records its fault twice")
        entry = {
            "case": request.node.nodeid.split("::", 1)[-1],
            "fault": name,
            "outcome": outcome,
            "lost": lost,
            "duplicated": duplicated,
            "peak_mib": peak_mib,
        }
        recorded.append(entry)
        RECORDS.append(entry)

    yield record
    report = getattr(request.node, "call_report", None)
    if not recorded and report is not None and report.passed:
        # A case that passes without saying what it proved is not a case.
        raise AssertionError(f"{request.node.nodeid} passed without recording its fault")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.call_report = report
    return report


def pytest_terminal_summary(terminalreporter):
    if not RECORDS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault-injection suite")
    write(f"{'fault':<58} {'lost':>4} {'dup':>4} {'peak MiB':>9}  outcome")
    for r in RECORDS:
        peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
        write(
            f"{r['fault'][:58]:<58} {r['lost']:>4} {r['duplicated']:>4} {peak:>9}  {r['outcome']}"
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(RECORDS, indent=1))
