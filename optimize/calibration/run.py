"""``calibrate``: label dev problems, score every difficulty source, write the table, JSON, plot and MLflow run.

The library function behind ``scale calibrate`` (the command only parses flags). Outputs in
``output``: ``labels.jsonl`` (per problem, resumable), ``calibration.json``, ``gain.png``, and with
``fit_learned`` a ``learned.json`` that ``scale.difficulty_source: learned`` reads through
``scale.learned_path``.

Example:
    >>> calibrate(config, examples, output="runs/cal", method="cascade",  # doctest: +SKIP
    ...           sources=["rating", "attempt:length", "learned"])
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import dspy

from optimize.calibration.fit import fit_learned
from optimize.calibration.labels import label_all
from optimize.calibration.plot import plot_gain_curves
from optimize.calibration.report import CalibrationReport, calibrate_report, learned_rows
from optimize.experiment import ExperimentConfig, save_experiment
from program.clients.lm import Systems
from program.config import ConfigError
from program.methods import build_program
from program.scale import Scale

__all__ = ["CalibrationRun", "calibrate", "labelling_program"]


@dataclass(frozen=True)
class CalibrationRun:
    """Where ``calibrate`` wrote its outputs, and the report."""

    report: CalibrationReport
    output: Path
    json_path: Path
    plot_path: Path
    learned_path: Path | None
    wall_seconds: float
    run_id: str | None
    labelling_seconds: float = 0.0  # the problems' own labelling time, summed (resumed ones included)


def labelling_program(config: ExperimentConfig, method: str, systems: Systems | None = None) -> Scale:
    """The program whose plan, predictors and LMs label a problem: SCALE or the cascade, scoring nothing
    up front (the labelling measures every source itself)."""
    if method not in ("scale", "cascade"):
        raise ConfigError(f"calibrate labels the plans of `scale` or `cascade`; got method {method!r}.")
    scale = replace(config.program.scale, difficulty_source="attempt", attempt_confidence="length", threshold=1.0)
    program = build_program(replace(config.program, method=method, scale=scale), systems)
    assert isinstance(program, Scale)
    return program


def calibrate(config: ExperimentConfig, examples: Sequence[dspy.Example], *, output: Path | str, sources: Sequence[str],
              method: str, fit: bool = False, dev_name: str = "", tracking: bool = True, progress: bool = True,
              resamples: int = 2000, systems: Systems | None = None, workers: int = 1) -> CalibrationRun:
    """Label ``examples`` (resuming ``output/labels.jsonl``), report every source, optionally fit ``learned``.

    ``systems``: the LMs (default: built from ``config.program.lm``; tests pass scripted ones).
    ``workers``: problems labelled at once (``scale calibrate --workers``, default the config's).
    """
    started = time.monotonic()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    save_experiment(config, output / "config.yaml")
    labels = label_all(lambda: labelling_program(config, method, systems), examples, output / "labels.jsonl", sources,
                       progress=progress, workers=workers)
    report = calibrate_report(labels, sources, resamples=resamples)
    learned_path = None
    if fit:
        rows, targets, _, features = learned_rows(labels)
        label_kind = "system1_wrong" if report.one_step_plans else "system1_differs_from_system2"
        model = fit_learned(rows, targets, features, fitted_on={
            "dev": dev_name, "method": method, "n_problems": len(labels), "n_rows": len(rows), "label": label_kind})
        learned_path = model.save(output / "learned.json")
    wall = round(time.monotonic() - started, 1)
    json_path = output / "calibration.json"
    labelling = round(sum(label.wall_seconds for label in labels), 1)  # also when this run only resumed
    json_path.write_text(json.dumps({"dev": dev_name, "method": method, "source_names": list(sources),
                                     "wall_seconds": wall, "labelling_seconds": labelling, **report.to_dict()},
                                    indent=2, default=_plain) + "\n")
    plot_path = plot_gain_curves({s.name: s.curve for s in report.sources}, output / "gain.png",
                                 title=f"{method} on {dev_name or 'dev'}: {report.n_problems} problems")
    run_id = _log(config, report, [json_path, plot_path, *([learned_path] if learned_path else [])], dev_name,
                  method, sources, wall) if tracking else None
    return CalibrationRun(report, output, json_path, plot_path, learned_path, wall, run_id, labelling)


def _log(config: ExperimentConfig, report: CalibrationReport, artifacts: list[Path], dev_name: str, method: str,
         sources: Sequence[str], wall: float) -> str:
    """One MLflow run: the parameters, every source's metrics, the JSON, the plot and the learned model."""
    from optimize.experiment import experiment_to_dict
    from optimize.tracking import Tracker, default_tracking_uri

    tracker = Tracker.create(config.tracking.mlflow_uri or default_tracking_uri(config.run_dir),
                             config.tracking.mlflow_experiment)
    params = {"dev": dev_name, "method": method, "sources": ",".join(sources), "config": experiment_to_dict(config)}
    run_id = tracker.start(f"calibrate-{method}-{dev_name}", params=params, tags={"scale.kind": "calibrate"})
    metrics: dict[str, Any] = {"s1_accuracy": report.s1_accuracy, "s2_accuracy": report.s2_accuracy,
                               "n_problems": report.n_problems, "wall_seconds": wall}
    for s in report.sources:
        key = s.name.replace(":", "_")
        metrics.update({f"{key}.problem_auroc": s.problem_auroc, f"{key}.step_auroc": s.step_auroc,
                        f"{key}.gain_half": s.gain_half})
    tracker.log_metrics(run_id, {k: v for k, v in metrics.items() if v == v})  # NaN is no metric
    for path in artifacts:
        tracker.log_artifact(run_id, path)
    tracker.end(run_id)
    return run_id


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else str(value)
