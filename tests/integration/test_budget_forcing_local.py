"""s1 budget forcing against the real local model: the cap holds, "Wait" extends, the ledger is exact.

Greedy decoding (the local preset's temperature 0) keeps the runs deterministic. Each test takes
roughly 10-60 s on 2 CPU cores (~20 generated tokens/s), more when the server is shared.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from program import ledger
from program.clients import transport
from program.clients.budget_forcing import ForcedResult, force_budget
from program.config import LMConfig

pytestmark = pytest.mark.integration

GSM8K = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
    "How much did she earn?",
]
# A problem the model answers in one thought and then tries to close thinking again and again.
EASY = ("Tom has 3 apples and buys 2 more. How many apples does he have? "
        "Keep your thinking to one short sentence.")


@pytest.fixture
def server_usage(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The usage of every /v1/completions reply exactly as the server sent it (before our parsing)."""
    import litellm

    monkeypatch.setattr(transport, "_CACHE_ENABLED", False)  # every call must reach the server
    seen: list[dict[str, Any]] = []
    original = litellm.text_completion

    def spy(*args: Any, **kwargs: Any) -> Any:
        response = original(*args, **kwargs)
        seen.append({"prompt_tokens": response.usage.prompt_tokens,
                     "completion_tokens": response.usage.completion_tokens, "max_tokens": kwargs["max_tokens"]})
        return response

    monkeypatch.setattr(litellm, "text_completion", spy)
    return seen


def forced(config: LMConfig, question: str, *, budget: int, num_waits: int,
           book: ledger.Ledger) -> ForcedResult:
    mode = replace(config.system2, thinking_budget=budget, max_tokens=48)
    with ledger.recording(book), ledger.stage("bf"):
        return force_budget(config.endpoint, mode, replace(config.forcing, num_waits=num_waits),
                            [{"role": "user", "content": question}])


def assert_ledger_matches_server(book: ledger.Ledger, result: ForcedResult, seen: list[dict[str, Any]]) -> None:
    # One ledger entry per server reply, with the server's own numbers, thinking booked as thinking.
    assert [(c.prompt_tokens, c.completion_tokens) for c in book.calls] == [
        (s["prompt_tokens"], s["completion_tokens"]) for s in seen]
    assert [c.thinking_tokens for c in book.calls] == [
        s["completion_tokens"] if step.phase == "thinking" else 0 for s, step in zip(seen, result.calls, strict=True)]
    totals = book.totals()
    assert (totals["thinking_tokens"], totals["answer_tokens"], totals["prompt_tokens"]) == (
        result.thinking_tokens, result.answer_tokens, result.prompt_tokens)
    assert {c.stage for c in book.calls} == {"bf"}


@pytest.mark.parametrize("question", GSM8K, ids=["clips", "babysitting"])
def test_a_64_token_cap_is_never_exceeded(local_lm_config: LMConfig, server_usage: list[dict[str, Any]],
                                          question: str) -> None:
    """Up to 16 "Wait"s keep the model thinking whenever it stops early, so thinking always runs into the
    cap: the test shows the cap is reached and cuts there, not only that a short thought stayed under it."""
    book = ledger.Ledger()
    result = forced(local_lm_config, question, budget=64, num_waits=16, book=book)
    thinking = [s for s, step in zip(server_usage, result.calls, strict=True) if step.phase == "thinking"]
    assert result.hit_cap and result.cue  # cut by the budget, so "Final Answer:" was forced
    assert sum(s["completion_tokens"] for s in thinking) == result.thinking_tokens == 64
    # Each thinking call asked for exactly what was left of the budget.
    asked = [s["max_tokens"] for s in thinking]
    assert asked == [64 - sum(s["completion_tokens"] for s in thinking[:i]) for i in range(len(thinking))]
    assert result.calls[-1].phase == "answer" and result.answer.strip()
    assert_ledger_matches_server(book, result, server_usage)


def test_two_waits_extend_thinking_that_stops_early(local_lm_config: LMConfig,
                                                    server_usage: list[dict[str, Any]]) -> None:
    book = ledger.Ledger()
    result = forced(local_lm_config, EASY, budget=96, num_waits=2, book=book)
    thinking_calls = [step for step in result.calls if step.phase == "thinking"]
    assert thinking_calls[0].finish_reason == "stop"  # the model did try to stop early
    # Exactly two continuations, unless the budget ran out first; never more.
    assert result.num_continuations == 2 or result.hit_cap
    assert len(thinking_calls) == result.num_continuations + 1 <= 3
    assert result.thinking.count("Wait") >= result.num_continuations
    assert result.thinking_tokens <= 96
    assert_ledger_matches_server(book, result, server_usage)
