"""The labelling runs of ``scale calibrate``: each dev problem solved all-System-1 and all-System-2.

Per problem (one JSON line appended as it finishes, so an interrupted calibration resumes):

1. the plan: SCALE's decomposition, or the cascade's single step; no scores;
2. the all-System-1 chain: at each step, in System 1's context, every measurement a requested
   source needs: the rating, the one-digit rating, and System 1's attempt, which IS the chain's
   solution of the step (``attempt:agreement`` adds samples; its first one is a cache hit; with
   ``attempt:deepconf`` or ``attempt:mean_logprob`` that attempt carries logprobs, and every
   one-attempt option is scored from it);
3. System 2 on the same step in the same context; the step's label is whether the two values differ;
4. the all-System-2 chain (its first step is the label call of step 1, reused).

A problem's label is whether the all-System-1 answer is wrong. Token counts are completion tokens
as the server counted them, cache hits included (a cost does not vanish because it was cached).

Example:
    >>> groups_needed(["rating", "attempt:length"])
    ['free', 'rating', 'attempt']
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dspy

from program.calls import Solution, solve
from program.config import ConfigError
from program.ledger import captured
from program.scale import Scale
from program.scale.sources import AttemptSource, StepView
from program.scale.sources.attempt import LOGPROB_OPTIONS
from program.scale.sources.features import measure
from program.scale.steps import StepResult, solve_in_order
from program.voting import answer_key

__all__ = ["SOURCE_NAMES", "StepLabel", "ProblemLabel", "groups_needed", "label_problem", "label_all"]

SOURCE_NAMES: tuple[str, ...] = ("rating", "rating_logprobs", "attempt:length", "attempt:agreement",
                                 "attempt:deepconf", "attempt:mean_logprob", "learned")


@dataclass
class StepLabel:
    """One step of the all-System-1 chain, its System 2 counterpart, and every source's score."""

    index: int
    step: str
    s1_value: str | None
    s2_value: str | None
    differs: bool
    features: dict[str, float]
    scores: dict[str, float]
    s1_tokens: int
    s2_tokens: int
    shown: str = ""    # the problem text the step was shown (conditions or the problem)
    earlier: str = ""  # the earlier steps as rendered in System 1's context: with ``step`` and ``s2_value``,
    #                    a stage-level example for compiling System 1 (empty in labels written before them)


@dataclass
class ProblemLabel:
    """One dev problem's labelling run."""

    id: str
    problem: str
    gold: str
    steps: list[StepLabel]
    s1_answer: str | None
    s2_answer: str | None
    s1_correct: bool
    s2_correct: bool
    s1_tokens: int
    s2_tokens: int
    measure_tokens: int
    wall_seconds: float
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProblemLabel:
        return cls(**{**data, "steps": [StepLabel(**s) for s in data["steps"]]})


def groups_needed(sources: Sequence[str]) -> list[str]:
    """The feature groups the sources need (``free`` and ``attempt`` always: they are the System 1 chain)."""
    unknown = [s for s in sources if s not in SOURCE_NAMES]
    if unknown:
        raise ConfigError(f"--sources: unknown source(s) {', '.join(map(repr, unknown))}; "
                          f"known sources are: {', '.join(SOURCE_NAMES)}.")
    groups = ["free"]
    if "rating" in sources or "learned" in sources:
        groups.append("rating")
    if "rating_logprobs" in sources:
        groups.append("rating_logprobs")
    return [*groups, "attempt"]


