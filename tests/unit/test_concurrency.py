"""Concurrency inside a problem (issue 24): run_all, per-server limits, vote rounds, same results as sequential."""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import dspy
import pytest

from program import ledger
from program.calls import Solution
from program.clients import limits, servers
from program.clients.lm import build_systems
from program.concurrent import run_all
from program.config import ConfigError, Endpoint, LMConfig, ModeConfig, ProgramConfig, ScaleConfig, VoteConfig
from program.methods import build_program
from program.testing.fakeserver import FakeServer
from program.voting import settled, vote
from test_golden_traces import CASES, GOLDEN, run_case, solver, stages

# --- run_all ---------------------------------------------------------------------------------


def test_run_all_keeps_index_order_and_books_each_call_to_the_callers_ledger_and_stage_in_order() -> None:
    book = ledger.Ledger()

    def task(i: int) -> int:
        time.sleep(0.02 * (5 - i))  # the last one finishes first
        ledger.record(prompt_tokens=i, completion_tokens=1)
        return i

    with ledger.recording(book), ledger.stage("decompose"):
        results = run_all([partial(task, i) for i in range(5)], limit=5)
    assert results == [0, 1, 2, 3, 4]
    assert [c.prompt_tokens for c in book.calls] == [0, 1, 2, 3, 4]  # as a sequential run books them
    assert {c.stage for c in book.calls} == {"decompose"}


def test_run_all_carries_dspy_context_and_keeps_the_dspy_trace_in_index_order() -> None:
    lm = dspy.LM("openai/bound-here")
    trace: list[Any] = []

    def task(i: int) -> str:
        time.sleep(0.01 * (3 - i))
        dspy.settings.trace.append(i)
        return str(dspy.settings.lm.model)

    with dspy.context(lm=lm, trace=trace):
        models = run_all([partial(task, i) for i in range(3)], limit=3)
    assert models == ["openai/bound-here"] * 3
    assert trace == [0, 1, 2]


def test_run_all_raises_the_first_error_by_index_after_all_ended() -> None:
    ended: list[int] = []

    def task(i: int) -> int:
        time.sleep(0.01 * (4 - i))
        ended.append(i)
        if i in (1, 3):
            raise ValueError(f"task {i}")
        return i

    with pytest.raises(ValueError, match="task 1"):
        run_all([partial(task, i) for i in range(4)], limit=4)
    assert sorted(ended) == [0, 1, 2, 3]


def test_run_all_with_limit_one_runs_in_the_callers_thread() -> None:
    here = threading.get_ident()
    assert run_all([threading.get_ident, threading.get_ident], limit=1) == [here, here]
    with pytest.raises(ValueError, match="at least 1"):
        run_all([], limit=0)


# --- limits ----------------------------------------------------------------------------------


def test_limiter_is_never_exceeded_by_many_threads() -> None:
    limiter, busy, peak, lock = limits.Limiter(3), [0], [0], threading.Lock()

    def hold() -> None:
        with limiter.slot():
            with lock:
                busy[0] += 1
                peak[0] = max(peak[0], busy[0])
            time.sleep(0.05)
            with lock:
                busy[0] -= 1

    with ThreadPoolExecutor(max_workers=10) as pool:
        list(pool.map(lambda _: hold(), range(40)))
    assert peak[0] == 3 and limiter.free() == 3

    # No limit (a server of unknown kind): the workers' requests are not serialised.
    limiter, peak[0] = limits.Limiter(None), 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: hold(), range(8)))
    assert peak[0] > 3 and limiter.free() == limiter.width == 1


def test_max_concurrency_is_validated() -> None:
    for bad in (0, -2, True, 1.5):
        with pytest.raises(ConfigError, match="max_concurrency"):
            Endpoint("openai/m", api_base="http://h:8000/v1", max_concurrency=bad)  # type: ignore[arg-type]


