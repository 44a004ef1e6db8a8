"""The outcome of a search: the Pareto front of accuracy vs tokens as a table, a plot and config files.

The front is built from every point of the study (``optimize.search.points``): a plain trial is
one point, a trial with an exact tau curve one point per interval of its curve. A point is on the
front when no other is at least as accurate with at most as many tokens, and strictly better in
one. Each front point is exported as an experiment file (``<run_dir>/pareto/trial-<n>.yaml``, or
``trial-<n>-tau-<t>.yaml`` for a curve point, at its tau) that ``scale eval/compare/run --config``
accept, next to ``front.json`` and ``front.md`` (the table as data and as Markdown).

Example:
    >>> rows = [{"trial": 0, "accuracy": 60.0, "mean_tokens": 900.0},
    ...         {"trial": 1, "accuracy": 60.0, "mean_tokens": 700.0}]
    >>> best_row(rows)["trial"]
    1
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.experiment import ExperimentConfig, save_experiment
from optimize.search.points import Point, front, study_points
from program.config import ProgramConfig
from program.config_data import from_dict

if TYPE_CHECKING:
    import optuna

__all__ = ["front_points", "trial_row", "point_row", "best_row", "best_point", "pareto_table", "front_markdown",
           "plot_front", "export_front", "save_scored", "trial_program_config", "point_program_config"]

# Column title and format per row key; parameters only appear when the study has them.
_PARAM_COLUMNS = {"method": ("method", "{}"), "threshold": ("tau", "{:.2f}"), "system1_max_tokens": ("S1 max", "{:d}"),
                  "system2_max_tokens": ("S2 answer", "{:d}"), "system2_thinking_budget": ("S2 budget", "{:d}"),
                  "num_waits": ("waits", "{:d}"), "num_candidates": ("k", "{:d}"),
                  "vote_samples": ("samples", "{:d}"), "difficulty_source": ("source", "{}"),
                  "system2_kind": ("S2 kind", "{}")}
# "mean tokens" is the minimised objective (completion tokens by default); "all tokens" adds prompts.
_RESULT_COLUMNS = {"accuracy": ("accuracy %", "{:.1f}"), "mean_tokens": ("mean tokens", "{:,.0f}"),
                   "total_tokens": ("all tokens", "{:,.0f}"),
                   "system2_share": ("System 2 %", "{:.0f}"), "true_cost_tokens": ("true cost", "{:,}"),
                   "spent_tokens": ("spent", "{:,}"), "heldout_accuracy": ("held-out %", "{:.1f}"),
                   "heldout_tokens": ("held-out tokens", "{:,.0f}")}


def front_points(study: optuna.Study) -> list[Point]:
    """The Pareto-optimal points of the finished trials (curve points included), fewest tokens first."""
    return front(study_points(study))


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as plain data: number, state, parameter values (fixed ones too) and results."""
    attrs = trial.user_attrs
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name,
                           **attrs.get("values", trial.params)}
    if trial.values:
        row["accuracy"] = float(trial.values[0])
        row["mean_tokens"] = float(trial.values[1] if len(trial.values) > 1 else attrs.get("objective_tokens", 0.0))
    if trial.values and "objective_tokens" in attrs:  # the objective counts completions; show prompts too
        row["total_tokens"] = attrs["mean_tokens"]
    for key in ("system2_share", "true_cost_tokens", "spent_tokens", "n", "n_failed", "results_path", "fail_reason",
                "pruned_at"):
        if key in attrs:
            row[key] = attrs[key]
    return row


