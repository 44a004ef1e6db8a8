"""``rating_logprobs``: the rating question asked for ONE digit 0-9, read from the token's logprobs.

The score is the expected digit over the reply token's ``top_logprobs`` (renormalised over digit
tokens; " 7" and "7." count as 7) divided by 9; the digit distribution's entropy and the
probability mass on digits are recorded beside it. A prompted score on a small model is nearly
constant (every step "0.5"); the distribution under it still moves.

Cost: one generated token. The embedded engine (llama.cpp's llama-server) returns logprobs for
the sampled tokens with no server switch. The old llama-cpp-python server needed
``--logits_all true``: on 2 cores a 1-token rating with 10 top logprobs took 0.83 s (median)
against 0.55-0.63 s without (experiments/results/difficulty-sources/logprobs-cost.md). vLLM and SGLang return
logprobs at no noticeable cost.

Example:
    >>> from program.testing import scripted_systems
    >>> from program.clients.transport import Completion
    >>> from program.scale import Scale
    >>> from program.config import ScaleConfig
    >>> reply = Completion(text="6", logprobs=[{"token": "6", "logprob": -0.7, "top": [["6", -0.7], ["3", -0.7]]}])
    >>> host = Scale(ScaleConfig(), scripted_systems(lambda m: reply, str))
    >>> RatingLogprobsSource().assess(host, StepView("P", "(none)", "S", is_last=False, index=0)).difficulty.score
    0.5
"""

from __future__ import annotations

import dspy

from program.calls import Failure, call
from program.confidence import digit_distribution, digit_mass, entropy, expected_digit
from program.config import ScaleConfig
from program.scale.difficulty import Difficulty
from program.scale.sources.base import Assessment, DifficultySource, Host, NoLogprobsError, StepView, refused_logprobs

__all__ = ["RatingLogprobsSource", "digit_signature"]

STAGE = "difficulty"
TOP_LOGPROBS = 10  # enough to hold all ten digits when the model is torn between them

DIGIT_INSTRUCTIONS = """Rate how hard the current sub-problem of a math problem is, as one digit from 0 to 9.

0 to 4: an elementary or middle school student who knows the topic could do it quickly.
5 to 9: even a strong high school or college student would need extensive thought or help.
Do not solve it. Reply with the digit only."""


def digit_signature(rating: dspy.Predict) -> type[dspy.Signature]:
    """The rating predictor's signature asking for one digit, passed per call (traced under ``rating``).

    Example:
        >>> from program.signatures import AssessDifficulty
        >>> digit_signature(dspy.Predict(AssessDifficulty)).output_fields["score"].annotation
        <class 'int'>
    """
    signature: type[dspy.Signature] = rating.signature
    return signature.with_instructions(DIGIT_INSTRUCTIONS).with_updated_fields(
        "score", type_=int, desc="the difficulty, one digit from 0 to 9")


class RatingLogprobsSource(DifficultySource):
    """One 1-token rating call with ``top_logprobs``; the expected digit / 9 is the score."""

    name = "rating_logprobs"
    asks_rating = True
    last_step_rule = True  # as the prompted rating it stands for

    def reads_logprobs(self, config: ScaleConfig) -> bool:
        return True

    def assess(self, host: Host, step: StepView) -> Assessment:
        config = host.config
        settings = {"max_tokens": 1, "temperature": 0.0, "logprobs": True, "top_logprobs": TOP_LOGPROBS}
        try:
            # Demos dropped: they show scores in [0, 1], which would teach the wrong reply.
            result = call(host.difficulty, host.systems.stages, STAGE, config=settings,
                          signature=digit_signature(host.difficulty), demos=[], problem=step.problem,
                          earlier_steps=step.earlier_steps, current_step=step.current_step)
        except Exception as exc:
            if refused_logprobs(exc):
                raise NoLogprobsError(self.name) from exc
            raise
        content = (result.prediction.get("logprobs") or {}).get("content") if result.prediction is not None else None
        if result.prediction is not None and not content:
            raise NoLogprobsError(self.name)
        top = content[0].get("top_logprobs") or [] if content else []
        distribution = digit_distribution([[t["token"], t["logprob"]] for t in top])
        if not distribution:
            reason = (f"no digit among the reply's {len(top)} most likely tokens "
                      f"({result.reason or 'reply ' + repr(content[0]['token'] if content else '')}); "
                      f"used fallback {config.fallback_difficulty}")
            fallback = Difficulty(score=config.fallback_difficulty, fallback=reason, attempts=1, source=self.name)
            return Assessment(fallback, [Failure(STAGE, reason, step.index)])
        mass = digit_mass([[t["token"], t["logprob"]] for t in top])
        expected = expected_digit(distribution)
        signals = {"rating_expected": round(expected / 9.0, 6), "rating_entropy": round(entropy(distribution), 6),
                   "digit_mass": round(mass, 6)}
        return Assessment(Difficulty(score=round(expected / 9.0, 6), raw=expected, attempts=1, source=self.name,
                                     signals=signals))
