"""The comparison's picture: accuracy against mean completion tokens, with intervals and the frontier.

One marker and colour per method family, each entry labelled, the Pareto frontier drawn as a step
line through its entries. Matplotlib's Agg backend on a bare ``Figure`` (safe in threads).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimize.compare.run import CompareReport

__all__ = ["plot_compare"]

_MARKERS = "osD^vP*Xh<>p"


def plot_compare(report: CompareReport, path: str | Path) -> Path:
    """Save the PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(9, 5.5), dpi=120)
    axes = figure.add_subplot()
    families = sorted({e.family for e in report.entries})
    colours = matplotlib.colormaps["tab10"]
    for i, fam in enumerate(families):
        members = [e for e in report.entries if e.family == fam]
        axes.errorbar([e.completion_tokens for e in members], [e.accuracy for e in members],
                      yerr=[[e.accuracy - e.low for e in members], [e.high - e.accuracy for e in members]],
                      fmt=_MARKERS[i % len(_MARKERS)], color=colours(i % 10), capsize=3, label=fam,
                      elinewidth=1, alpha=0.85)
    for e, lines_down in zip(report.entries, _label_shifts(report), strict=True):
        axes.annotate(e.name, (e.completion_tokens, e.accuracy), textcoords="offset points",
                      xytext=(4, 4 - 9 * lines_down), fontsize=7)
    front = sorted((e.completion_tokens, e.accuracy) for e in report.entries if e.on_frontier)
    if front:
        xs, ys = zip(*front, strict=True)
        axes.step(xs, ys, where="post", color="grey", linestyle="--", linewidth=1, label="frontier")
    axes.set_xlabel("mean completion tokens per problem")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(f"{report.n_problems} problems, {report.samples} sample(s) per entry")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return path


def _label_shifts(report: CompareReport) -> list[int]:
    """How many text lines each entry's label moves down so that labels of nearby points do not overlap.

    Nearby: within 9 % of the token range and 4 % of the accuracy range of an already placed label
    (in the order of the entries), which is about one label's width and height on this figure.
    """
    xs = [e.completion_tokens for e in report.entries]
    ys = [e.accuracy for e in report.entries]
    width = (max(xs) - min(xs)) or 1.0
    height = (max(ys) - min(ys)) or 1.0
    placed: list[tuple[float, float]] = []
    shifts = []
    for x, y in zip(xs, ys, strict=True):
        shift = 0
        while any(abs(x - px) / width < 0.09 and abs(y - 0.045 * height * shift - py) / height < 0.04
                  for px, py in placed):
            shift += 1
        placed.append((x, y - 0.045 * height * shift))
        shifts.append(shift)
    return shifts
