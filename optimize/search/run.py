"""Search methods, tau and the budgets for the best accuracy/tokens trade-off: an Optuna study.

Two forms of the question (``search.budget``, ``scale search --budget``):

- front (no budget): two objectives, accuracy on the dev slice (maximise) and mean tokens per
  problem (minimise); the front shown is built from every point, curve points included.
- budget: one objective, accuracy, subject to mean tokens <= budget (Optuna's
  ``Trial.set_constraint``, read by the sampler and ``study.best_trial``); a pruner
  (``search.pruner``) stops losing trials, recorded PRUNED with the problems they measured. The
  choice is the most accurate feasible point; an infeasible point is never chosen (no feasible
  point: no choice, and the summary says so).

Each trial is one configuration evaluated on the dev problems (``optimize.search.objective``);
each method at the base config's values (score-routed ones sampling tau: the paper's best setting,
tau 0.2, and the reference code's default, tau 0.5) is enqueued first (once per study).

- Reuse: plans (decomposition, up-front difficulty) are made once per problem and reused by every
  trial, resumed study and worker (``optimize.search.plans``); identical LM calls come from the response
  cache. Per trial and in total, the search reports the true cost of each configuration and the
  tokens it actually spent.
- Resume and several workers: ``optimize.search.study`` (N is the study's total; a rerun runs only what
  is missing; a failed trial is recorded FAIL with its ``fail_reason`` and the study goes on).
  On a database server (``postgresql://``) workers on several machines share the study, with
  heartbeats: a killed worker's trial is failed and retried by the others (``join=True`` joins a
  study without creating or seeding it), and the plan cache lives in that database too.
  A server that stays down (``ServerError``), a trial in which any problem failed with a server
  error, or Ctrl-C stops the search instead: the cut-off trial is queued again, so the rerun picks
  it up (and retries only its failed problems) once the server is back.
- MLflow: one parent run per study (its id is a study user attr, so resumes and other workers log
  under it) and one child run per trial, by explicit parent id (``optimize.tracking``).
- At the end: the Pareto front as a table, ``pareto/front.png``, and ``pareto/trial-<n>.yaml``
  experiment files (``optimize.search.pareto``). Once the study is complete, held-out confirmation
  (``optimize.search.confirm``): the choice (budget form) or up to ``search.confirm`` front points
  on ``search.heldout`` held-out train problems, each beside the best uniform method at no more
  tokens; ``heldout.json``, the answer line, and the winner as ``winner.yaml``.

Example:
    >>> result = run_search(load_experiment("experiments/quickstart.yaml"), trials=4)  # doctest: +SKIP
    >>> print_search(result)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from optimize.errors import ServerDownError
from optimize.experiment import ExperimentConfig, experiment_to_dict
from optimize.search.confirm import Confirmed, answer_line, confirm_points, heldout_slice, write_winner
from optimize.search.families import MethodSpace
from optimize.search.objective import SearchObjective, load_dev, paper_seeds
from optimize.search.pareto import export_front, pareto_table, plot_front, point_program_config, point_row, trial_row
from optimize.search.plans_db import open_plan_store
from optimize.search.points import Point, describe, front, study_points, within_budget
from optimize.search.study import (
    StudyHandle,
    counted_trials,
    enqueue_seeds,
    heartbeat,
    interrupt_trial,
    make_pruner,
    next_trial,
    open_study,
)
from program.errors import ServerError

if TYPE_CHECKING:
    import dspy

    from optimize.tracking import Tracker
    from program.clients.lm import Systems

__all__ = ["SearchResult", "run_search", "print_search", "PARENT_RUN_ATTR"]

log = logging.getLogger(__name__)

PARENT_RUN_ATTR = "mlflow_parent_run_id"


@dataclass
class SearchResult:
    """What a ``run_search`` call did and where everything is."""

    study: optuna.Study
    storage_url: str
    run_dir: Path
    ran: int
    front: list[Point]
    budget: float | None = None
    choice: Point | None = None  # budget form: the most accurate feasible point (None: none is feasible)
    confirmed: list[Confirmed] = field(default_factory=list)  # held-out rows, most accurate first
    heldout_slice: str | None = None
    answer: str | None = None  # the one plain line
    winner: Path | None = None  # winner.yaml
    exported: list[Path] = field(default_factory=list)
    plot: Path | None = None
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    artifact_uri: str | None = None
    complete: bool = False
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def dashboard_command(self) -> str:
        """The optuna-dashboard command for this study's storage."""
        url = self.storage_url
        return f"optuna-dashboard {url.removeprefix('journal:') if url.startswith('journal:') else url}"


