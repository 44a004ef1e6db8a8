"""Compile an experiment: tune on a dev split, score dev and held-out, save the directory, track it.

``compile_experiment`` is what ``scale compile`` runs, step by step:

1. draw the dev problems (``data.dev``, ``POOL:N``) and ``data.val`` held-out problems after them
   from the same seeded shuffle of a TRAIN pool (a test set is refused: tuning on it would make
   every later test score optimistic);
2. run the optimizer over the program's predictors or one stage, with gold demos when asked
   (``optimize.compiling.tuning``): its seconds, model calls and demo tokens are recorded;
3. save the program directory (``optimize.compiling.saved``) at once, so an interrupted scoring step never
   loses the tuning;
4. score the tuned program and the untuned one on the dev and held-out problems
   (``optimize.evaluation.evaluate``: resumable, one results file each under ``<dir>/eval/``), with the
   paired difference (after - before, a paired bootstrap 95 % interval and McNemar's p), and add
   them to metadata.json (``<split>``, ``<split>_before``, ``<split>_change``) with the verdict
   (``optimize.compiling.verdict``): a worse held-out score is marked, and ``keep_if_better``
   saves nothing unless the held-out score rose;
5. log to MLflow: params (the flattened config), scores, and the pickle-free program directory
   as artifacts; with ``log_model=True`` (``--log-mlflow-model``) also the program as an MLflow
   dspy model (``mlflow.dspy.load_model(result.model_uri)`` restores it).

Why the MLflow model is opt-in: MLflow's dspy flavor stores the program with cloudpickle even with
``use_dspy_model_save=True`` (DSPy warns about it on every save), and loading a pickle runs code.
The program directory is the pickle-free format; the MLflow model is a convenience for MLflow
tooling, to be loaded only from a store you trust. It is checked for secrets before it is logged.

Example:
    >>> result = compile_experiment(load_experiment("experiments/quickstart.yaml"))  # doctest: +SKIP
    >>> result.directory, result.scores["dev"]["accuracy"]  # doctest: +SKIP
    (PosixPath('runs/quickstart/compiled-bootstrap'), 62.5)
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.compare.stats import paired_difference
from optimize.compiling.gold import Counter
from optimize.compiling.metric import METRIC_DESCRIPTION
from optimize.compiling.optimizers import budget_warnings
from optimize.compiling.saved import Builder, default_builder, program_fingerprint, save_program, update_metadata
from optimize.compiling.tuning import default_counter, tune
from optimize.compiling.verdict import judge, reject
from optimize.experiment import DataConfig, ExperimentConfig, experiment_to_dict
from optimize.tracking import Tracker, default_tracking_uri

if TYPE_CHECKING:
    import dspy

    from program.clients.lm import Systems

__all__ = ["CompileResult", "compile_experiment", "dev_and_heldout", "log_program_model"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompileResult:
    """What a compile produced and where it went.

    ``scores`` maps ``dev`` / ``heldout`` to ``{n, accuracy (percent), score (mean metric),
    mean_tokens, mean_prompt_tokens, mean_completion_tokens, mean_prompt_evaluated (None: the server
    did not say), calls, failed}``; ``scoring_seconds`` the problems' own wall seconds, summed, per scored
    run (kept apart: a resumed run's timings differ, its scores do not) (``heldout`` is None without held-out problems).
    ``verdict``: ``optimize.compiling.verdict.judge``; ``kept`` is False when ``keep_if_better``
    saved nothing. ``optimizer``: the run's record (seconds, model calls, demos and their tokens).
    ``run_id`` and ``model_uri`` are None when tracking was off; ``model_uri`` also when the MLflow
    model was not asked for (``log_model``) or could not be logged (see warnings).
    """

    directory: Path
    program: dspy.Module
    config: ExperimentConfig
    scores: dict[str, dict[str, float] | None]
    warnings: list[str] = field(default_factory=list)
    tracking_uri: str | None = None
    run_id: str | None = None
    model_uri: str | None = None
    verdict: dict[str, Any] = field(default_factory=dict)
    kept: bool = True
    optimizer: dict[str, Any] = field(default_factory=dict)


def dev_and_heldout(data: DataConfig) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """The dev problems (``data.dev``) and ``data.val`` held-out ones after them (or from ``data.val_offset``).

    Raises:
        DataError: ``data.dev`` names a test set, an unknown pool, or more problems than it has.
    """
    from data.errors import DataError
    from data.loading import dev_split, parse_slice
    from data.registry import benchmark_names, get_benchmark

    pool, n = parse_slice(data.dev)
    if get_benchmark(pool).role != "pool":
        raise DataError(f"`dev={data.dev}` names the test set {pool!r}: compile tunes on a train pool only "
                        f"({', '.join(benchmark_names('pool'))}), so that test scores stay honest.")
    seed = data.seed if data.seed is not None else 0
    dev = dev_split(pool, n, seed=seed, data_dir=data.data_dir)
    offset = n if data.val_offset is None else data.val_offset
    heldout = dev_split(pool, data.val, seed=seed, offset=offset, data_dir=data.data_dir) if data.val else []
    return dev, heldout


def compile_experiment(config: ExperimentConfig, *, output_dir: str | Path | None = None,
                       systems: Systems | None = None, builder: Builder | None = None, track: bool = True,
                       trace: bool = False, progress: bool = True, log_model: bool = False,
                       count: Counter | None = None) -> CompileResult:
    """Tune ``config``'s program with ``config.compile``, then score, save and track it.

    Args:
        config: the experiment; ``compile`` holds optimizer and budgets, ``data`` the dev slice.
        output_dir: the program directory (default ``<run_dir>/compiled-<optimizer>``).
        systems: the LMs (tests pass scripted ones); default: built from ``config.program.lm``.
        builder: ``(ProgramConfig, Systems) -> dspy.Module``; default ``program.methods.build_program``.
        track: log to MLflow (``tracking.mlflow_uri``, else a sqlite store in the run directory).
        trace: also record DSPy traces in MLflow (``mlflow.dspy.autolog``).
        progress: show progress bars while scoring.
        log_model: also log the program as an MLflow dspy model (cloudpickle: see the module docstring).
        count: tokens of a text, for demo tokens (default: System 1's server or litellm's estimate).

    Example:
        >>> result = compile_experiment(config, output_dir="runs/demo/compiled")  # doctest: +SKIP
    """
    from program.clients.lm import build_systems

    directory = Path(output_dir) if output_dir else config.run_dir / f"compiled-{config.compile.optimizer}"
    dev, heldout = dev_and_heldout(config.data)
    if config.compile.keep_if_better and not heldout:
        from program.config import ConfigError

        raise ConfigError("--keep-if-better keeps the program only if its held-out accuracy rose, and there are no "
                          "held-out problems: pass --val N.")
    warnings = budget_warnings(config.compile, len(dev), len(heldout))
    for warning in warnings:
        log.warning("compile budget: %s", warning)
    systems = systems or build_systems(config.program.lm)
    program = (builder or default_builder)(config.program, systems)
    tracker = Tracker.create(config.tracking.mlflow_uri or default_tracking_uri(config.run_dir),
                             config.tracking.mlflow_experiment) if track else None
    run_id = tracker.start(f"compile-{config.compile.optimizer}", params=_params(config, dev, heldout, directory),
                           tags={"scale.kind": "compile"}) if tracker else None
    model_uri = None
    with _active_run(tracker, run_id):
        with _autolog(trace):
            tuned, scores, record = _tune_save_score(
                program, systems, config, dev, heldout, directory, progress, count or default_counter(config),
                mlflow={"uri": tracker.uri if tracker else None, "run_id": run_id})
        warnings.extend(record["notes"])
        verdict = judge(scores)
        kept = not (config.compile.keep_if_better and not verdict["better"])
        if verdict["worse"]:
            log.warning("compile: %s", verdict["note"])
        if kept:
            update_metadata(directory, scores=scores, verdict=verdict, scoring_seconds=record["scoring_seconds"])
        else:
            reject(directory, verdict)
        if tracker and run_id:  # after autolog is off: its callbacks must not travel with the model
            split_scores = {f"{name}_{k}": v for name, s in scores.items() for k, v in (s or {}).items()
                            if isinstance(v, (int, float))}
            tracker.log_metrics(run_id, {"optimizer_seconds": record["seconds"], "optimizer_calls": record["calls"],
                                         **split_scores})
            tracker.log_artifact(run_id, directory, "program_dir")
            model_uri = _log_model_or_warn(tuned, warnings) if log_model and kept else None
    return CompileResult(directory=directory, program=tuned, config=config, scores=scores, warnings=warnings,
                         tracking_uri=tracker.uri if tracker else None, run_id=run_id, model_uri=model_uri,
                         verdict=verdict, kept=kept, optimizer=record)


def _tune_save_score(program: dspy.Module, systems: Systems, config: ExperimentConfig, dev: list[dspy.Example],
                     heldout: list[dspy.Example], directory: Path, progress: bool, count: Counter,
                     mlflow: dict[str, Any]) -> tuple[dspy.Module, dict[str, dict[str, Any] | None], dict[str, Any]]:
    """Optimize, save the directory at once (scoring may be interrupted), then score dev and held-out."""
    c = config.compile
    before = program.deepcopy()  # the untuned program, scored on the same problems for the paired difference
    tuning = tune(program, systems, config, dev, heldout, count=count)
    tuned = tuning.program
    budgets = {k: getattr(c, k) for k in ("max_bootstrapped_demos", "max_labeled_demos", "num_candidates",
                                          "num_trials", "max_metric_calls", "auto", "gold_demos", "shortest",
                                          "max_demo_tokens")}
    save_program(tuned, config, directory,
                 data={"dev": _slice(config.data, dev, 0),
                       "heldout": _slice(config.data, heldout, len(dev) if config.data.val_offset is None
                                         else config.data.val_offset)},
                 metric={"description": METRIC_DESCRIPTION, "token_penalty": c.token_penalty,
                         "cap_penalty": c.cap_penalty, "grader": _grader_version()},
                 optimizer={"name": c.optimizer, "seed": c.seed, "budgets": budgets, "stage": c.stage,
                            "labels": c.labels, **tuning.record},
                 scores={"dev": None, "heldout": None}, mlflow=mlflow)
    fingerprint, older = program_fingerprint(directory), program_fingerprint(directory, legacy=True)
    record = {**tuning.record, "scoring_seconds": {}}
    scores: dict[str, dict[str, Any] | None] = {}
    for name, problems in (("dev", dev), ("heldout", heldout)):
        if not problems:
            scores[name] = None
            continue
        after, after_correct, record["scoring_seconds"][name] = _score(
            tuned, problems, directory / "eval" / name, (fingerprint, older), config, progress)
        untuned, before_correct, record["scoring_seconds"][f"{name}_before"] = _score(
            before, problems, directory / "eval" / f"{name}-before", (f"untuned:{fingerprint}", f"untuned:{older}"),
            config, progress)
        change = paired_difference([before_correct[str(p.id)] for p in problems],
                                   [after_correct[str(p.id)] for p in problems], seed=c.seed)
        scores[name] = after
        scores[f"{name}_before"] = untuned
        scores[f"{name}_change"] = change.to_dict()
    return tuned, scores, record


def log_program_model(program: dspy.Module, name: str = "program") -> str:
    """Log ``program`` as an MLflow dspy model in the active run; returns its model URI.

    The model is first written to a temporary folder and checked for API-key values, so a
    secret never reaches the tracking store. Load it back with ``mlflow.dspy.load_model(uri)``.
    """
    import mlflow

    from optimize.compiling.saved import package_versions
    from optimize.tracking import assert_no_secrets

    # Explicit requirements: MLflow would otherwise infer them by loading the model in a
    # subprocess, which takes seconds. The pickled program imports this package (scale-tts).
    versions = package_versions()
    requirements = [f"{name}=={versions[name]}" for name in ("dspy", "mlflow", "litellm", "math-verify", "scale-tts")
                    if versions[name] != "missing"]
    with tempfile.TemporaryDirectory(prefix="scale-model-") as tmp:
        mlflow.dspy.save_model(program, str(Path(tmp) / name), use_dspy_model_save=True,
                               pip_requirements=requirements)
        assert_no_secrets(Path(tmp))
    return str(mlflow.dspy.log_model(program, name=name, use_dspy_model_save=True,
                                     pip_requirements=requirements).model_uri)


def _log_model_or_warn(program: dspy.Module, warnings: list[str]) -> str | None:
    # The program directory is already saved and logged: a model that cannot be pickled (a
    # custom LM engine holding a lock, say) should not fail a long compile at its last step.
    try:
        return log_program_model(program)
    except Exception as exc:
        warnings.append(f"the MLflow dspy model was not logged ({type(exc).__name__}: {exc}); the program "
                        "directory (logged as artifacts under program_dir) is complete.")
        log.warning("compile: %s", warnings[-1])
        return None


@contextlib.contextmanager
def _active_run(tracker: Tracker | None, run_id: str | None) -> Iterator[None]:
    """Make ``run_id`` MLflow's active run on this thread (``log_model`` and traces need one).

    Leaving the block ends the run: FINISHED, or FAILED when the block raised.
    """
    if tracker is None or run_id is None:
        yield
        return
    import mlflow

    previous = mlflow.get_tracking_uri()
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracker.uri)
    try:
        with mlflow.start_run(run_id=run_id):
            yield
    finally:
        mlflow.set_tracking_uri(previous)
        # set_tracking_uri also exports MLFLOW_TRACKING_URI; later steps must not inherit ours.
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


@contextlib.contextmanager
def _autolog(enabled: bool) -> Iterator[None]:
    """DSPy traces (per-module spans, token usage) to MLflow while the block runs, when ``enabled``."""
    if not enabled:
        yield
        return
    import mlflow

    mlflow.dspy.autolog(log_traces=True, log_traces_from_compile=True, log_traces_from_eval=True, silent=True)
    try:
        yield
    finally:
        mlflow.dspy.autolog(disable=True)


def _score(program: dspy.Module, problems: Sequence[dspy.Example], out_dir: Path, fingerprints: tuple[str, str],
           config: ExperimentConfig, progress: bool) -> tuple[dict[str, Any], dict[str, bool], float]:
    """Accuracy, mean metric score, tokens and calls of ``program`` on ``problems`` (resumable results file),
    each problem's correctness by id (for the paired difference), and the problems' wall seconds, summed.
    ``fingerprints``: the current one, and the legacy one whose results resume too.

    ``mean_prompt_evaluated`` is None when no call said what it reused from a cached prefix: the
    server did not report it, and "not reported" is not the prompt size.
    """
    from optimize.evaluation.evaluate import evaluate

    report = evaluate(program, problems, results_path=out_dir / "results.jsonl", fingerprint=fingerprints[0],
                      accept=fingerprints[1:],
                      workers=config.workers, progress=progress, description=f"score {out_dir.name}")
    penalty = config.compile.token_penalty
    values = [float(r.correct) - penalty * r.totals.get("total_tokens", 0) / 1000 for r in report.results]
    summary, n = report.summary, max(1, len(report.results))
    reported = any(r.totals.get("timed_calls") or r.totals.get("prompt_reused") for r in report.results)
    evaluated = sum(r.totals.get("prompt_evaluated", 0) for r in report.results) / n if reported else None
    return ({"n": summary.n, "accuracy": summary.accuracy,
             "score": round(sum(values) / len(values), 6) if values else 0.0,
             "mean_tokens": summary.mean_tokens,
             "mean_prompt_tokens": round(summary.mean_tokens_by_kind.get("prompt_tokens", 0.0), 2),
             "mean_completion_tokens": round(summary.mean_tokens_by_kind.get("completion_tokens", 0.0), 2),
             "mean_prompt_evaluated": None if evaluated is None else round(evaluated, 2),
             "calls": int(sum(r.totals.get("calls", 0) for r in report.results)), "failed": summary.n_failed},
            {r.id: bool(r.correct) for r in report.results}, summary.wall_seconds)


def _slice(data: DataConfig, problems: Sequence[dspy.Example], offset: int) -> dict[str, Any]:
    pool = data.dev.partition(":")[0]
    return {"benchmark": pool, "seed": data.seed if data.seed is not None else 0, "offset": offset,
            "n": len(problems), "ids": [str(p.id) for p in problems]}


def _params(config: ExperimentConfig, dev: Sequence[Any], heldout: Sequence[Any], directory: Path) -> dict[str, Any]:
    return {**experiment_to_dict(config), "dev_size": len(dev), "heldout_size": len(heldout),
            "program_dir": str(directory), "metric": METRIC_DESCRIPTION}


def _grader_version() -> str:
    from data.grading import grader_version

    return grader_version()

