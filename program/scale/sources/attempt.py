r"""``attempt`` (try, then escalate): System 1 solves the step first; its attempt shows the difficulty.

An attempt with no readable ``\boxed{}`` answer, or one that hit System 1's cap, scores 1.0: it
failed where anyone can see. Otherwise ``ScaleConfig.attempt_confidence`` decides the score:

- ``length``: completion tokens / cap (a long attempt is a struggling one);
- ``deepconf``: DeepConf's lowest sliding-window confidence, as ``exp(-c / 5)``;
- ``mean_logprob``: ``1 - exp(mean token logprob)``;
- ``agreement``: ``attempt_samples`` System 1 samples (the first greedy, the others at
  ``attempt_temperature`` with their own seeds); 1 - largest agreeing share. A step that is not
  escalated keeps the majority's solution. The samples are sent at once, up to the server's limit.

SCALE re-solves a step whose score is above tau with System 2; otherwise the attempt is the
step's solution. Its tokens are booked to the step (stage ``system1``) either way.

The logprob options ask for 5 top logprobs per generated token. The old embedded server
(llama-cpp-python) computed the top-k in Python over the 151K-token vocabulary, about 0.2 s more
per token (experiments/results/difficulty-sources/logprobs-cost.md); the embedded engine is now
llama.cpp's llama-server, which does it in C++ (issue 24 measured 12.2 vs 11.8 tokens/s with and
without). ``length`` and ``agreement`` need no logprobs.

Example:
    >>> from program.testing import function_lm
    >>> from program.clients.lm import Systems
    >>> from program.scale import Scale
    >>> from program.config import ScaleConfig
    >>> systems = Systems(function_lm(str), function_lm(lambda m: "2 + 2 = 4, so \\boxed{4}", max_tokens=64),
    ...                   function_lm(str))
    >>> host = Scale(ScaleConfig(difficulty_source="attempt"), systems)
    >>> verdict = AttemptSource().assess(host, StepView("P", "(none)", "S", is_last=True, index=0))
    >>> verdict.attempt.answer, verdict.difficulty.signals["attempt_length"]
    ('4', 7.0)
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from program.calls import Solution, rollout, solve
from program.clients import limits
from program.concurrent import run_all
from program.confidence import agreement, confidence_difficulty, lowest_group_confidence, mean_logprob
from program.config import ConfigError, ScaleConfig
from program.ledger import captured
from program.scale.difficulty import Difficulty
from program.scale.sources.base import Assessment, DifficultySource, Host, NoLogprobsError, StepView, refused_logprobs

__all__ = ["AttemptSource"]

STAGE = "system1"
TOP_LOGPROBS = 5
LOGPROB_OPTIONS = ("deepconf", "mean_logprob")  # the ``attempt_confidence`` options that read token logprobs


class AttemptSource(DifficultySource):
    """System 1 tries; what its attempt shows is the step's difficulty."""

    name = "attempt"
    needs_solved_context: bool = True

    def __init__(self, option: str | None = None) -> None:
        self.option = option  # None: the config's ``attempt_confidence``

    def reads_logprobs(self, config: ScaleConfig) -> bool:
        return (self.option or config.attempt_confidence) in LOGPROB_OPTIONS

    def assess(self, host: Host, step: StepView) -> Assessment:
        config, lm = host.config, host.systems.system1
        option = self.option or config.attempt_confidence
        cap = lm.kwargs.get("max_tokens")
        if not cap:
            raise ConfigError("difficulty source 'attempt' needs System 1's `max_tokens` (its cap) to tell a cut-off "
                              "attempt; set `lm.system1.max_tokens`.")
        settings: dict[str, Any] = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if self.reads_logprobs(
            config) else {}
        lengths: dict[int, float] = {}

        def attempt_at(i: int) -> Solution:  # 0: the attempt; 1, 2, ...: agreement's other samples
            sampling = settings if i == 0 else {**rollout(i), "temperature": config.attempt_temperature}
            with captured() as calls:
                try:
                    solution = solve(host.system1, lm, STAGE, config=sampling, problem=step.problem,
                                     earlier_steps=step.earlier_steps, current_step=step.current_step)
                except Exception as exc:
                    if refused_logprobs(exc):
                        raise NoLogprobsError(f"{self.name}:{option}") from exc
                    raise
            lengths[i] = float(calls.totals()["completion_tokens"])
            return solution

        # Agreement's samples are independent of each other: at once, up to the server's limit.
        n = config.attempt_samples if option == "agreement" else 1
        samples = run_all([partial(attempt_at, i) for i in range(n)], limits.width(lm))
        first, length = samples[0], lengths[0]
        signals = {"attempt_length": length, "attempt_ratio": round(length / cap, 6),
                   "attempt_capped": float(length >= cap), "attempt_no_answer": float(first.answer is None)}
        attempt, calls_made = first, 1
        if option == "agreement" and config.attempt_samples > 1:
            calls_made = len(samples)
            spread, winner = agreement([s.answer for s in samples])
            signals["attempt_agreement"] = round(1.0 - spread, 6)
            attempt = next((s for s in samples if winner is not None and s.answer == winner), first)
            score = 1.0 if winner is None else spread
        else:
            score = self.score_of(option, first, signals, config.confidence_window)
        difficulty = Difficulty(score=round(min(1.0, max(0.0, score)), 6), raw=score, attempts=calls_made,
                                source=f"{self.name}:{option}", signals=signals)
        return Assessment(difficulty, attempt=attempt)

    def score_of(self, option: str, attempt: Solution, signals: dict[str, float], window: int) -> float:
        """The score ``option`` (not agreement) gives one attempt with these ``signals``: 1.0 when it was cut
        off or has no answer, else its confidence. It adds the option's own signal to ``signals``.
        ``scale calibrate`` scores every one-attempt option from one attempt with it."""
        if signals["attempt_capped"] or signals["attempt_no_answer"]:
            return 1.0
        return self._confidence_score(option, attempt, signals, window)

    def _confidence_score(self, option: str, attempt: Solution, signals: dict[str, float], window: int) -> float:
        if option == "length":
            return signals["attempt_ratio"]
        if not attempt.logprobs:
            raise NoLogprobsError(f"{self.name}:{option}")
        if option == "deepconf":
            lowest = lowest_group_confidence(attempt.logprobs, window)
            signals["attempt_lowest_confidence"] = round(lowest, 6)
            return confidence_difficulty(lowest)
        mean = mean_logprob(attempt.logprobs)
        signals["attempt_mean_logprob"] = round(mean, 6)
        return 1.0 - math.exp(mean)
