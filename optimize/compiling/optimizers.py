"""The DSPy side of compiling: the metric, its GEPA feedback, budgets, and the optimizers.

The metric is correctness (``data.grading``) minus ``token_penalty`` x tokens / 1000, the tokens
read from a fresh ledger per problem (``Metered``). GEPA gets the same score plus text feedback
(``CompileMetric.feedback``): gold vs predicted answer, the plan's steps and routing, failures
and what the predictor being tuned produced. Budgets are explicit (``CompileConfig``) and
``budget_warnings`` says when they are too small to mean anything.

``optimizer`` maps to DSPy: bootstrap -> BootstrapFewShot, random-search ->
BootstrapFewShotWithRandomSearch, mipro -> MIPROv2 (auto=None), gepa -> GEPA (the stages LM
reflects), simba -> SIMBA, none -> no tuning. ``optimize.compiling.compile.compile_experiment`` adds the
data split, evaluation, the saved directory and MLflow.

Example:
    >>> metric = CompileMetric(token_penalty=0.1)
    >>> ex = dspy.Example(problem="2+2?", answer="4").with_inputs("problem")
    >>> metric(ex, dspy.Prediction(answer="4"))
    1.0
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dspy

from optimize.experiment import CompileConfig
from program.ledger import Ledger, recording

__all__ = ["METRIC_DESCRIPTION", "Metered", "hidden", "CompileMetric", "prediction_tokens", "describe_outcome",
           "budget_warnings", "build_optimizer", "optimize_program"]

log = logging.getLogger(__name__)

METRIC_DESCRIPTION = ("correct (data.grading: the answer field vs the gold answer, math-verify) minus "
                      "token_penalty x total tokens (prompt + completion, all stages) / 1000; "
                      "while bootstrapping demos: correct only")
_DEMO_OPTIMIZERS = ("bootstrap", "random-search")
_MAX_TEXT = 600  # characters of one model output quoted in GEPA feedback


class _Idle:
    """Holds a predictor out of ``named_parameters`` (not a Parameter, not a Module)."""

    def __init__(self, predictor: dspy.Predict) -> None:
        self.predictor = predictor

    def __deepcopy__(self, memo: dict[int, Any]) -> _Idle:
        return self


@contextlib.contextmanager
def hidden(program: dspy.Module, names: Sequence[str]) -> Iterator[Callable[[dspy.Module], None]]:
    """Hide ``program``'s predictors ``names`` from optimizers while the block runs, then put them back.

    Yields ``restore(copy)``, which gives a tuned copy of ``program`` fresh copies of them (the
    optimizer copied the program with the predictors hidden).

    Example:
        >>> program = dspy.Module(); program.a, program.b = dspy.Predict("q -> x"), dspy.Predict("q -> y")
        >>> with hidden(program, ["b"]):
        ...     [name for name, _ in program.named_predictors()]
        ['a']
        >>> [name for name, _ in program.named_predictors()]
        ['a', 'b']
    """
    originals = {name: getattr(program, name) for name in names}
    for name, predictor in originals.items():
        setattr(program, name, _Idle(predictor))

    def restore(copy: dspy.Module) -> None:
        for name, predictor in originals.items():
            if copy is not program:
                setattr(copy, name, predictor.deepcopy())

    try:
        yield restore
    finally:
        for name, predictor in originals.items():
            setattr(program, name, predictor)


class Metered(dspy.Module):
    """Runs ``program`` in a fresh token ledger per call and hangs the ledger on the prediction.

    Optimizers call programs from worker threads, where no caller's ledger is active; this gives
    every problem its own (as ``optimize.evaluation.evaluate`` does), so the metric can charge its tokens.
    The wrapped program is ``.program``; its predictors appear as ``program.<name>``.
    """

    def __init__(self, program: dspy.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, **inputs: Any) -> Any:
        ledger = Ledger()
        with recording(ledger):
            prediction = self.program(**inputs)
        if isinstance(prediction, dspy.Prediction):
            prediction._scale_ledger = ledger  # an underscore attribute, not an output field
        return prediction


def prediction_tokens(prediction: Any) -> int:
    """Total tokens of one prediction: from its ledger (``Metered``), else its trace's steps, else 0.

    The trace fallback (a SCALE trace's per-step usage) misses the planning calls: prefer ``Metered``.
    """
    ledger = getattr(prediction, "_scale_ledger", None)
    if isinstance(ledger, Ledger):
        return int(ledger.totals()["total_tokens"])
    trace = getattr(prediction, "trace", None) if isinstance(prediction, dspy.Prediction) else None
    steps = trace.get("steps") or [] if isinstance(trace, dict) else []
    usages = [s.get("usage") or {} for s in steps if isinstance(s, dict)]
    return int(sum(u.get("prompt_tokens", 0) + u.get("completion_tokens", 0) for u in usages))


@dataclass(frozen=True)
class CompileMetric:
    """The compile metric: ``correct - token_penalty * tokens / 1000`` (see ``METRIC_DESCRIPTION``).

    Called with a ``trace`` (an optimizer bootstrapping demos) it returns correctness as a bool:
    a penalised wrong answer is a negative float, which DSPy would read as a success.
    """

    token_penalty: float = 0.0

    def __call__(self, example: Any, prediction: Any, trace: Any = None) -> float | bool:
        correct = self.correct(example, prediction)
        if trace is not None:
            return correct
        return float(correct) - self.token_penalty * prediction_tokens(prediction) / 1000

    @staticmethod
    def correct(example: Any, prediction: Any) -> bool:
        from data.grading import metric

        return prediction is not None and bool(metric(example, prediction))

    def feedback(self, gold: Any, pred: Any, trace: Any = None, pred_name: str | None = None,
                 pred_trace: Any = None) -> dspy.Prediction:
        """GEPA's 5-argument metric: the score, and text saying what went wrong and where.

        Example:
            >>> out = CompileMetric().feedback(dspy.Example(answer="4"), dspy.Prediction(answer="5"))
            >>> out.score, out.feedback.splitlines()[0]
            (0.0, 'Wrong: the gold answer is 4, the program answered 5.')
        """
        score = self(gold, pred)
        return dspy.Prediction(score=score, feedback=describe_outcome(gold, pred, self.token_penalty,
                                                                         pred_name, pred_trace))


def describe_outcome(gold: Any, pred: Any, token_penalty: float = 0.0, pred_name: str | None = None,
                     pred_trace: Any = None) -> str:
    """Feedback text: verdict, the plan's steps with difficulty and mode, failures, the tuned predictor's output."""
    answer = getattr(pred, "answer", None) if pred is not None else None
    if CompileMetric.correct(gold, pred):
        lines = [f"Correct: the program answered {answer}, matching the gold answer {gold.answer}."]
    else:
        shown = answer if answer not in (None, "") else "nothing (no final answer)"
        lines = [f"Wrong: the gold answer is {gold.answer}, the program answered {shown}."]
    tokens = prediction_tokens(pred)
    if tokens:
        cost = f" (costing {token_penalty * tokens / 1000:.3f} of the score)" if token_penalty else ""
        lines.append(f"It used {tokens} tokens{cost}.")
    trace = getattr(pred, "trace", None) if isinstance(pred, dspy.Prediction) else None
    if isinstance(trace, dict):
        for step in trace.get("steps") or []:
            lines.append(_describe_step(step))
        for failure in trace.get("failures") or []:
            if isinstance(failure, dict):
                where = f" at step {failure['step'] + 1}" if failure.get("step") is not None else ""
                lines.append(f"Problem in {failure.get('stage')}{where}: {failure.get('reason')}.")
    if pred_name:
        outputs = [dict(out) for _, _, out in (pred_trace or []) if hasattr(out, "items")]
        if outputs:
            text = "; ".join(str(o)[:_MAX_TEXT] for o in outputs)
            lines.append(f"The predictor being tuned ({pred_name}) produced: {text}")
    return "\n".join(lines)


def _describe_step(step: Any) -> str:
    if not isinstance(step, dict):
        return f"Step: {str(step)[:_MAX_TEXT]}"
    difficulty = step.get("difficulty")
    score = difficulty.get("score") if isinstance(difficulty, dict) else difficulty
    rated = f"difficulty {score:.2f}, " if isinstance(score, (int, float)) else ""
    value = step.get("value")
    result = f"result {value}" if value not in (None, "") else "NO result (no \\boxed{} answer)"
    return (f"Step {int(step.get('index', 0)) + 1} ({rated}{step.get('mode', '?')}): "
            f"{str(step.get('step', ''))[:_MAX_TEXT]} -> {result}")


def budget_warnings(config: CompileConfig, dev_size: int, val_size: int = 0) -> list[str]:
    """Reasons the budgets are too small to mean anything (empty when they are fine).

    Example:
        >>> budget_warnings(CompileConfig(optimizer="gepa", max_metric_calls=3), dev_size=4)[0]
        'dev set has 4 problems (< 5): its score is noise, and so is what the optimizer picks by it.'
    """
    c = config
    found: list[str] = []
    if c.optimizer == "none":
        return found
    if dev_size < 5:
        found.append(f"dev set has {dev_size} problems (< 5): its score is noise, and so is what the optimizer "
                     "picks by it.")
    demos = c.max_bootstrapped_demos + c.max_labeled_demos
    if c.optimizer in _DEMO_OPTIMIZERS and demos == 0:
        found.append(f"{c.optimizer} tunes demos only, and max_bootstrapped_demos + max_labeled_demos = 0: "
                     "nothing will change.")
    if c.optimizer == "mipro" and (c.num_candidates < 2 or c.num_trials < 2):
        found.append(f"mipro with num_candidates={c.num_candidates}, num_trials={c.num_trials}: fewer than two "
                     "candidates or trials leaves nothing to choose between.")
    if c.optimizer == "random-search" and c.num_candidates < 2:
        found.append(f"random-search with num_candidates={c.num_candidates}: one random demo set is no search.")
    if c.optimizer == "gepa" and c.max_metric_calls < 2 * dev_size:
        found.append(f"gepa with max_metric_calls={c.max_metric_calls} < 2 x dev size ({dev_size}): scoring the "
                     "starting program takes a full dev pass, leaving little or nothing for reflection.")
    if c.optimizer == "simba" and c.num_trials < 2:
        found.append(f"simba with num_trials={c.num_trials} (its max_steps): one step barely moves the program.")
    if val_size == 0:
        found.append("no held-out problems (val = 0): only the dev score is reported, and the program was tuned "
                     "on it; pass --val N for an honest estimate.")
    return found


def build_optimizer(config: CompileConfig, metric: Any, *, prompt_lm: Any, dev_size: int,
                    workers: int = 1, reflection_lm: Any = None) -> Any:
    """The DSPy optimizer named by ``config.optimizer`` with its explicit budgets (None for ``none``).

    ``prompt_lm`` writes instructions (MIPROv2, SIMBA) and reflects (GEPA) unless ``reflection_lm``
    is given (``compile.reflection``): the stages LM.
    """
    from dspy.teleprompt import GEPA, SIMBA, BootstrapFewShot, BootstrapFewShotWithRandomSearch, MIPROv2

    c = config
    demos = {"max_bootstrapped_demos": c.max_bootstrapped_demos, "max_labeled_demos": c.max_labeled_demos}
    if c.optimizer == "none":
        return None
    if c.optimizer == "bootstrap":
        return BootstrapFewShot(metric=metric, max_rounds=1, **demos)
    if c.optimizer == "random-search":
        return BootstrapFewShotWithRandomSearch(metric=metric, num_candidate_programs=c.num_candidates,
                                                num_threads=workers, **demos)
    if c.optimizer == "mipro":
        sizes = {"auto": c.auto} if c.auto else {"auto": None, "num_candidates": c.num_candidates}
        return MIPROv2(metric=metric, prompt_model=prompt_lm, task_model=prompt_lm, num_threads=workers, seed=c.seed,
                       verbose=False, track_stats=False, **sizes, **demos)
    if c.optimizer == "gepa":
        budget = {"auto": c.auto} if c.auto else {"max_metric_calls": c.max_metric_calls}
        return GEPA(metric=metric.feedback, reflection_lm=reflection_lm or prompt_lm,
                    reflection_minibatch_size=max(1, min(3, dev_size)),
                    num_threads=workers, seed=c.seed, track_stats=False, **budget)
    if c.optimizer == "simba":
        return SIMBA(metric=metric, bsize=max(1, min(32, dev_size)), num_candidates=c.num_candidates,
                     max_steps=c.num_trials, max_demos=c.max_bootstrapped_demos, prompt_model=prompt_lm,
                     num_threads=workers)
    raise ValueError(f"`optimizer={c.optimizer!r}` is not one of bootstrap, random-search, mipro, gepa, simba, none.")


def optimize_program(program: dspy.Module, trainset: Sequence[dspy.Example], *, config: CompileConfig,
                     prompt_lm: Any, workers: int = 1, metric: Any = None, reflection_lm: Any = None) -> dspy.Module:
    """Run ``config.optimizer`` over ``program``'s predictors on ``trainset``; returns the tuned copy.

    Every problem the optimizer runs is metered (a fresh ledger), so ``token_penalty`` applies.
    ``metric``: a stage's own metric (``optimize.compiling.stage``); default the compile metric.
    ``reflection_lm``: GEPA's reflection LM (``compile.reflection``); default ``prompt_lm``.

    Example:
        >>> tuned = optimize_program(program, dev, config=CompileConfig(optimizer="bootstrap"),
        ...                          prompt_lm=systems.stages)  # doctest: +SKIP
    """
    if not trainset:
        raise ValueError("`trainset` is empty: compile needs dev problems (--dev POOL:N).")
    metric = metric or CompileMetric(config.token_penalty)
    optimizer = build_optimizer(config, metric, prompt_lm=prompt_lm, dev_size=len(trainset), workers=workers,
                                reflection_lm=reflection_lm)
    if optimizer is None:
        return program
    idle = list(getattr(program, "idle_predictors", list)())
    if idle:
        log.info("compile: not offering %s to the optimizer (this configuration never calls them)", ", ".join(idle))
    with hidden(program, idle) as restore:
        tuned = _compile(optimizer, program, trainset, config, prompt_lm)
        restore(tuned)
    return tuned


def _compile(optimizer: Any, program: dspy.Module, trainset: Sequence[dspy.Example], config: CompileConfig,
             prompt_lm: Any) -> dspy.Module:
    student, train = Metered(program), list(trainset)
    with dspy.context(lm=prompt_lm):  # for optimizer internals that use the default LM
        if config.optimizer == "mipro":
            # MIPROv2 holds out 80% of the trainset as its valset; minibatches need more than 35 of them.
            trials = {} if config.auto else {"num_trials": config.num_trials}
            tuned = optimizer.compile(student, trainset=train, seed=config.seed, minibatch=int(len(train) * 0.8) > 35,
                                      **trials)
        elif config.optimizer == "simba":
            tuned = optimizer.compile(student, trainset=train, seed=config.seed)
        else:
            tuned = optimizer.compile(student, trainset=train)
    return tuned.program
