"""The outcome of a search: the Pareto front of accuracy vs tokens as a table, a plot and config files.

A configuration is on the front when no other trial is at least as accurate with at most as many
tokens, and strictly better in one (``study.best_trials``). Each front trial is exported as an
experiment file (``<run_dir>/pareto/trial-<n>.yaml``) that ``scale eval/compile/run --config``
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
from program.config import ProgramConfig
from program.config_data import from_dict

if TYPE_CHECKING:
    import optuna

__all__ = ["front_trials", "trial_row", "best_row", "best_trial", "pareto_table", "front_markdown",
           "plot_front", "export_front", "trial_program_config"]

# Column title and format per row key; parameters only appear when the study has them.
_PARAM_COLUMNS = {"threshold": ("tau", "{:.2f}"), "system1_max_tokens": ("S1 max", "{:d}"),
                  "system2_max_tokens": ("S2 answer", "{:d}"), "system2_thinking_budget": ("S2 budget", "{:d}"),
                  "num_waits": ("waits", "{:d}"), "num_candidates": ("k", "{:d}")}
# "mean tokens" is the minimised objective (completion tokens by default); "all tokens" adds prompts.
_RESULT_COLUMNS = {"accuracy": ("accuracy %", "{:.1f}"), "mean_tokens": ("mean tokens", "{:,.0f}"),
                   "total_tokens": ("all tokens", "{:,.0f}"),
                   "system2_share": ("System 2 %", "{:.0f}"), "true_cost_tokens": ("true cost", "{:,}"),
                   "spent_tokens": ("spent", "{:,}")}


def front_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The Pareto-optimal finished trials, fewest tokens first."""
    return sorted(study.best_trials, key=lambda t: (t.values[1], -t.values[0], t.number))


def trial_row(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """One trial as plain data: number, state, parameter values (fixed ones too) and results."""
    attrs = trial.user_attrs
    row: dict[str, Any] = {"trial": trial.number, "state": trial.state.name,
                           **attrs.get("values", trial.params)}
    if trial.values:
        row["accuracy"], row["mean_tokens"] = float(trial.values[0]), float(trial.values[1])
    if trial.values and "objective_tokens" in attrs:  # the objective counts completions; show prompts too
        row["total_tokens"] = attrs["mean_tokens"]
    for key in ("system2_share", "true_cost_tokens", "spent_tokens", "n", "n_failed", "results_path", "fail_reason"):
        if key in attrs:
            row[key] = attrs[key]
    return row


def best_row(rows: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The most accurate row; ties go to fewer mean tokens, then the earlier trial."""
    if not rows:
        raise ValueError("No finished trials: nothing to choose from (did every trial fail? see `fail_reason`).")
    return min(rows, key=lambda r: (-r["accuracy"], r["mean_tokens"], r["trial"]))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The front trial with the highest accuracy (ties: fewer tokens). Raises ValueError if none finished."""
    trials = {t.number: t for t in front_trials(study)}
    return trials[best_row([trial_row(t) for t in trials.values()])["trial"]]


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    present = [(k, *v) for k, v in _PARAM_COLUMNS.items() if any(k in r for r in rows)]
    return [("trial", "trial", "{:d}"), *present, *((k, *v) for k, v in _RESULT_COLUMNS.items())]


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


def plot_front(study: optuna.Study, path: str | Path, *, title: str | None = None) -> Path:
    """PNG of accuracy vs mean tokens: every finished trial in grey, the front in colour, connected."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot global state: safe in worker threads
    from optuna.trial import TrialState

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    front = front_trials(study)
    figure = Figure(figsize=(6.4, 4.4), dpi=120)
    axes = figure.add_subplot()
    if done:
        axes.scatter([t.values[1] for t in done], [t.values[0] for t in done], color="0.7", label="trials", zorder=2)
    if front:
        xs, ys = [t.values[1] for t in front], [t.values[0] for t in front]
        axes.plot(xs, ys, color="tab:red", marker="o", label="Pareto front", zorder=3)
        labels: dict[tuple[float, float], list[str]] = {}  # trials with equal values share one label
        for trial in front:
            labels.setdefault((trial.values[1], trial.values[0]), []).append(f"#{trial.number}")
        for point, names in labels.items():
            axes.annotate(", ".join(names), point, textcoords="offset points", xytext=(4, 4), fontsize=8)
    kind = study.user_attrs.get("token_objective", "completion")
    axes.set_xlabel(f"mean {kind} tokens per problem")
    axes.set_ylabel("accuracy (%)")
    axes.set_title(title or f"{study.study_name}: accuracy vs tokens")
    axes.grid(True, alpha=0.3)
    if done:
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


def export_front(study: optuna.Study, base: ExperimentConfig, directory: str | Path) -> list[Path]:
    """Write each front trial as ``trial-<n>.yaml`` plus ``front.json`` and ``front.md``; drop stale files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    front = front_trials(study)
    paths = []
    for trial in front:
        config = replace(base, name=f"{base.name}-trial-{trial.number}",
                         program=trial_program_config(trial, base.program))
        paths.append(save_experiment(config, directory / f"trial-{trial.number}.yaml"))
    for old in directory.glob("trial-*.yaml"):
        if old not in paths:  # a trial that a resumed search pushed off the front
            old.unlink()
    rows = [trial_row(t) for t in front]
    (directory / "front.json").write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")
    (directory / "front.md").write_text(front_markdown(rows), encoding="utf-8")
    return paths
