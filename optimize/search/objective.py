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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from optimize.errors import ServerDownError
from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ResultsFile, config_fingerprint, latest_by_id, legacy_fingerprint
from optimize.experiment import ExperimentConfig, save_experiment
from optimize.search.curve import CurvePoint, best_within, exact_curve
from optimize.search.families import Choice, MethodSpace
from optimize.search.plans import PlanStore, plan_key

if TYPE_CHECKING:
    import dspy

    from optimize.tracking import Tracker
    from program.clients.lm import Systems
    from program.config import ProgramConfig

__all__ = ["SearchObjective", "Measured", "CONSTRAINT", "build_trial_program", "program_state", "results_fingerprint",
           "load_dev", "paper_seeds", "PAPER_THRESHOLDS"]

log = logging.getLogger(__name__)

# Enqueued first: the paper's best tau (arXiv 2512.00466, Qwen3-32B sweep) and the reference default.
PAPER_THRESHOLDS = {"paper": 0.2, "reference": 0.5}
# The budget form's one constraint (Optuna's Trial.set_constraint, read by samplers and best_trial):
# mean tokens per problem minus the budget, feasible when <= 0.
CONSTRAINT = "tokens_over_budget"


def load_dev(config: ExperimentConfig) -> list[dspy.Example]:
    """The dev problems of ``config.data.dev`` (``POOL:N`` of a train pool; test sets are refused)."""
    from data.loading import dev_split, parse_slice

    pool, n = parse_slice(config.data.dev)
    return dev_split(pool, n, seed=config.data.seed or 0, data_dir=config.data.data_dir)


def paper_seeds(space: MethodSpace, base: ProgramConfig) -> list[dict[str, Any] | None]:
    """Params of the known settings, clipped to ``space`` (None where a fixed value excludes one).

    Each method at the base config's values; where tau is sampled, at the paper's taus.
    """
    return space.seeds(base, tuple(PAPER_THRESHOLDS.values()))


def program_state(program_dir: str | Path | None) -> str:
    """The sha256 of a saved program's tuned state (verified), or "" for no saved program."""
    if program_dir is None:
        return ""
    from optimize.compiling.saved import PROGRAM_FILE, read_metadata

    return str(read_metadata(program_dir)["sha256"][PROGRAM_FILE])


def results_fingerprint(config: ProgramConfig, state: str = "", *, legacy: bool = False, **marker: Any) -> str:
    """Marks results of one configuration AND one tuned state, so only those resume from a file.

    ``legacy``: the fingerprint such results had before defaults were left out (every field hashed).
    ``marker``: what else the results depend on (an exact curve's tau interval and cap).
    """
    if legacy:
        return legacy_fingerprint({"config": config, "program": state, **marker})
    return config_fingerprint({"config": config, "program": state, **marker})


def build_trial_program(config: ProgramConfig, *, program_dir: str | Path | None = None,
                        systems: Systems | None = None) -> Any:
    """The program of ``config``, with a saved program's demos/instructions if given.

    Example:
        >>> program = build_trial_program(ProgramConfig(), program_dir="runs/q/compiled-bootstrap")  # doctest: +SKIP
    """
    from program.methods import build_program

    options: dict[str, Any] = {}
    if config.method == "bf" and systems is not None:  # bf builds its own LM from the config unless given one
        options["lm"] = systems.system2
    if program_dir is None:
        return build_program(config, systems, **options)
    from optimize.compiling.saved import load_program, read_saved_config

    saved = read_saved_config(program_dir)
    if saved.program.method != config.method:  # its demos are its own method's predictors': start this one fresh
        return build_program(config, systems, **options)
    # the saved directory's config with this program config: load_program checks the method matches
    experiment = replace(saved, program=config)
    return load_program(program_dir, config=experiment, systems=systems,
                        builder=lambda cfg, lms: build_program(cfg, lms, **options)).program


@dataclass
class Measured:
    """A configuration on the problems so far: the point it reports, its cost, and its curve if exact."""

    accuracy: float
    tokens: float  # mean per problem, as the search counts them (``token_objective``)
    n: int
    correct: dict[str, bool]  # problem id -> correct, at the reported point
    true_tokens: float
    spent_tokens: float
    calls: int
    spent_calls: int
    n_failed: int = 0
    system2_share: float | None = None
    tau: float | None = None
    curve: list[CurvePoint] | None = None
    point_tokens: float | None = None  # a curve's reported point: mean total tokens there (true_tokens: all leaves)


