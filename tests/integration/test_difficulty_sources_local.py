"""Difficulty sources on the real embedded model: `attempt` and `rating_logprobs` give scores that vary.

The prompted rating on this 1.5B model is a constant (every step 0.5, experiments/results/gsm8k30);
the sources added for it must not be. Three GSM8K problems, each the cascade's one step: System 1's
attempt (about 5-10 s each on 2 cores) and a one-token digit rating (under a second). The embedded
engine (llama-server) returns logprobs with no switch, so the session's server serves both; the
error for a server without logprobs is tested with a scripted refusal (tests/unit/test_difficulty_sources.py).
"""

from __future__ import annotations

import pytest

from program.clients.lm import build_systems
from program.config import LMConfig, ScaleConfig
from program.scale.cascade import WHOLE_PROBLEM, Cascade
from program.scale.sources import StepView, build_source
from tests.integration.test_scale_local import PROBLEMS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def logprobs_lm_config(local_lm_config: LMConfig) -> LMConfig:
    """The session's embedded server: llama-server returns logprobs without a server switch."""
    return local_lm_config


def scores(lm_config: LMConfig, source: str) -> list[float]:
    config = ScaleConfig(difficulty_source=source, threshold=0.5)
    host = Cascade(config, build_systems(lm_config))
    found = []
    for problem, _ in PROBLEMS:
        verdict = build_source(host.config).assess(host, StepView(problem, "(none: this is the first step)",
                                                                  WHOLE_PROBLEM, is_last=True, index=0))
        assert 0.0 <= verdict.difficulty.score <= 1.0 and verdict.difficulty.fallback is None
        found.append(verdict.difficulty.score)
    return found


def test_attempt_and_rating_logprobs_scores_vary_over_three_problems(logprobs_lm_config: LMConfig) -> None:
    attempt = scores(logprobs_lm_config, "attempt")
    digits = scores(logprobs_lm_config, "rating_logprobs")
    assert len(set(attempt)) >= 2, attempt
    assert len(set(digits)) >= 2, digits
