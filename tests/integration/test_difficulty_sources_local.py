"""Difficulty sources on the real embedded model: `attempt` and `rating_logprobs` give scores that vary.

The prompted rating on this 1.5B model is a constant (every step 0.5, experiments/results/gsm8k30);
the sources added for it must not be. Three GSM8K problems, each the cascade's one step: System 1's
attempt (about 5-10 s each on 2 cores) and a one-token digit rating (under a second). A second
server is started with logprobs (llama.cpp ``--logits_all true``); the session's server has none, and
asking it for the digit rating must fail with the one-line error that names the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from program.clients.lm import build_systems
from program.config import Endpoint, LMConfig, ScaleConfig
from program.scale.cascade import WHOLE_PROBLEM, Cascade
from program.scale.sources import NoLogprobsError, StepView, build_source
from tests.integration.test_scale_local import PROBLEMS

pytestmark = pytest.mark.integration

LOGPROBS_PORT = 8767


@pytest.fixture(scope="module")
def logprobs_lm_config(local_lm_config: LMConfig) -> Iterator[LMConfig]:
    """The local preset on a second embedded server that computes logprobs."""
    from program.serving.local import LocalServer, model_path

    server = LocalServer(model_path(), port=LOGPROBS_PORT, logprobs=True)
    server.start()
    try:
        server.wait_ready()
        endpoint = Endpoint(model=local_lm_config.endpoint.model, api_base=server.url, timeout=300.0)
        yield replace(local_lm_config, endpoint=endpoint, embedded=False)
    finally:
        server.stop()


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


def test_a_server_without_logprobs_gets_the_error_that_names_the_fix(local_lm_config: LMConfig) -> None:
    with pytest.raises(NoLogprobsError, match="scale serve --logprobs"):
        scores(local_lm_config, "rating_logprobs")
