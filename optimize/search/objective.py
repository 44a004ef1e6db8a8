"""The objective of a search trial: one configuration, evaluated on the dev problems.

``SearchObjective(trial) -> (accuracy %, mean tokens per problem)``. The trial's values come from
the search space (``optimize.search.space``); the program is rebuilt from the frozen base config with
them (``dataclasses.replace``), keeps a compiled program's demos and instructions when one is
given, and reuses the shared plans (``optimize.search.plans``). Each trial records, as user attrs and
in its MLflow child run, what its configuration costs on its own (``true_cost_tokens``: every
call, reused plans and cache hits included) and what the search paid for it (``spent_tokens``).

Example:
    >>> objective = SearchObjective(experiment, dev, run_dir="runs/t", systems=scripted)  # doctest: +SKIP
    >>> objective(optuna.trial.FixedTrial({"threshold": 0.3}))  # doctest: +SKIP
    (100.0, 412.5)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.errors import ServerDownError
from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ResultsFile, config_fingerprint, latest_by_id, legacy_fingerprint
from optimize.experiment import ExperimentConfig, save_experiment
from optimize.search.plans import PlanStore, plan_key
from optimize.search.space import SearchSpace

if TYPE_CHECKING:
    import dspy
    import optuna

    from optimize.tracking import Tracker
    from program.clients.lm import Systems
    from program.config import ProgramConfig

__all__ = ["SearchObjective", "build_trial_program", "program_state", "results_fingerprint", "load_dev", "paper_seeds",
           "PAPER_THRESHOLDS"]

log = logging.getLogger(__name__)

# Enqueued first: the paper's best tau (arXiv 2512.00466, Qwen3-32B sweep) and the reference default.
PAPER_THRESHOLDS = {"paper": 0.2, "reference": 0.5}


def load_dev(config: ExperimentConfig) -> list[dspy.Example]:
    """The dev problems of ``config.data.dev`` (``POOL:N`` of a train pool; test sets are refused)."""
    from data.loading import dev_split, parse_slice

    pool, n = parse_slice(config.data.dev)
    return dev_split(pool, n, seed=config.data.seed or 0, data_dir=config.data.data_dir)


def paper_seeds(space: SearchSpace, base: ProgramConfig) -> list[dict[str, Any] | None]:
    """Params of the known settings, clipped to ``space`` (None where a fixed value excludes one)."""
    return [space.seed(base, threshold=tau) for tau in PAPER_THRESHOLDS.values()]


def program_state(program_dir: str | Path | None) -> str:
    """The sha256 of a saved program's tuned state (verified), or "" for no saved program."""
    if program_dir is None:
        return ""
    from optimize.compiling.saved import PROGRAM_FILE, read_metadata

    return str(read_metadata(program_dir)["sha256"][PROGRAM_FILE])


def results_fingerprint(config: ProgramConfig, state: str = "", *, legacy: bool = False) -> str:
    """Marks results of one configuration AND one tuned state, so only those resume from a file.

    ``legacy``: the fingerprint such results had before defaults were left out (every field hashed).
    """
    if legacy:
        return legacy_fingerprint({"config": config, "program": state})
    return config_fingerprint({"config": config, "program": state})


def build_trial_program(config: ProgramConfig, *, program_dir: str | Path | None = None,
                        systems: Systems | None = None) -> Any:
    """The program of ``config``, with a saved program's demos/instructions if given.

    Example:
        >>> program = build_trial_program(ProgramConfig(), program_dir="runs/q/compiled-bootstrap")  # doctest: +SKIP
    """
    from program.methods import build_program

    if program_dir is None:
        return build_program(config, systems)
    from optimize.compiling.saved import load_program, read_saved_config

    # the saved directory's config with this program config: load_program checks the method matches
    experiment = replace(read_saved_config(program_dir), program=config)
    return load_program(program_dir, config=experiment, systems=systems,
                        builder=lambda cfg, lms: build_program(cfg, lms)).program


