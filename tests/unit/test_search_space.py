"""The search space: its forms (fixed, range, choices), errors that name the parameter, how values apply,
seeds clipped into the space, and the named parameters (difficulty source, System 2 kind)."""

from __future__ import annotations

import pytest
from optuna.trial import FixedTrial

from optimize.search.space import SearchSpace
from program.config import ConfigError, ProgramConfig
from program.presets import preset


@pytest.mark.parametrize("space, message", [
    ({"tau": [0, 1]}, r"unknown parameter\(s\) 'tau'.*known parameters are: threshold"),
    ({"threshold": [0.5, 0.2]}, r"search.space.threshold: low 0.5 must be below high 0.2"),
    ({"threshold": [0, 2]}, r"search.space.threshold: high 2 must be in \[-1, 1\]"),
    ({"system1_max_tokens": [64.5, 128]}, r"search.space.system1_max_tokens: low 64.5 must be an integer"),
    ({"system2_thinking_budget": [0, 128]}, r"search.space.system2_thinking_budget: low 0 must be >= 1"),
    ({"num_waits": [0, 1, 2]}, r"search.space.num_waits: \[0, 1, 2\] must be \[low, high\]"),
    ({"num_candidates": {"choices": []}}, r"search.space.num_candidates: choices=\[\] must be a non-empty list"),
    ({"num_candidates": {"choices": [1, 1]}}, r"has duplicates"),
    ({"threshold": {"low": 0, "high": 1, "bins": 3}}, r"unknown key\(s\) \['bins'\]"),
    ({"system1_max_tokens": {"low": 0, "high": 8, "log": True}}, r"low 0 must be >= 1"),
    ({"threshold": "high"}, r"search.space.threshold: value 'high' must be a number"),
    ({"num_waits": True}, r"search.space.num_waits: value True must be an integer"),
    ({"difficulty_source": "vibes"}, r"search.space.difficulty_source: value 'vibes' must be one of rating, "),
    ({"difficulty_source": ["rating", "attempt"]}, r"is not a range of names; write one name or \{choices"),
    ({"attempt_confidence": {"choices": ["length", "dice"]}}, r"choice 'dice' must be one of length, deepconf"),
])
def test_space_errors_name_the_parameter(space: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SearchSpace.parse(space)


def test_space_forms_and_how_they_apply() -> None:
    space = SearchSpace.parse({"threshold": [0, 1], "system1_max_tokens": {"low": 64, "high": 512, "log": True},
                               "system2_thinking_budget": {"choices": [128, 256]}, "num_waits": 2})
    assert space.searched == ("threshold", "system1_max_tokens", "system2_thinking_budget")
    values = space.suggest(FixedTrial({"threshold": 0.4, "system1_max_tokens": 100, "system2_thinking_budget": 256}))
    config = space.apply(ProgramConfig(), values)
    assert config.scale.threshold == 0.4 and config.lm.system1.max_tokens == 100
    assert config.lm.system2.thinking_budget == 256 and config.lm.forcing.num_waits == 2  # local: forced thinking

    qwen3 = space.apply(ProgramConfig(lm=preset("qwen3")), values)
    assert qwen3.lm.system2.max_tokens == 256  # Qwen3 thinking has one cap: max_tokens


def test_the_difficulty_source_is_searched_beside_tau() -> None:
    space = SearchSpace.parse({"threshold": [0.0, 1.0], "difficulty_source": {"choices": ["rating", "attempt"]},
                               "attempt_confidence": "agreement"})
    assert space.searched == ("threshold", "difficulty_source")
    values = space.suggest(FixedTrial({"threshold": 0.3, "difficulty_source": "attempt"}))
    config = space.apply(ProgramConfig(), values)
    assert (config.scale.difficulty_source, config.scale.attempt_confidence, config.scale.threshold) == (
        "attempt", "agreement", 0.3)
    assert space.seed(ProgramConfig(), threshold=0.2) == {"threshold": 0.2, "difficulty_source": "rating"}


def test_seeds_are_clipped_to_the_space_and_skipped_when_a_fixed_value_disagrees() -> None:
    base = ProgramConfig()  # local preset: System 1 max 320 tokens
    space = SearchSpace.parse({"threshold": [0.3, 1.0], "system1_max_tokens": [64, 128], "num_waits": 1})
    assert space.seed(base, threshold=0.2) == {"threshold": 0.3, "system1_max_tokens": 128}
    fixed = SearchSpace.parse({"threshold": 0.5, "system1_max_tokens": {"choices": [100, 300]}})
    assert fixed.seed(base, threshold=0.2) is None
    assert fixed.seed(base, threshold=0.5) == {"system1_max_tokens": 300}