def best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The most accurate row; ties go to fewer mean tokens, then the earlier trial."""
    if not rows:
        raise ValueError("No finished trials: nothing to choose from (did every trial fail? see `fail_reason`).")
    return min(rows, key=lambda r: (-r["accuracy"], r["mean_tokens"], r["trial"]))


def point_row(point: Point, study: optuna.Study) -> dict[str, Any]:
    """A point as a row: its trial's row at the point's tau, accuracy and tokens."""
    row = trial_row(study.trials[point.trial])
    row.update(point.row())
    row.pop("point", None)
    row["point"] = point.name
    return row


def best_point(study: optuna.Study) -> Point:
    """The front point with the highest accuracy (ties: fewer tokens). Raises ValueError if none finished."""
    points = front_points(study)
    if not points:
        raise ValueError("No finished trials: nothing to choose from (did every trial fail? see `fail_reason`).")
    return min(points, key=lambda p: (-p.accuracy, p.tokens, p.trial, p.tau or 0.0))


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    present = [(k, *v) for k, v in _PARAM_COLUMNS.items() if any(r.get(k) not in (None, "") for r in rows)]
    results = [(k, *v) for k, v in _RESULT_COLUMNS.items()
               if k in ("accuracy", "mean_tokens") or not k.startswith("heldout") or any(k in r for r in rows)]
    return [("trial", "trial", "{:d}"), *present, *results]


def _cell(row: Mapping[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    try:
        return fmt.format(int(value) if fmt.endswith("d}") or fmt == "{:,}" else value)
    except (TypeError, ValueError):
        return str(value)


def pareto_table(rows: Sequence[Mapping[str, Any]], *, title: str = "Pareto front: accuracy vs tokens") -> Any:
    """A rich ``Table`` of ``rows`` (from ``trial_row``)."""
    from rich.table import Table

    table = Table(title=title)
    columns = _columns(rows)
    for _, name, _ in columns:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*(_cell(row, key, fmt) for key, _, fmt in columns))
    return table


def front_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The same table in Markdown (for READMEs and recorded results)."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(name for _, name, _ in columns) + " |",
             "|" + "---:|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row, key, fmt) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot_front(study: optuna.Study, path: str | Path, *, title: str | None = None,
               heldout: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """PNG of accuracy vs mean tokens: every point in grey, the front in colour, connected.

    ``heldout``: point name -> (held-out accuracy, tokens), drawn beside its dev point.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot global state: safe in worker threads

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    points = study_points(study)
    best = front(points)
    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    axes = figure.add_subplot()
    if points:
        axes.scatter([p.tokens for p in points], [p.accuracy for p in points], color="0.7", label="dev points",
                     zorder=2)
    if best:
        axes.plot([p.tokens for p in best], [p.accuracy for p in best], color="tab:red", marker="o",
                  label="Pareto front (dev)", zorder=3)
        labels: dict[tuple[float, float], list[str]] = {}  # points with equal values share one label
        for point in best:
            labels.setdefault((point.tokens, point.accuracy), []).append(f"#{point.trial} {point.method}")
        for xy, names in labels.items():
            axes.annotate(", ".join(names), xy, textcoords="offset points", xytext=(4, 4), fontsize=8)
    if heldout:
        axes.scatter([t for _, t in heldout.values()], [a for a, _ in heldout.values()], color="tab:blue",
                     marker="s", label="held-out", zorder=4)
    kind = study.user_attrs.get("token_objective", "completion")
    axes.set_xlabel(f"mean {kind} tokens per problem")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title or f"{study.study_name}: accuracy vs tokens")
    axes.grid(True, alpha=0.3)
    if points:
        axes.legend(loc="lower right")
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.{id(figure)}.tmp.png")
    figure.savefig(tmp)
    tmp.replace(path)  # another worker may be writing the same plot: never leave a torn file
    return path


def trial_program_config(trial: optuna.trial.FrozenTrial, base: ProgramConfig) -> ProgramConfig:
    """The program config a trial ran (stored with the trial; else ``base`` with its params)."""
    stored = trial.user_attrs.get("program_config")
    if stored:
        return from_dict(ProgramConfig, stored, where=f"trial {trial.number}")
    from optimize.search.space import PARAMETERS

    config = base
    for name, value in trial.params.items():
        config = PARAMETERS[name].set(config, value)
    return config


def save_scored(config: ExperimentConfig, path: str | Path, note: str) -> Path:
    """``save_experiment`` with ``note`` (its scores) as a comment line on top: the file still loads."""
    path = save_experiment(config, path)
    path.write_text(f"# {note}\n" + path.read_text(encoding="utf-8"), encoding="utf-8")
    return path


def point_program_config(point: Point, study: optuna.Study, base: ProgramConfig) -> ProgramConfig:
    """The program config of ``point``: what its trial ran, at the point's tau."""
    config = trial_program_config(study.trials[point.trial], base)
    if point.tau is not None:
        config = replace(config, scale=replace(config.scale, threshold=point.tau))
    return config


def export_front(study: optuna.Study, base: ExperimentConfig, directory: str | Path,
                 heldout: Mapping[str, Mapping[str, Any]] | None = None) -> list[Path]:
    """Write each front point as ``<point>.yaml`` plus ``front.json`` and ``front.md``; drop stale files.

    ``heldout``: point name -> its held-out row (``accuracy``, ``mean_tokens``, ``n``, ``slice``),
    recorded in ``front.json`` and as the exported experiment's ``description`` beside the dev score.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    points = front_points(study)
    heldout = heldout or {}
    paths, rows = [], []
    for point in points:
        row = point_row(point, study)
        scores = f"dev {point.accuracy:.1f}% at {point.tokens:,.0f} tokens/problem"
        if point.name in heldout:
            held = heldout[point.name]
            row.update(heldout_accuracy=held["accuracy"], heldout_tokens=held["mean_tokens"],
                       heldout_n=held["n"], heldout_slice=held.get("slice"))
            scores += f"; held-out {held['accuracy']:.1f}% at {held['mean_tokens']:,.0f} ({held.get('slice', '')})"
        program = point_program_config(point, study, base.program)
        config = replace(base, name=f"{base.name}-{point.name}", program=program)
        paths.append(save_scored(config, directory / f"{point.name}.yaml", f"search point {point.name}: {scores}"))
        rows.append(row)
    for old in directory.glob("trial-*.yaml"):
        if old not in paths:  # a point that a resumed search pushed off the front
            old.unlink()
    (directory / "front.json").write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    (directory / "front.md").write_text(front_markdown(rows), encoding="utf-8")
    return paths