def run_search(config: ExperimentConfig, *, trials: int | None = None, study_name: str | None = None,
               storage: str | None = None, program_dir: str | Path | None = None, workers: int | None = None,
               systems: Systems | None = None, examples: Sequence[dspy.Example] | None = None,
               tracking: bool = True, progress: bool = True,
               on_trial: Callable[[optuna.trial.FrozenTrial], None] | None = None, join: bool = False,
               heartbeat_seconds: float | None = None, budget: float | None = None,
               pruner: str | None = None, heldout: Sequence[dspy.Example] | None = None) -> SearchResult:
    """Run (or resume, or join) the study until it holds ``trials`` counted trials; export the front.

    Args:
        config: the experiment (base program, dev slice, ``search`` and ``tracking`` sections).
        trials, study_name, storage: override ``config.search``; storage URLs as in ``optimize.search.study``.
        program_dir: a compiled program whose demos/instructions every trial keeps.
        workers: problems evaluated at once in a trial (default ``config.workers``). For
            trials in parallel, start more ``scale search`` processes on the same storage.
        systems: LMs for every trial (tests); default: built from each trial's config.
        examples: the dev problems (default: ``load_dev(config)``).
        tracking: log to MLflow (``config.tracking.mlflow_uri``, else the default store).
        progress: progress bars and a line per finished trial.
        on_trial: called with each trial this process finished.
        join: only join an existing study (a worker): never create it, never enqueue the seeds.
        heartbeat_seconds: trial heartbeat interval on a database server (default ``optimize.search.study``'s).
        budget, pruner: override ``config.search.budget`` / ``.pruner`` (the budget form).
        heldout: the held-out problems (default: ``heldout_slice`` of ``config.search.heldout``).
    """
    if budget is not None or pruner is not None:  # validated like the config's own values
        from dataclasses import replace

        config = replace(config, search=replace(config.search, budget=budget if budget is not None
                                                else config.search.budget, pruner=pruner or config.search.pruner))
    search = config.search
    total = trials if trials is not None else search.trials
    if total < 1:
        raise ValueError(f"`trials={total!r}` must be at least 1.")
    space = MethodSpace.parse(search.space, config.program.method, tau=search.tau)  # fails before any model call
    settings = [space.setting(config.program, values) for values in search.enqueue]  # so does a bad setting
    dev = list(examples) if examples is not None else load_dev(config)
    held: tuple[list[dspy.Example], str] | None = None  # chosen now: a pool too small fails before the study
    if search.heldout:
        held = ((list(heldout), f"{len(heldout)} given held-out problems") if heldout is not None else
                heldout_slice(config, search.heldout, exclude=[str(e.id) for e in dev],
                              recorded=(search.recorded, program_dir)))
    handle = open_study(study_name or search.study, storage or search.storage, config.run_dir,
                        sampler_name=search.sampler, seed=search.seed, trials=total, heartbeat=heartbeat_seconds,
                        join=join, budget=search.budget,
                        pruner=make_pruner(search.pruner, chunk=search.chunk, problems=len(dev)))
    if "token_objective" not in handle.study.user_attrs:  # what the second objective counts, for the plot
        handle.study.set_user_attr("token_objective", search.token_objective)
    tracker, parent = _parent_run(config, handle, total) if tracking else (None, None)
    if not join:  # the user's settings first, then the known ones
        enqueue_seeds(handle, [*settings, *(paper_seeds(space, config.program) if search.enqueue_paper else [])],
                      total)
    objective = SearchObjective(config, dev, run_dir=config.run_dir, systems=systems,
                                plans=open_plan_store(handle.url, config.run_dir), program_dir=program_dir,
                                tracker=tracker, parent_run_id=parent, workers=workers or config.workers,
                                progress=progress)
    ran = 0
    while (trial := next_trial(handle, total)) is not None:
        try:
            with heartbeat(handle, trial):
                values = objective(trial)
        except (KeyboardInterrupt, ServerError) as exc:
            # Not the configuration's fault: queue it again and stop. With the server down, every
            # later trial would fail too, and a failed trial is never rerun.
            with handle.lock():
                interrupt_trial(handle, trial, "Ctrl-C" if isinstance(exc, KeyboardInterrupt) else str(exc))
            if isinstance(exc, ServerDownError) and not exc.reached and ran:  # earlier trials did finish
                raise ServerDownError(f"{exc} The {ran} trials finished before it are saved in the study.") from exc
            raise
        except optuna.TrialPruned:  # the pruner stopped it: recorded PRUNED, with its problem count (user attrs)
            frozen = handle.study.tell(trial, state=TrialState.PRUNED)
        except Exception as exc:  # recorded FAIL with its fail_reason; the study goes on
            log.warning("trial %d failed: %s: %s", trial.number, type(exc).__name__, exc)
            frozen = handle.study.tell(trial, state=TrialState.FAIL)
        else:
            frozen = handle.study.tell(trial, values)
        ran += 1
        if progress:
            _print_trial(frozen)
        if on_trial is not None:
            on_trial(frozen)
    return _finish(config, handle, total, ran, tracker, parent, objective=objective, held=held,
                   systems=systems, program_dir=program_dir, progress=progress)