@pytest.mark.fake_server
def test_default_limit_is_llama_cpp_slot_count_else_by_server_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeServer(total_slots=3, build_info="b6000-abc") as llama, FakeServer() as quiet:
        slotted, silent = Endpoint("openai/m", api_base=llama.api_base), Endpoint("openai/m", api_base=quiet.api_base)
        assert limits.limiter_for(slotted).limit == 3
        assert servers.identity(slotted).cache_tag() == "llama.cpp b6000-abc"
        assert limits.limiter_for(silent).limit is None  # says nothing: no limit, as before,
        assert limits.limiter_for(silent).width == 1  # and one call at a time inside a problem
        assert servers.identity(silent).cache_tag() == ""
        # An explicit limit wins; the replicas of one endpoint share one limiter of limit x replicas.
        assert limits.limiter_for(Endpoint("openai/x", api_base=llama.api_base + "/", max_concurrency=5)).limit == 5
        both = Endpoint("openai/m", api_bases=(llama.api_base, quiet.api_base), max_concurrency=2)
        assert limits.limiter_for(both).limit == 4
    assert limits.limiter_for(Endpoint("anthropic/claude")).limit == limits.DEFAULTS["provider"]

    # vLLM's model list (vllm/entrypoints/openai/protocol.py: ModelCard.owned_by = "vllm") and /version.
    replies = {"/props": None, "/v1/models": {"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]},
               "/version": {"version": "0.11.0"}}

    def get(url: str, timeout: float) -> Any:
        path = url.split(":9999", 1)[1]
        if replies[path] is None:
            raise OSError("404")
        return replies[path]

    monkeypatch.setattr(servers, "get_json", get)
    vllm = Endpoint("openai/m", api_base="http://127.0.0.1:9999/v1")
    assert limits.limiter_for(vllm).limit == limits.DEFAULTS["vllm"]
    assert servers.identity(vllm).cache_tag() == "vllm 0.11.0"


@pytest.mark.fake_server
def test_the_engine_is_part_of_the_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from program.clients import transport

    monkeypatch.setattr(transport, "_CACHE_ENABLED", True)
    messages = [{"role": "user", "content": "engine key test, unique 51c9"}]
    engine = [servers.Identity("other")]  # the Python server said nothing about itself
    monkeypatch.setattr(servers, "identity", lambda endpoint: engine[0])
    with FakeServer(["old engine"], default="new engine") as server:
        ep = Endpoint("openai/m", api_base=server.api_base)
        assert transport.chat(ep, messages, max_tokens=8).text == "old engine"
        assert transport.chat(ep, messages, max_tokens=8).cached  # the same engine: a hit
        engine[0] = servers.Identity("llama.cpp", "b6000", 4)  # the same URL now serves llama-server
        again = transport.chat(ep, messages, max_tokens=8)
    assert (again.text, again.cached) == ("new engine", False)


# --- vote rounds -----------------------------------------------------------------------------


def _drawer(answers: Sequence[str | None]) -> tuple[Any, list[int]]:
    drawn: list[int] = []

    def draw(i: int) -> Solution:
        drawn.append(i)
        return Solution(f"sample {i}", answers[i])

    return draw, drawn


def _one_by_one(answers: Sequence[str | None], config: VoteConfig) -> list[int]:
    """The samples the vote drew before rounds existed (its loop, as it was)."""
    from program.voting import tally

    seen: list[str | None] = []
    for i in range(config.samples):
        seen.append(answers[i])
        if config.adaptive and settled(tally(seen)[1], config.samples - len(seen), config):
            break
    return list(range(len(seen)))


def test_a_vote_round_draws_the_free_slots_and_the_outcome_is_the_one_by_one_votes() -> None:
    draw, drawn = _drawer(["7", "7", "7", "3", "3"])
    outcome = vote(draw, VoteConfig(samples=5), slots=4)
    assert sorted(drawn) == [0, 1, 2, 3]  # one round of 4; one-by-one stops after 3
    assert (outcome.answer, outcome.samples_used, outcome.answers) == ("7", 3, ["7", "7", "7"])
    assert outcome.rounds == [4] and outcome.extra_samples == 1
    assert outcome.to_dict()["rounds"] == [4] and outcome.to_dict()["extra_samples"] == 1


def test_an_adaptive_vote_stops_between_rounds() -> None:
    # 3 slots, 5 samples: round 1 draws 3 (7, 3, 7: not settled), round 2 the last 2; one-by-one stops at 4.
    draw, drawn = _drawer(["7", "3", "7", "7", "3"])
    outcome = vote(draw, VoteConfig(samples=5), slots=3)
    assert outcome.rounds == [3, 2] and outcome.samples_used == 4 and outcome.extra_samples == 1
    # 2 slots, 7 samples: a one-by-one vote is sure to draw 4, so round 1 draws 4, they agree, it stops.
    draw, drawn = _drawer(["7"] * 4 + ["3"] * 3)
    outcome = vote(draw, VoteConfig(samples=7), slots=2)
    assert sorted(drawn) == [0, 1, 2, 3] and outcome.rounds == [4] and outcome.extra_samples == 0


@pytest.mark.parametrize("stop_rule", ["majority", "beta"])
def test_with_one_slot_a_vote_draws_exactly_what_it_drew_before_and_with_more_the_outcome_is_unchanged(
        stop_rule: str) -> None:
    rng = random.Random(7)
    for _ in range(200):
        samples = rng.choice([3, 5, 8])
        answers: list[str | None] = [rng.choice(["7", "7", "3", "5", None]) for _ in range(samples)]
        config = VoteConfig(samples=samples, stop_rule=stop_rule, confidence=0.8)  # type: ignore[arg-type]
        expected = _one_by_one(answers, config)
        draw, drawn = _drawer(answers)
        single = vote(draw, config, slots=1)
        assert drawn == expected and single.samples_used == len(expected)
        assert "rounds" not in single.to_dict()  # a one-by-one vote's trace is what it was
        for slots in (2, 4, 8):
            draw, drawn = _drawer(answers)
            wide = vote(draw, config, slots=slots)
            assert (wide.answer, wide.answers, wide.samples_used) == (single.answer, single.answers,
                                                                     single.samples_used)
            assert len(drawn) == single.samples_used + wide.extra_samples
            assert wide.extra_samples < max(wide.rounds)


# --- limits counted at the server, several workers, k > 1 -------------------------------------


def _replies(body: dict[str, Any]) -> str:
    """The golden scripted replies (tests/unit/test_golden_traces.py), answered by one HTTP server."""
    messages = body["messages"]
    return solver(messages) if "Solve the" in messages[0]["content"] else stages(messages)


def _scale_on(server: FakeServer, max_concurrency: int | None) -> dspy.Module:
    endpoint = Endpoint("openai/fake", api_base=server.api_base, max_concurrency=max_concurrency, retries=0)
    lm = LMConfig(endpoint, system1=ModeConfig(max_tokens=256), system2=ModeConfig(max_tokens=1024))
    config = ProgramConfig(lm=lm, scale=ScaleConfig(num_candidates=4))
    return build_program(config, build_systems(lm))


PROBLEMS = [f"Tom has {n} apples and buys 5 more, then eats 2. How many apples are left?" for n in range(3, 9)]


def _solve_all(program: dspy.Module, workers: int) -> list[dict[str, Any]]:
    """Problems on ``workers`` threads, each in its own context, as ``optimize.evaluation.evaluate`` runs them."""

    def one(problem: str) -> dict[str, Any]:
        book = ledger.Ledger()
        with ledger.recording(book):
            prediction = program(problem=problem)
        totals = book.totals()
        return {"answer": prediction.answer, "trace": prediction.trace,
                "tokens": (totals["prompt_tokens"], totals["completion_tokens"], totals["calls"]),
                "stages": [c.stage for c in book.calls]}

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: contextvars.copy_context().run(one, p), PROBLEMS))


