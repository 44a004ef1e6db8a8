"""Plots of results: accuracy against thinking tokens (the s1 test-time scaling curve).

Uses matplotlib's Agg backend (no display needed; safe on servers and in worker threads).

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "scaling.png"
    >>> plot_scaling([(128, 90.0, 20.0), (256, 170.0, 40.0)], out).is_file()
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["plot_scaling"]


def plot_scaling(points: Sequence[tuple[int, float, float]], path: str | Path, *,
                 title: str = "Accuracy vs thinking tokens") -> Path:
    """Save a PNG of accuracy (percent) against mean thinking tokens, x on a log2 axis.

    Args:
        points: ``(budget, mean_thinking_tokens, accuracy)`` per budget; each point is labelled
            with its budget. Points with no thinking tokens cannot sit on a log axis and are left out.
        path: the PNG file to write (parent directories are created).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a bare Figure: no pyplot global state shared across threads
    from matplotlib.ticker import ScalarFormatter

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = sorted((tokens, acc, budget) for budget, tokens, acc in points if tokens > 0)
    figure = Figure(figsize=(6, 4), dpi=120)
    axes = figure.add_subplot()
    if shown:
        xs, ys, budgets = zip(*shown, strict=True)
        axes.plot(xs, ys, marker="o")
        for x, y, budget in shown:
            axes.annotate(f"budget {budget}", (x, y), textcoords="offset points", xytext=(4, 6), fontsize=8)
        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_formatter(ScalarFormatter())  # 256, not 2^8: token counts read easier
        axes.margins(x=0.15, y=0.12)  # room for the budget labels
    else:
        axes.text(0.5, 0.5, "no thinking tokens recorded", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("mean thinking tokens per problem (log2)")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
