"""The DSPy side of compiling: hiding idle predictors, budgets, and the optimizers as their authors run them.

The metric and its GEPA feedback live in ``optimize.compiling.metric`` (re-exported here).
Budgets are explicit (``CompileConfig``) and ``budget_warnings`` says when they are too small to
mean anything.

``optimizer`` maps to DSPy 3.4 (``dspy/teleprompt``): bootstrap -> BootstrapFewShot, labeled ->
LabeledFewShot, random-search -> BootstrapFewShotWithRandomSearch, mipro -> MIPROv2, gepa -> GEPA
(reflecting with ``compile.reflection``, else the stages LM), simba -> SIMBA, none -> no tuning.

With gold demos (``demos``: train problems with their worked solutions, ``optimize.compiling.gold``)
each optimizer gets them the way its authors feed labelled data: LabeledFewShot and
BootstrapFewShot take them as the trainset (labelled demos, and bootstrapping on them: a demo of
the model's own is kept only when it is right within the cap); MIPROv2 bootstraps and proposes
from them and scores candidates on the dev examples (its valset); GEPA reflects on them and
tracks its Pareto front on the dev examples (its valset). Without gold demos, every optimizer
works on the dev examples alone. ``optimize.compiling.compile.compile_experiment`` adds the data
split, evaluation, the saved directory and MLflow.

Example:
    >>> build_optimizer(CompileConfig(optimizer="labeled", gold_demos=8, max_labeled_demos=4), None,
    ...                 prompt_lm=None, dev_size=8).k
    4
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dspy

from optimize.compiling.metric import METRIC_DESCRIPTION, CompileMetric, Metered, describe_outcome, prediction_tokens
from optimize.experiment import CompileConfig
from program.ledger import Ledger, recording

__all__ = ["METRIC_DESCRIPTION", "Metered", "hidden", "CompileMetric", "prediction_tokens", "describe_outcome",
           "budget_warnings", "build_optimizer", "optimize_program"]

log = logging.getLogger(__name__)

_DEMO_OPTIMIZERS = ("bootstrap", "labeled", "random-search")


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
    if c.optimizer == "labeled" and c.max_labeled_demos == 0:
        found.append("labeled puts max_labeled_demos gold demos in the prompt, and max_labeled_demos = 0: nothing "
                     "will change.")
    elif c.optimizer in _DEMO_OPTIMIZERS and demos == 0:
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
    from dspy.teleprompt import GEPA, SIMBA, BootstrapFewShot, BootstrapFewShotWithRandomSearch, LabeledFewShot, MIPROv2

    c = config
    demos = {"max_bootstrapped_demos": c.max_bootstrapped_demos, "max_labeled_demos": c.max_labeled_demos}
    if c.optimizer == "none":
        return None
    if c.optimizer == "bootstrap":
        return BootstrapFewShot(metric=metric, max_rounds=1, **demos)
    if c.optimizer == "labeled":
        return LabeledFewShot(k=c.max_labeled_demos)
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
    raise ValueError(f"`optimizer={c.optimizer!r}` is not one of bootstrap, labeled, random-search, mipro, gepa, "
                     "simba, none.")




def optimize_program(program: dspy.Module, trainset: Sequence[dspy.Example], *, config: CompileConfig,
                     prompt_lm: Any, workers: int = 1, metric: Any = None, reflection_lm: Any = None,
                     demos: Sequence[dspy.Example] | None = None, spent: Ledger | None = None) -> dspy.Module:
    """Run ``config.optimizer`` over ``program``'s predictors; returns the tuned copy.

    ``trainset``: the dev examples (what candidates are scored on). ``demos``: gold demos of the
    program's one predictor (see the module docstring); None for none. Every problem the optimizer
    runs is metered (a fresh ledger), so ``token_penalty`` and ``cap_penalty`` apply; ``spent``
    receives every call made (the program's and the optimizer's own), for the cost of the compile.
    ``metric``: a stage's own metric (``optimize.compiling.stage``); default the compile metric.
    ``reflection_lm``: GEPA's reflection LM (``compile.reflection``); default ``prompt_lm``.

    Example:
        >>> tuned = optimize_program(program, dev, config=CompileConfig(optimizer="bootstrap"),
        ...                          prompt_lm=systems.stages)  # doctest: +SKIP
    """
    if not trainset:
        raise ValueError("`trainset` is empty: compile needs dev problems (--dev POOL:N).")
    metric = metric or CompileMetric(config.token_penalty, config.cap_penalty)
    reflects_on = len(demos) if demos and config.optimizer == "gepa" else len(trainset)  # GEPA's minibatches
    optimizer = build_optimizer(config, metric, prompt_lm=prompt_lm, dev_size=reflects_on, workers=workers,
                                reflection_lm=reflection_lm)
    if optimizer is None:
        return program
    idle = list(getattr(program, "idle_predictors", list)())
    if idle:
        log.info("compile: not offering %s to the optimizer (this configuration never calls them)", ", ".join(idle))
    with hidden(program, idle) as restore, recording(spent if spent is not None else Ledger()):
        tuned = _compile(optimizer, Metered(program, spent), list(trainset), list(demos or []), config, prompt_lm)
        restore(tuned)
    return tuned


def _compile(optimizer: Any, student: Metered, dev: list[dspy.Example], demos: list[dspy.Example],
             config: CompileConfig, prompt_lm: Any) -> dspy.Module:
    name = config.optimizer
    with dspy.context(lm=prompt_lm):  # for optimizer internals that use the default LM
        if name == "labeled":  # the k shortest stay in their order; otherwise LabeledFewShot samples (seed 0)
            tuned = optimizer.compile(student, trainset=demos, sample=config.shortest is None)
        elif name == "mipro":
            valset = dev if demos else None  # without gold demos MIPROv2 holds out 80 % of the dev set itself
            trials = {} if config.auto else {"num_trials": config.num_trials}
            scored = len(dev) if demos else int(len(dev) * 0.8)
            tuned = optimizer.compile(student, trainset=demos or dev, valset=valset, seed=config.seed,
                                      minibatch=scored > 35, **trials)
        elif name == "gepa":
            tuned = optimizer.compile(student, trainset=demos or dev, valset=dev if demos else None)
        elif name == "simba":
            tuned = optimizer.compile(student, trainset=dev, seed=config.seed)
        else:  # bootstrap, random-search: demos of the model's own (and labelled ones) from the trainset
            tuned = optimizer.compile(student, trainset=demos or dev)
    return tuned.program
