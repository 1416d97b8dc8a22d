"""What a benchmark reports, and the table, JSON file and chart `python -m bench` makes of it.

A `Result` is one figure beside a baseline timed in the same run (or a fixed yardstick such as
the option chain's 5-minute interval), with the target it is held to and whether it met it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Result:
    name: str
    figure: float
    unit: str
    baseline: float | None
    baseline_name: str
    higher_is_better: bool
    #: The target in words, e.g. "under 0.3 s"; `met` is None when there is none to judge.
    target: str
    met: bool | None
    #: Peak resident memory of the process that did the work, in MiB.
    peak_mib: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """figure / baseline; None without a baseline."""
        if self.baseline is None or self.baseline == 0:
            return None
        return self.figure / self.baseline

    def to_dict(self) -> dict:
        return dataclasses.asdict(self) | {"ratio": self.ratio}

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def number(value: float | None) -> str:
    """Three significant figures, without an exponent for everyday magnitudes."""
    if value is None:
        return "-"
    if value == 0 or 0.01 <= abs(value) < 1000:
        return f"{value:.3g}"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.2e}"


def verdict(result: Result) -> str:
    return {True: "met", False: "NOT MET", None: "-"}[result.met]


def table(results: Sequence[Result]) -> str:
    from tabulate import tabulate

    rows = [
        [
            r.name,
            f"{number(r.figure)} {r.unit}",
            f"{r.baseline_name} {number(r.baseline)} {r.unit}" if r.baseline is not None else "-",
            f"{number(r.ratio)}x" if r.ratio is not None else "-",
            number(r.peak_mib),
            r.target,
            verdict(r),
        ]
        for r in results
    ]
    headers = ["benchmark", "figure", "baseline", "ratio", "peak MiB", "target", "verdict"]
    return tabulate(rows, headers, tablefmt="simple", disable_numparse=True)


def write_json(path: Path, results: Sequence[Result], about: dict) -> None:
    """`about` (when, where, what crashed) and every result with its ratio."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = about | {"results": [r.to_dict() for r in results]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


COLOURS = {True: "#2e7d32", False: "#c62828", None: "#9e9e9e"}


def write_chart(path: Path, results: Sequence[Result], title: str) -> None:
    """One horizontal bar per result: figure / baseline on a log scale, green when its target
    is met, red when not, grey without one; beside it the figure, the baseline and the target."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter
    from matplotlib.transforms import blended_transform_factory

    path.parent.mkdir(parents=True, exist_ok=True)
    known = [r.ratio for r in results if r.ratio]
    low, high = min([*known, 1.0]) / 2, max([*known, 1.0]) * 2
    height = 1.6 + 0.5 * max(len(results), 1)
    fig, ax = plt.subplots(figsize=(14, height), layout="constrained")
    beside = blended_transform_factory(ax.transAxes, ax.transData)
    for y, r in enumerate(results):
        if r.ratio:
            # From the axis' left edge: on a log scale no bar can start at 0.
            ax.barh(y, r.ratio - low, left=low, color=COLOURS[r.met], height=0.6)
        if r.baseline is not None:
            better = ", higher is better" if r.higher_is_better else ""
            compared = (
                f"{number(r.figure)} {r.unit} vs {number(r.baseline)} {r.unit}, "
                f"{r.baseline_name}{better}"
            )
        else:
            compared = f"{number(r.figure)} {r.unit} (no baseline)"
        ax.text(
            1.01,
            y,
            f"{compared}\ntarget {r.target}: {verdict(r)}",
            transform=beside,
            va="center",
            fontsize=8,
            color=COLOURS[r.met] if r.met is False else "black",
        )
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.set_xlim(low, high)
    ax.set_ylim(max(len(results), 1) - 0.5, -0.5)
    ax.set_yticks(range(len(results)), [r.name for r in results], fontsize=9)
    ax.set_xlabel("figure / baseline (log scale; left of 1 is below the baseline)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", which="major", linestyle=":", linewidth=0.5)
    legend = {True: "target met", False: "target not met", None: "no target"}
    handles = [Patch(color=colour, label=legend[met]) for met, colour in COLOURS.items()]
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1, 1), ncol=3, fontsize=8)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def mib(kib: float) -> float:
    """ru_maxrss (KiB on Linux) in MiB."""
    return round(kib / 1024, 1)