class SearchObjective:
    """``objective(trial)``: one configuration evaluated on the dev problems.

    Returns ``(accuracy %, mean tokens)`` (front form), or accuracy alone with the constraint
    ``CONSTRAINT`` = mean tokens - budget (budget form, ``experiment.search.budget``; feasible when
    <= 0; Optuna's ``Trial.set_constraint``, which its samplers and ``best_trial`` read). Works
    with any Optuna trial, ``optuna.trial.FixedTrial`` included (give values for the searched
    parameters). On an exception the trial gets the user
    attr ``fail_reason`` and the exception propagates (the study records FAIL and goes on).

    A score-routed trial (``optimize.search.families.SCORE_ROUTED``, ``search.tau: curve``)
    computes its exact curve over tau and reports one point of it: the most accurate point within
    the budget (budget form) or the most accurate point overall (front form), fewest tokens on
    ties; the whole curve is the user attr ``curve`` and every point of it enters the front shown
    (``optimize.search.pareto``). A problem needing more than ``search.curve_cap`` routings makes the
    trial sample tau instead (``<method>.threshold``, user attr ``curve_fallback``).

    With a pruner (budget form), the trial evaluates ``search.chunk`` problems at a time and
    reports its running accuracy (0 while its running mean tokens exceed the budget: it is losing)
    after each chunk, or each problem's 0/1 for ``wilcoxon``; a pruned trial raises
    ``optuna.TrialPruned`` with ``n`` (problems evaluated) and ``pruned_at`` recorded.

    Args:
        experiment: the base experiment; its ``search`` section says what varies and how.
        examples: the dev problems.
        run_dir: where per-configuration results live (``configs/<fingerprint>/results.jsonl``).
        systems: LMs to run every trial on (tests); default: built from each trial's config.
        plans: the shared plan store (None: plans are not reused).
        program_dir: a saved program whose demos and instructions every trial keeps.
        tracker, parent_run_id: MLflow; one child run per trial when both are given.
        workers: problems evaluated at once within a trial.
        prune: report intermediate values and obey the pruner (default: when ``search.pruner`` is set).

    Example:
        >>> objective = SearchObjective(experiment, dev, run_dir="runs/t", systems=scripted)  # doctest: +SKIP
        >>> objective(optuna.trial.FixedTrial({"threshold": 0.3}))  # doctest: +SKIP
        (100.0, 412.5)
    """

    def __init__(self, experiment: ExperimentConfig, examples: Sequence[dspy.Example], *, run_dir: str | Path,
                 systems: Systems | None = None, plans: PlanStore | None = None,
                 program_dir: str | Path | None = None, tracker: Tracker | None = None,
                 parent_run_id: str | None = None, workers: int = 1, progress: bool = False,
                 prune: bool | None = None) -> None:
        self.experiment, self.examples, self.run_dir = experiment, list(examples), Path(run_dir)
        search = experiment.search
        self.space = MethodSpace.parse(search.space, experiment.program.method, tau=search.tau)
        self.budget = search.budget
        self.prune = search.pruner != "none" if prune is None else prune
        self.systems, self.plans, self.tracker, self.parent_run_id = systems, plans, tracker, parent_run_id
        self.workers, self.progress = workers, progress
        self._accept: tuple[str, ...] = ()  # the current configuration's legacy fingerprint
        self.program_dir = Path(program_dir) if program_dir else None
        self.program_state = program_state(self.program_dir)
        if self.program_dir is not None:  # a saved program that cannot load fails the search now, not every trial
            build_trial_program(experiment.program, program_dir=self.program_dir, systems=systems)

    def __call__(self, trial: optuna.trial.BaseTrial) -> float | tuple[float, float]:
        values: dict[str, Any] = {}
        try:
            choice = self.space.suggest(trial)
            values = {"method": choice.method, **choice.values}
            return self._run(trial, choice)
        except optuna.TrialPruned:
            raise
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

    def _chunks(self) -> list[int]:
        n, step = len(self.examples), self.experiment.search.chunk
        return list(range(step, n, step)) + [n] if self.prune else [n]

    def _run(self, trial: optuna.trial.BaseTrial, choice: Choice) -> float | tuple[float, float]:
        config = self.space.apply(self.experiment.program, choice)
        started = time.monotonic()
        measured, results_path = None, Path()
        if choice.curve is not None:
            measured, results_path = self._measure(trial, config, curve=choice.curve)
            if measured is None:  # a problem needs more routings than the cap: sample tau after all
                trial.set_user_attr("curve_fallback", f"over the cap of {self.experiment.search.curve_cap} routings")
                prefix = f"{choice.method}." if self.space.families else ""
                tau = trial.suggest_float(f"{prefix}threshold", *choice.curve)
                choice = replace(choice, values={**choice.values, "threshold": tau}, curve=None)
                config = self.space.apply(self.experiment.program, choice)
        if measured is None:
            measured, results_path = self._measure(trial, config, curve=None)
        assert measured is not None
        values = {"method": choice.method, **choice.values, **({"threshold": measured.tau} if measured.tau is not None
                                                               else {})}
        if measured.tau is not None:
            config = replace(config, scale=replace(config.scale, threshold=measured.tau))
        attrs = {"values": values, "method": choice.method, "accuracy": measured.accuracy,
                 "mean_tokens": measured.point_tokens if measured.point_tokens is not None
                 else measured.true_tokens / max(measured.n, 1), "objective_tokens": measured.tokens,
                 "token_objective": self.experiment.search.token_objective,
                 "system2_share": measured.system2_share, "true_cost_tokens": measured.true_tokens,
                 "spent_tokens": measured.spent_tokens, "true_calls": measured.calls,
                 "spent_calls": measured.spent_calls, "seconds": round(time.monotonic() - started, 3),
                 "n": measured.n, "n_failed": measured.n_failed, "results_path": str(results_path),
                 "fingerprint": results_path.parent.name,
                 "program_config": asdict(config), "correct": measured.correct,
                 **({"tau": measured.tau, "curve": [p.to_dict() for p in measured.curve or ()]}
                    if measured.curve is not None else {})}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        metrics = {"accuracy": measured.accuracy, "mean_tokens": attrs["mean_tokens"],
                   "objective_tokens": measured.tokens, "true_cost_tokens": measured.true_tokens,
                   "spent_tokens": measured.spent_tokens, "true_calls": measured.calls,
                   "spent_calls": measured.spent_calls, "wall_seconds": attrs["seconds"], "n_failed": measured.n_failed,
                   **({"system2_share": measured.system2_share} if measured.system2_share is not None else {})}
        self._log_child(trial, values, metrics=metrics,
                        artifacts=(results_path, results_path.with_name("summary.json")))
        if self.budget is not None:
            self._constrain(trial, measured)
            return measured.accuracy
        return measured.accuracy, measured.tokens

    def _measure(self, trial: optuna.trial.BaseTrial, config: ProgramConfig, *, curve: tuple[float, float] | None
                 ) -> tuple[Measured | None, Path]:
        """Evaluate chunk by chunk (one chunk without pruning), reporting to the pruner after each."""
        marker: dict[str, Any] = {"curve": list(curve), "cap": self.experiment.search.curve_cap} if curve else {}
        fingerprint = results_fingerprint(config, self.program_state, **marker)
        older = results_fingerprint(config, self.program_state, legacy=True, **marker)
        folder = self.run_dir / "configs" / fingerprint
        if not folder.exists() and (self.run_dir / "configs" / older).is_dir():
            folder = self.run_dir / "configs" / older  # recorded under the old name
        self._accept = (older,)
        if not folder.joinpath("config.yaml").exists():  # what these results are of
            save_experiment(replace(self.experiment, program=config), folder / "config.yaml")
        program = self.build(config)
        measured: Measured | None = None
        reported = 0
        for end in self._chunks():
            examples = self.examples[:end]
            if curve is not None:
                measured = self._curve(program, examples, folder / "curve.jsonl", fingerprint, curve)
                if measured is None:
                    return None, folder / "curve.jsonl"
            else:
                measured = self._plain(trial, program, examples, folder / "results.jsonl", fingerprint)
            if self.prune:
                reported = self._report(trial, measured, examples, reported)
        assert measured is not None
        return measured, folder / ("curve.jsonl" if curve is not None else "results.jsonl")

    def _plain(self, trial: optuna.trial.BaseTrial, program: Any, examples: Sequence[dspy.Example],
               results_path: Path, fingerprint: str) -> Measured:
        before = set(latest_by_id(ResultsFile(results_path).read(), fingerprint)) if results_path.exists() else set()
        report = evaluate(program, examples, results_path=results_path, fingerprint=fingerprint, accept=self._accept,
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
        new = [r for r in report.results if r.id not in before]
        return Measured(summary.accuracy, objective_tokens(summary, self.experiment.search.token_objective),
                        summary.n, {r.id: bool(r.correct) for r in report.results}, float(summary.total_tokens),
                        float(sum(r.spent.get("total_tokens", 0) for r in new)),
                        int(sum(r.totals.get("calls", 0) for r in report.results)),
                        int(sum(r.spent.get("calls", 0) for r in new)), summary.n_failed, summary.system2_share)

    def _curve(self, program: Any, examples: Sequence[dspy.Example], path: Path, fingerprint: str,
               domain: tuple[float, float]) -> Measured | None:
        from optimize.search.trial_curve import curve_trees

        trees = curve_trees(program, examples, path=path, fingerprint=fingerprint, domain=domain,
                            cap=self.experiment.search.curve_cap, workers=self.workers)
        if any(tree is None for tree in trees.values()):
            return None
        full = {i: tree for i, tree in trees.items() if tree is not None}
        points = exact_curve(list(full.values()), self.experiment.search.token_objective)
        best = best_within(points, self.budget)
        at = {i: next(leaf for leaf in tree if leaf.low <= best.tau < leaf.high) for i, tree in full.items()}
        leaves = [leaf for tree in full.values() for leaf in tree]
        # true cost: every routing as if run alone; spent: what reached the model (shared steps once)
        return Measured(best.accuracy, best.mean_tokens, len(full), {i: leaf.correct for i, leaf in at.items()},
                        sum(leaf.total_tokens for leaf in leaves), sum(leaf.spent_tokens for leaf in leaves),
                        sum(leaf.calls for leaf in leaves), sum(leaf.spent_calls for leaf in leaves),
                        sum(leaf.failed for leaf in at.values()), None, best.tau, points,
                        sum(leaf.total_tokens for leaf in at.values()) / max(len(at), 1))

    def _report(self, trial: optuna.trial.BaseTrial, measured: Measured, examples: Sequence[dspy.Example],
                reported: int) -> int:
        """Tell the pruner how the trial stands; raise TrialPruned when it says stop. Returns problems reported."""
        over = self.budget is not None and measured.tokens > self.budget
        if self.experiment.search.pruner == "wilcoxon":  # one value per problem, the step is the problem
            for i in range(reported, len(examples)):
                trial.report(0.0 if over else float(measured.correct.get(str(examples[i].id), False)), step=i)
        else:
            trial.report(0.0 if over else measured.accuracy, step=len(examples))
        if len(examples) < len(self.examples) and trial.should_prune():
            self._constrain(trial, measured)
            for key, value in {"n": measured.n, "pruned_at": measured.n, "accuracy": measured.accuracy,
                               "objective_tokens": measured.tokens, "true_calls": measured.calls,
                               "spent_calls": measured.spent_calls, "spent_tokens": measured.spent_tokens,
                               "method": trial.params.get("method", self.space.methods[0])}.items():
                trial.set_user_attr(key, value)
            raise optuna.TrialPruned(f"trial {trial.number}: pruned after {measured.n} problems "
                                     f"(running accuracy {measured.accuracy:.1f}%)")
        return len(examples)

    def _constrain(self, trial: optuna.trial.BaseTrial, measured: Measured) -> None:
        """The budget form's constraint, once per trial (Optuna's ``set_constraint``: feasible when <= 0)."""
        assert self.budget is not None
        over = measured.tokens - self.budget
        trial.set_user_attr("constraint", [over])  # shown with the trial; Optuna keeps its own copy
        trial.set_constraint(CONSTRAINT, over)

    def _log_child(self, trial: optuna.trial.BaseTrial, values: dict[str, Any], *, metrics: dict[str, Any],
                   artifacts: Sequence[Path], status: str = "FINISHED", reason: str | None = None) -> None:
        if self.tracker is None or self.parent_run_id is None:
            return
        params: dict[str, Any] = {"trial": trial.number, **values}
        if reason:
            params["fail_reason"] = reason[:500]
        try:
            self.tracker.child(self.parent_run_id, f"trial-{trial.number}", params=params,
                               metrics={k: v for k, v in metrics.items() if v is not None},
                               artifacts=[a for a in artifacts if a.exists()],
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