@pytest.mark.fake_server
def test_the_limit_is_never_exceeded_at_the_server_with_several_workers_and_k_candidates() -> None:
    with FakeServer(default=_replies, total_slots=2, latency=0.05) as server:
        results = _solve_all(_scale_on(server, None), workers=3)  # the limit comes from /props: 2
    assert server.peak_in_flight == 2  # 3 workers x 4 candidates wanted up to 12 at once
    assert all(r["answer"] for r in results)


@pytest.mark.fake_server
def test_concurrent_and_sequential_runs_give_the_same_answers_traces_and_tokens() -> None:
    with FakeServer(default=_replies) as server:
        sequential = _solve_all(_scale_on(server, 1), workers=1)
    assert server.peak_in_flight == 1
    limits.forget()
    with FakeServer(default=_replies, latency=0.02) as server:
        concurrent = _solve_all(_scale_on(server, 4), workers=2)
    assert server.peak_in_flight > 1
    assert concurrent == sequential


# --- the golden traces at the default concurrency --------------------------------------------


def _without(trace: Any, keys: tuple[str, ...]) -> Any:
    """``trace`` without ``keys`` at any depth."""
    if isinstance(trace, dict):
        return {k: _without(v, keys) for k, v in trace.items() if k not in keys}
    if isinstance(trace, list):
        return [_without(v, keys) for v in trace]
    return trace


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_traces_at_a_limit_of_four(name: str) -> None:
    """With order-independent scripted replies, running at once changes only the order of requests,
    except that a vote drawn in rounds may pay for samples past its stop: recorded in its trace
    (``rounds``, ``extra_samples``), in the usage and the ledger; they do not vote."""
    import json

    expected = json.loads(GOLDEN.read_text())[name]
    actual = json.loads(json.dumps(run_case(name, max_concurrency=4), sort_keys=True, default=str))
    extra_in_case = 0
    for got, want in zip(actual["problems"], expected["problems"], strict=True):
        assert (got["answer"], got["solution"]) == (want["answer"], want["solution"])
        extra = sum(v.get("extra_samples", 0) for v in _votes(got["trace"]))
        extra_in_case += extra
        if not extra:
            assert _without(got["trace"], ("rounds", "extra_samples")) == want["trace"]
            assert got["ledger"] == want["ledger"]
            continue
        assert _without(got["trace"], ("rounds", "extra_samples", "usage")) == _without(want["trace"], ("usage",))
        calls = sum(stage["calls"] for stage in got["ledger"].values())
        assert calls == sum(stage["calls"] for stage in want["ledger"].values()) + extra
    for role, requests in actual["requests"].items():
        wanted = expected["requests"][role]
        if extra_in_case:  # the extra samples' requests come on top of the recorded ones
            assert all(r in requests for r in wanted) and len(requests) >= len(wanted)
        else:
            assert sorted(map(str, requests)) == sorted(map(str, wanted))
    assert sum(len(r) for r in actual["requests"].values()) == (
        sum(len(r) for r in expected["requests"].values()) + extra_in_case)


def _votes(trace: dict[str, Any]) -> list[dict[str, Any]]:
    votes = [s["vote"] for s in trace.get("steps", []) if "vote" in s]
    return votes + ([trace] if trace.get("method") == "vote" else [])