class SearchObjective:
    """``objective(trial) -> (accuracy %, mean tokens)``: one configuration evaluated on the dev problems.

    Works with any Optuna trial, ``optuna.trial.FixedTrial`` included (give values for the
    searched parameters). On an exception the trial gets the user attr ``fail_reason`` and the
    exception propagates (the study records FAIL and goes on).

    Args:
        experiment: the base experiment; its ``search.space`` says what varies.
        examples: the dev problems.
        run_dir: where per-configuration results live (``configs/<fingerprint>/results.jsonl``).
        systems: LMs to run every trial on (tests); default: built from each trial's config.
        plans: the shared plan store (None: plans are not reused).
        program_dir: a saved program whose demos and instructions every trial keeps.
        tracker, parent_run_id: MLflow; one child run per trial when both are given.
        workers: problems evaluated at once within a trial.

    Example:
        >>> objective = SearchObjective(experiment, dev, run_dir="runs/t", systems=scripted)  # doctest: +SKIP
        >>> objective(optuna.trial.FixedTrial({"threshold": 0.3}))  # doctest: +SKIP
        (100.0, 412.5)
    """

    def __init__(self, experiment: ExperimentConfig, examples: Sequence[dspy.Example], *, run_dir: str | Path,
                 systems: Systems | None = None, plans: PlanStore | None = None,
                 program_dir: str | Path | None = None, tracker: Tracker | None = None,
                 parent_run_id: str | None = None, workers: int = 1, progress: bool = False) -> None:
        self.experiment, self.examples, self.run_dir = experiment, list(examples), Path(run_dir)
        self.space = SearchSpace.parse(experiment.search.space)
        self.systems, self.plans, self.tracker, self.parent_run_id = systems, plans, tracker, parent_run_id
        self.workers, self.progress = workers, progress
        self.program_dir = Path(program_dir) if program_dir else None
        self.program_state = program_state(self.program_dir)
        if self.program_dir is not None:  # a saved program that cannot load fails the search now, not every trial
            build_trial_program(experiment.program, program_dir=self.program_dir, systems=systems)

    def __call__(self, trial: optuna.trial.BaseTrial) -> tuple[float, float]:
        values: dict[str, Any] = {}
        try:
            values = self.space.suggest(trial)
            return self._run(trial, values)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("fail_reason", reason[:2000])
            self._log_child(trial, values, metrics={}, artifacts=(), status="FAILED", reason=reason)
            raise

    def build(self, config: ProgramConfig) -> Any:
        """The trial's program: ``config``'s method, the saved program's state, and the shared plans
        of the plan settings it reports (``Scale.plan_settings``; a method that does not plan has none)."""
        program = build_trial_program(config, program_dir=self.program_dir, systems=self.systems)
        if self.plans is not None and hasattr(program, "plan_settings"):
            program.plan_cache = self.plans.view(plan_key(program, config, self.program_state))
        return program

    def _run(self, trial: optuna.trial.BaseTrial, values: dict[str, Any]) -> tuple[float, float]:
        config = self.space.apply(self.experiment.program, values)
        fingerprint = results_fingerprint(config, self.program_state)
        older = results_fingerprint(config, self.program_state, legacy=True)
        results_path = self.run_dir / "configs" / fingerprint / "results.jsonl"
        if not results_path.parent.exists() and (self.run_dir / "configs" / older).is_dir():
            results_path = self.run_dir / "configs" / older / "results.jsonl"  # recorded under the old name
        # Identical configurations share one results file: a retried or repeated one resumes.
        before = set(latest_by_id(ResultsFile(results_path).read(), fingerprint)) if results_path.exists() else set()
        if not results_path.parent.joinpath("config.yaml").exists():  # what these results are of
            save_experiment(replace(self.experiment, program=config), results_path.parent / "config.yaml")
        program = self.build(config)
        started = time.monotonic()
        report = evaluate(program, self.examples, results_path=results_path, fingerprint=fingerprint, accept=(older,),
                          workers=self.workers, progress=self.progress, description=f"trial {trial.number}")
        summary = report.summary
        down = [r for r in report.results if r.error_type == "ServerError"]
        if down:  # not the configuration's fault, and its accuracy would count them wrong: stop, queue it again
            raise ServerDownError(
                f"trial {trial.number}: {len(down)} of {summary.n} problems failed with server errors (last: "
                f"{down[-1].error}); the answered ones are kept in {results_path} and the trial is queued again: "
                "once the server answers, run the same command again to resume.")
        if summary.n and summary.n_failed == summary.n:  # (0 %, few tokens) would pass for a cheap config
            first = next(r.error for r in report.results if r.error)
            raise RuntimeError(f"all {summary.n} problems failed (first: {first}); see {results_path}")
        spent = sum(int(r.spent.get("total_tokens", 0)) for r in report.results if r.id not in before)
        tokens = objective_tokens(summary, self.experiment.search.token_objective)
        attrs = {"values": values, "accuracy": summary.accuracy, "mean_tokens": summary.mean_tokens,
                 "objective_tokens": tokens, "token_objective": self.experiment.search.token_objective,
                 "system2_share": summary.system2_share, "true_cost_tokens": summary.total_tokens,
                 "spent_tokens": spent, "seconds": round(time.monotonic() - started, 3), "n": summary.n,
                 "n_failed": summary.n_failed, "results_path": str(results_path), "fingerprint": fingerprint,
                 "program_config": asdict(config)}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        metrics = {"accuracy": summary.accuracy, "mean_tokens": summary.mean_tokens,
                   "system2_share": summary.system2_share, "true_cost_tokens": summary.total_tokens,
                   "spent_tokens": spent, "wall_seconds": attrs["seconds"], "n_failed": summary.n_failed,
                   "mean_tokens_by_stage": {stage: sums.get("total_tokens", 0.0)
                                            for stage, sums in summary.mean_tokens_by_stage.items()},
                   **{f"mean_{kind}": value for kind, value in summary.mean_tokens_by_kind.items()}}
        self._log_child(trial, values, metrics=metrics, artifacts=(report.results_path, report.summary_path))
        return summary.accuracy, tokens

    def _log_child(self, trial: optuna.trial.BaseTrial, values: dict[str, Any], *, metrics: dict[str, Any],
                   artifacts: Sequence[Path], status: str = "FINISHED", reason: str | None = None) -> None:
        if self.tracker is None or self.parent_run_id is None:
            return
        params: dict[str, Any] = {"trial": trial.number, **values}
        if reason:
            params["fail_reason"] = reason[:500]
        try:
            self.tracker.child(self.parent_run_id, f"trial-{trial.number}", params=params,
                               metrics={k: v for k, v in metrics.items() if v is not None}, artifacts=artifacts,
                               tags={"optuna.trial": str(trial.number)}, status=status)
        except Exception as exc:  # tracking trouble must not fail a trial that ran fine
            log.warning("trial %s: could not log to MLflow (%s: %s)", trial.number, type(exc).__name__, exc)


def objective_tokens(summary: Any, kind: str) -> float:
    """Mean tokens per problem as the search minimises them: ``completion`` or ``total`` (see SearchConfig).

    Example:
        >>> from types import SimpleNamespace
        >>> objective_tokens(SimpleNamespace(mean_tokens=900.0, mean_tokens_by_kind={"completion_tokens": 250.0}),
        ...                  "completion")
        250.0
    """
    if kind == "total":
        return float(summary.mean_tokens)
    return float(summary.mean_tokens_by_kind.get("completion_tokens", 0.0))