def _parent_run(config: ExperimentConfig, handle: StudyHandle, total: int) -> tuple[Tracker, str]:
    """The study's MLflow parent run: made by the first process, found through a study attr by the others."""
    from optimize.tracking import Tracker, default_tracking_uri

    uri = config.tracking.mlflow_uri or default_tracking_uri(config.run_dir)
    tracker = Tracker.create(uri, config.tracking.mlflow_experiment)
    with handle.lock():
        parent = handle.study.user_attrs.get(PARENT_RUN_ATTR)
        if parent is not None:
            try:
                tracker.client.get_run(parent)
            except Exception:  # made in another tracking store: start one here
                log.warning("MLflow run %s of study %s is not in %s; starting a new parent run",
                            parent, handle.name, uri)
                parent = None
        if parent is None:
            parent = tracker.start(f"search-{handle.name}", params={
                "study": handle.name, "trials": total, "storage": handle.url, **experiment_to_dict(config)},
                tags={"optuna.study": handle.name})
            tracker.log_dict(parent, experiment_to_dict(config), "config.json")
            handle.study.set_user_attr(PARENT_RUN_ATTR, parent)
    return tracker, parent


def _finish(config: ExperimentConfig, handle: StudyHandle, total: int, ran: int, tracker: Tracker | None,
            parent: str | None, *, objective: SearchObjective,
            held: tuple[list[dspy.Example], str] | None, systems: Systems | None,
            program_dir: str | Path | None, progress: bool) -> SearchResult:
    """Front, choice, held-out confirmation, files, plot and exports; the parent run closes once no trial is left."""
    pareto_dir = config.run_dir / "pareto"
    search = config.search
    with handle.lock():
        study = handle.study
        counted = counted_trials(study)
        busy = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
        complete = len(counted) >= total and not busy
        points = study_points(study)
    best = front(points)
    choice = within_budget(points, search.budget) if search.budget is not None else None
    confirmed: list[Confirmed] = []
    slice_name = None
    if complete and held is not None and points:  # outside the lock: other workers may finish meanwhile
        chosen = [choice] if choice is not None else [] if search.budget is not None else sorted(
            best, key=lambda p: (-p.accuracy, p.tokens))[:search.confirm]
        if chosen:
            configs = {p.name: point_program_config(p, study, config.program) for p in points}
            examples, slice_name = held
            confirmed = confirm_points(chosen, points, configs, examples, slice_name, run_dir=config.run_dir,
                                       state=objective.program_state, program_dir=program_dir, systems=systems,
                                       workers=objective.workers, progress=progress,
                                       token_objective=search.token_objective, tracker=tracker,
                                       parent_run_id=parent)
            confirmed.sort(key=lambda c: (-c.accuracy, c.tokens))
    answer = winner = None
    if confirmed:
        top = confirmed[0]
        answer = answer_line(top, search.budget)
        point = next(p for p in points if p.name == top.point)
        winner = write_winner(config, point_program_config(point, study, config.program), top,
                              config.run_dir / "winner.yaml")
        rows = {"slice": slice_name, "answer": answer, "winner": str(winner),
                "confirmed": [c.to_dict() for c in confirmed]}
        (config.run_dir / "heldout.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    scores: dict[str, dict[str, Any]] = {c.point: {"accuracy": c.accuracy, "mean_tokens": c.tokens, "n": c.n,
                                                   "slice": c.slice} for c in confirmed}
    with handle.lock():  # several workers may finish at once: one writes at a time
        exported = export_front(study, config, pareto_dir, heldout=scores)
        plot = plot_front(study, pareto_dir / "front.png",
                          heldout={c.point: (c.accuracy, c.tokens) for c in confirmed})
        totals = search_totals(counted)
        artifact_uri = None
        if tracker is not None and parent is not None:
            try:
                tracker.log_metrics(parent, {f"search_{k}": v for k, v in totals.items()})
                tracker.log_artifact(parent, pareto_dir, "pareto")
                artifact_uri = tracker.client.get_run(parent).info.artifact_uri  # may differ from the store
                if complete:
                    tracker.end(parent)
            except Exception as exc:  # the study's results are safe in its storage either way
                log.warning("could not log the search summary to MLflow (%s: %s)", type(exc).__name__, exc)
    return SearchResult(study=study, storage_url=handle.url, run_dir=config.run_dir, ran=ran, front=best,
                        budget=search.budget, choice=choice, confirmed=confirmed, heldout_slice=slice_name,
                        answer=answer, winner=winner, exported=exported, plot=plot, parent_run_id=parent,
                        tracking_uri=tracker.uri if tracker else None, artifact_uri=artifact_uri,
                        complete=complete, totals=totals)


