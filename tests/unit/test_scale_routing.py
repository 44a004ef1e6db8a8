"""Mode selection: System 2 iff score > tau (strict), at and around the boundaries."""

from __future__ import annotations

import pytest

from program.config import ConfigError
from program.scale.routing import route, score_decides


@pytest.mark.parametrize(("score", "threshold", "mode"), [
    (0.5, 0.5, "system1"), (0.5000001, 0.5, "system2"), (0.0, 0.0, "system1"), (0.01, 0.0, "system2"),
    (1.0, 1.0, "system1"), (0.0, -1.0, "system2"), (0.9, 0.9, "system1"), (0.9, 0.2, "system2"),
])
def test_system2_iff_score_strictly_above_tau(score: float, threshold: float, mode: str) -> None:
    decision = route(score, threshold)
    assert decision.mode == mode
    assert decision.to_dict() == {"mode": mode, "score": score, "threshold": threshold}


@pytest.mark.parametrize("score", [0.0, 0.3, 1.0])
def test_tau_one_is_all_system1_and_minus_one_all_system2(score: float) -> None:
    assert route(score, 1.0).mode == "system1"
    assert route(score, -1.0).mode == "system2"


def test_without_a_score_only_a_deciding_threshold_routes() -> None:
    assert route(None, 1.0).mode == "system1" and route(None, -1.0).mode == "system2"
    assert not score_decides(1.0) and not score_decides(-0.5) and score_decides(0.0)
    with pytest.raises(ConfigError, match="threshold=0.5"):
        route(None, 0.5)