def label_problem(program: Scale, example: dspy.Example, sources: Sequence[str]) -> ProblemLabel:
    """Run the labelling of one problem (see the module docstring). ``program`` supplies the plan,
    the predictors and the LMs; its own threshold and source are not used."""
    from data.grading import grade

    started = time.monotonic()
    problem, gold = str(example.problem), str(example.answer)
    plan = program.plan(problem)
    _, seen = program.step_view(problem, plan)
    groups = [g for g in groups_needed(sources) if g != "attempt"]
    extra = [s.split(":", 1)[1] for s in sources if s.startswith("attempt:") and s != "attempt:length"]
    steps: list[StepLabel] = []
    failures = [f.reason for f in plan.failures]
    measure_tokens = 0
    first_s2: list[tuple[Solution, int]] = []  # step 1's label call and its tokens: the System 2 chain's step 1

    def label_step(i: int, step: str, earlier: str) -> StepResult:
        nonlocal measure_tokens
        view = StepView(seen, earlier, step, is_last=i == len(plan.steps) - 1, index=i, original=problem)
        with captured() as measuring:
            measured = measure(program, view, groups)
        # One attempt serves every one-attempt option: it asks for logprobs when a logprob option is
        # wanted, and length, deepconf and mean_logprob are all read from it (a second greedy call
        # would cost as much again and, batched, need not even give the same text).
        first = next((o for o in extra if o in LOGPROB_OPTIONS), "length")
        with captured() as s1_calls:
            verdict = AttemptSource(first).assess(program, view)
        assert verdict.attempt is not None  # the attempt source always returns its attempt
        signals = dict(verdict.difficulty.signals or {})
        window = program.config.confidence_window
        scores = _scores(measured.values, AttemptSource("length").score_of("length", verdict.attempt, signals, window))
        with captured() as more:
            for option in extra:
                source = AttemptSource(option)
                if option in LOGPROB_OPTIONS:
                    scores[f"attempt:{option}"] = source.score_of(option, verdict.attempt, signals, window)
                else:
                    scores[f"attempt:{option}"] = source.assess(program, view).difficulty.score
        with captured() as s2_calls:
            s2 = solve(program.system2, program.systems.system2, "system2", problem=seen, earlier_steps=earlier,
                       current_step=step)
        measure_tokens += _completion(measuring) + _completion(more)
        failures.extend(f.reason for f in measured.failures)
        attempt = verdict.attempt
        steps.append(StepLabel(
            index=i, step=step, s1_value=attempt.answer, s2_value=s2.answer,
            differs=attempt.answer is None or s2.answer is None or answer_key(attempt.answer) != answer_key(s2.answer),
            features={**measured.values, **signals}, scores=scores,
            s1_tokens=_completion(s1_calls), s2_tokens=_completion(s2_calls), shown=seen, earlier=earlier))
        if i == 0:
            first_s2.append((s2, _completion(s2_calls)))
        return StepResult(step, attempt.text, attempt.answer)

    s2_chain_tokens = 0

    def system2(i: int, step: str, earlier: str) -> StepResult:
        nonlocal s2_chain_tokens
        if i == 0:  # the same (empty) context as the label call, so it is that call
            own, tokens = first_s2[0]
        else:
            with captured() as chain:
                own = solve(program.system2, program.systems.system2, "system2", problem=seen, earlier_steps=earlier,
                            current_step=step)
            tokens = _completion(chain)
        s2_chain_tokens += tokens
        return StepResult(step, own.text, own.answer)

    # Both chains are SCALE's step loop: the all-System-1 one (the attempts), then the all-System-2 one.
    s1_done = solve_in_order(plan.steps, program.config.context, label_step)
    s2_done = solve_in_order(plan.steps, program.config.context, system2)
    s1_last, s2_last = s1_done[-1], s2_done[-1]
    return ProblemLabel(
        id=str(example.id), problem=problem, gold=gold, steps=steps, s1_answer=s1_last.value, s2_answer=s2_last.value,
        s1_correct=bool(grade(gold, s1_last.text).correct), s2_correct=bool(grade(gold, s2_last.text).correct),
        s1_tokens=sum(s.s1_tokens for s in steps), s2_tokens=s2_chain_tokens, measure_tokens=measure_tokens,
        wall_seconds=round(time.monotonic() - started, 3), failures=failures)


def label_all(program: Callable[[], Scale], examples: Sequence[dspy.Example], path: Path | str, sources: Sequence[str],
              *, progress: bool = True, workers: int = 1) -> list[ProblemLabel]:
    """Label every example, appending each to ``path`` (JSONL); labels already there are kept, not redone.

    ``workers`` problems are labelled at once (each with its own program from ``program()``); lines
    are appended as problems finish, so their order in the file may differ from ``examples``', and
    the result is in ``examples``' order.
    """
    import contextvars
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from tqdm import tqdm

    if workers < 1:
        raise ConfigError(f"workers={workers!r}: label at least one problem at a time (workers >= 1).")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = {label.id: label for label in _read(path)}
    todo = [e for e in examples if str(e.id) not in done]
    bar = tqdm(total=len(examples), initial=len(examples) - len(todo), desc="calibrate: labelling",
               disable=not progress, unit="problem")

    def keep(label: ProblemLabel, out: Any) -> None:
        out.write(json.dumps(label.to_dict()) + "\n")
        out.flush()
        done[label.id] = label
        labels = list(done.values())
        bar.set_postfix(s1=f"{sum(x.s1_correct for x in labels)}/{len(labels)}",
                        s2=f"{sum(x.s2_correct for x in labels)}/{len(labels)}")
        bar.update()

    with path.open("a") as out, bar:
        if workers == 1:
            for example in todo:
                keep(label_problem(program(), example, sources), out)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scale-calibrate") as pool:
                # each problem in a copy of this context: the dspy.context overrides and the ledger travel
                running: set[Future[ProblemLabel]] = {
                    pool.submit(contextvars.copy_context().run, label_problem, program(), e, sources) for e in todo}
                failed: BaseException | None = None
                while running:
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        if future.cancelled():
                            continue
                        if future.exception() is not None:
                            # as one at a time: stop at the first failure, but keep the problems already
                            # in flight (their calls are paid): only those not yet started are cancelled
                            failed = failed or future.exception()
                            for waiting in running:
                                waiting.cancel()
                            continue
                        keep(future.result(), out)
                if failed is not None:
                    raise failed
    return [done[str(e.id)] for e in examples]


def _scores(values: dict[str, float], attempt_score: float) -> dict[str, float]:
    scores = {"attempt:length": attempt_score}
    if "rating" in values:
        scores["rating"] = values["rating"]
    if "rating_expected" in values:
        scores["rating_logprobs"] = values["rating_expected"]
    return scores


def _completion(calls: Any) -> int:
    return int(calls.totals()["completion_tokens"])


def _read(path: Path) -> list[ProblemLabel]:
    """Labels already written; a last line cut short by a kill is dropped (that problem is redone)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines()
    if text and not text.endswith("\n"):
        lines = lines[:-1]
        path.write_text("".join(line + "\n" for line in lines))
    labels = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            labels.append(ProblemLabel.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ConfigError(f"{path}: line {number} is not a calibration label ({exc}); "
                              "remove the file to start over.") from None
    return labels