def search_totals(trials: Sequence[optuna.trial.FrozenTrial]) -> dict[str, int]:
    """Trials by state; tokens and model calls: what the configurations cost, what the search spent.

    ``true`` counts every call each configuration made (as if run alone); ``spent`` only those that
    reached the model; the difference is what the plan store and the response cache reused.
    """
    def total(key: str) -> int:
        return sum(int(t.user_attrs.get(key, 0)) for t in trials)

    return {"trials": len(trials),
            "complete": sum(1 for t in trials if t.state == TrialState.COMPLETE),
            "pruned": sum(1 for t in trials if t.state == TrialState.PRUNED),
            "failed": sum(1 for t in trials if t.state == TrialState.FAIL),
            "true_cost_tokens": total("true_cost_tokens"), "spent_tokens": total("spent_tokens"),
            "true_calls": total("true_calls"), "spent_calls": total("spent_calls")}


def _print_trial(trial: optuna.trial.FrozenTrial) -> None:
    row = trial_row(trial)
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in trial.user_attrs.get("values", trial.params).items())
    if trial.state == TrialState.COMPLETE:
        outcome = (f"accuracy {row['accuracy']:.1f}%, {row['mean_tokens']:,.0f} tokens/problem, "
                   f"spent {row.get('spent_tokens', 0):,}")
        if trial.user_attrs.get("curve"):
            outcome += f" (the best of its exact curve's {len(trial.user_attrs['curve'])} points)"
    elif trial.state == TrialState.PRUNED:
        outcome = (f"PRUNED after {trial.user_attrs.get('pruned_at', '?')} problems "
                   f"(running accuracy {trial.user_attrs.get('accuracy', 0.0):.1f}%)")
    else:
        outcome = f"{trial.state.name}: {row.get('fail_reason', '')}"
    print(f"trial {trial.number} ({params}): {outcome}", flush=True)


