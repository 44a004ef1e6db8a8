"""The gain-recovery plot: G(r) against r for each difficulty source, with the random diagonal.

Uses matplotlib's Agg backend (no display needed; safe on servers and in worker threads), as
optimize/evaluation/plots.py.

Example:
    >>> from optimize.calibration.metrics import gain_recovery
    >>> curve = gain_recovery([0.9, 0.2, 0.4], [False, True, True], [True, True, True], [5, 5, 5], [50, 50, 50])
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "gain.png"
    >>> plot_gain_curves({"rating": curve}, out, title="Gain recovery (demo)") == out
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from optimize.calibration.metrics import GainPoint, gain_at

__all__ = ["plot_gain_curves"]


def _label(name: str, points: Sequence[GainPoint]) -> str:
    fractions = [p.fraction for p in points]
    if not min(fractions) <= 0.5 <= max(fractions):
        return name  # G(0.5) would be an extrapolation: better no number than a made-up one
    return f"{name} (G(0.5) = {gain_at(points, 0.5):.2f})"


def plot_gain_curves(curves: Mapping[str, Sequence[GainPoint]], path: Path | str, *, title: str) -> Path:
    """Save a PNG of G(r) against r, one line per source; returns ``path``.

    Args:
        curves: source name -> its :func:`~optimize.calibration.metrics.gain_recovery` points. Curves whose
            gains are all nan (System 2 gains nothing over System 1 there) cannot be drawn; the legend title
            names them, so a missing line is explained rather than silently absent.
        path: the PNG file to write (parent directories are created).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a bare Figure: no pyplot global state shared across threads

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = Figure(figsize=(6, 4.5), dpi=120)
    axes = figure.add_subplot()
    # The diagonal is what a constant or random score gets (ties are broken by expectation, so exactly r).
    axes.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="random (G = r)")
    skipped = []
    for name, points in curves.items():
        shown = sorted((p.fraction, p.gain) for p in points if not math.isnan(p.gain))
        if not shown:
            skipped.append(name)
            continue
        xs, ys = zip(*shown, strict=True)
        axes.plot(xs, ys, marker="o", markersize=3, label=_label(name, points))
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("fraction of problems sent to System 2 (hardest first)")
    axes.set_ylabel("share of the all-System-2 gain recovered")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    legend_title = f"no gain to recover, not drawn: {', '.join(skipped)}" if skipped else None
    axes.legend(loc="lower right", fontsize=8, title=legend_title, title_fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
