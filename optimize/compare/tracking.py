"""MLflow for a comparison: one parent run (the table as JSON, the PNG), one child run per entry."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optimize.compare.entries import CompareConfig
    from optimize.compare.run import CompareReport

__all__ = ["log_compare"]


def log_compare(config: CompareConfig, report: CompareReport, *, benchmark: str) -> str:
    """Log ``report``; returns the parent run's id."""
    from optimize.tracking import Tracker, default_tracking_uri
    from program.config_data import to_dict

    experiment = config.experiment
    tracker = Tracker.create(experiment.tracking.mlflow_uri or default_tracking_uri(experiment.run_dir),
                             experiment.tracking.mlflow_experiment)
    parent = tracker.start(f"compare-{experiment.name}", tags={"scale.kind": "compare"},
                           params={"benchmark": benchmark, "n_problems": report.n_problems,
                                   "samples": report.samples, "entries": ",".join(e.name for e in report.entries)})
    programs = {entry.name: entry.program for entry in config.entries}
    for result in report.entries:
        optional = {name: value for name in ("server_seconds", "samples_per_vote", "samples_saved")
                    if (value := getattr(result, name)) is not None}
        tracker.child(parent, result.name, params={"method": result.method, "program": to_dict(programs[result.name])},
                      metrics={"accuracy": result.accuracy, "accuracy_low": result.low, "accuracy_high": result.high,
                               "completion_tokens": result.completion_tokens, "thinking_tokens": result.thinking_tokens,
                               "prompt_tokens": result.prompt_tokens, "wall_seconds": result.wall_seconds,
                               "on_frontier": float(result.on_frontier), "samples": result.samples, **optional},
                      tags={"scale.kind": "compare-entry"})
    for path in (report.json_path, report.plot_path):
        if path is not None:
            tracker.log_artifact(parent, path)
    tracker.end(parent)
    return parent