def print_search(result: SearchResult, console: Any = None) -> None:
    """The Pareto table, the budget choice, the totals, and where the exports, plot, MLflow runs and dashboard are."""
    from rich.console import Console

    console = console or Console()
    rows = [point_row(p, result.study) for p in result.front]
    console.print(pareto_table(rows) if rows else "[yellow]No finished trials: no Pareto front yet.[/yellow]")
    if result.budget is not None:
        if result.choice is None:
            console.print(f"No configuration kept within {result.budget:,.0f} tokens/problem on the dev problems: "
                          "raise --budget or add cheaper settings to search.space.", highlight=False)
        else:
            c = result.choice
            console.print(f"Chosen within {result.budget:,.0f} tokens/problem: {describe(c)} "
                          f"(dev {c.accuracy:.1f}%, {c.tokens:,.0f} tokens/problem; {c.name}).", highlight=False)
    if result.confirmed:
        console.print(heldout_table(result), highlight=False)
    t = result.totals
    console.print(f"{t['trials']} trials ({t['complete']} complete, {t['pruned']} pruned, {t['failed']} failed; "
                  f"{result.ran} run now). Tokens: true cost of all configurations {t['true_cost_tokens']:,}; "
                  f"spent by the search {t['spent_tokens']:,} (the rest was reused). Model calls: "
                  f"{t['true_calls']:,} needed, {t['spent_calls']:,} made: reuse saved "
                  f"{t['true_calls'] - t['spent_calls']:,}.", highlight=False)
    if not result.complete:
        console.print("Other trials are still running or queued (another worker); the last one to finish "
                      "closes the MLflow parent run.", highlight=False)
    for path in result.exported:
        console.print(f"exported: {path}", highlight=False)
    console.print(f"plot: {result.plot}", highlight=False)
    if result.tracking_uri:
        console.print(f"MLflow: parent run {result.parent_run_id} in {result.tracking_uri} "
                      f"(mlflow ui --backend-store-uri {result.tracking_uri}); artifacts in {result.artifact_uri}",
                      highlight=False)
    console.print(f"dashboard: {result.dashboard_command}", highlight=False)
    if result.answer:
        console.print(f"winner: {result.winner} (scale eval --config {result.winner})", highlight=False)
        console.print(result.answer, highlight=False)


def heldout_table(result: SearchResult) -> Any:
    """Dev and held-out side by side, and the paired difference against the best uniform method."""
    from rich.table import Table

    table = Table(title=f"Held-out: {result.heldout_slice}")
    for name in ("point", "configuration", "dev %", "dev tokens", "held-out %", "95 % interval", "held-out tokens",
                 "vs uniform (held-out)", "difference [95 %]"):
        table.add_column(name, justify="right")
    for c in result.confirmed:
        v = c.versus
        d = v.get("difference") or {}
        table.add_row(c.point, c.description, f"{c.dev_accuracy:.1f}", f"{c.dev_tokens:,.0f}", f"{c.accuracy:.1f}",
                      f"[{c.interval[0]:.0f}, {c.interval[1]:.0f}]", f"{c.tokens:,.0f}",
                      f"{v['description']}: {v['accuracy']:.1f}% at {v['tokens']:,.0f}" if v else "none in the search",
                      f"{d['difference']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]" if d else "-")
    return table
