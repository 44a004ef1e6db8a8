"""Where the time goes: prompt tokens evaluated vs reused, prompt-eval and generation seconds, per call."""

from __future__ import annotations

from typing import Any

import pytest

from program import ledger
from program.clients import transport
from program.config import Endpoint
from program.testing.fakeserver import FakeServer


class PrefixServer(FakeServer):
    """A fake server that reports what llama.cpp would: the prompt prefix shared with the previous request."""

    style: str = "llama.cpp"

    def _completion(self, path: str, body: dict[str, Any], text: str) -> dict[str, Any]:
        reply = super()._completion(path, body, text)
        words = str(body.get("prompt") or " ".join(str(m.get("content", "")) for m in body.get("messages", []))).split()
        previous = getattr(self, "_previous", [])
        shared = 0
        for a, b in zip(previous, words, strict=False):
            if a != b:
                break
            shared += 1
        self._previous = words
        if self.style == "llama.cpp":
            evaluated = len(words) - shared
            reply["timings"] = {"prompt_n": evaluated, "cache_n": shared, "prompt_ms": 10.0 * evaluated,
                                "predicted_n": reply["usage"]["completion_tokens"], "predicted_ms": 50.0}
        elif shared:  # vLLM sends the details only when non-zero (serving_chat.py; program.testing.servermodes)
            reply["usage"]["prompt_tokens_details"] = {"cached_tokens": shared}
        return reply


@pytest.mark.fake_server
@pytest.mark.parametrize("style", ["llama.cpp", "vllm"])
def test_reused_prefix_and_timings_reach_the_ledger_and_add_up(style: str) -> None:
    fixed = "You rate how hard a step is. " * 10
    book = ledger.Ledger()
    with PrefixServer(default="0.5") as server, ledger.recording(book), ledger.stage("difficulty"):
        server.style = style
        endpoint = Endpoint(model="openai/fake", api_base=server.api_base, timeout=5.0)
        transport.set_cache_enabled(False)
        try:
            for problem in ("Janet has 16 eggs.", "A robe takes 2 bolts."):
                transport.chat(endpoint, [{"role": "system", "content": fixed}, {"role": "user", "content": problem}],
                               max_tokens=4)
        finally:
            transport.set_cache_enabled(True)
    first, second = book.calls
    # the 70-word fixed part, sent twice; vLLM leaves a 0 out, so the first is "not reported" there
    assert first.prompt_reused == (0 if style == "llama.cpp" else None) and second.prompt_reused == 70
    for call in book.calls:
        assert call.prompt_evaluated + (call.prompt_reused or 0) == call.prompt_tokens
    totals = book.by_stage()["difficulty"]
    assert totals["prompt_evaluated"] + totals["prompt_reused"] == totals["prompt_tokens"]
    if style == "llama.cpp":
        assert second.prompt_seconds == pytest.approx(0.01 * second.prompt_evaluated)
        assert second.prompt_seconds < first.prompt_seconds and second.generation_seconds == pytest.approx(0.05)
    else:
        assert second.prompt_seconds is None and totals["timed_calls"] == 0


def test_a_server_that_reports_nothing_counts_the_whole_prompt_as_evaluated() -> None:
    book = ledger.Ledger()
    with ledger.recording(book):
        ledger.record(prompt_tokens=40, completion_tokens=3)
        ledger.record(prompt_tokens=40, completion_tokens=3, prompt_reused=500)  # over-reported: clamped
    assert [c.prompt_reused for c in book.calls] == [None, 40]
    totals = book.totals()
    assert (totals["prompt_evaluated"], totals["prompt_reused"]) == (40, 40)
    assert ledger.Ledger.from_records(book.to_records()).totals() == totals


@pytest.mark.parametrize(("response", "expected"), [
    ({"timings": {"cache_n": 12, "prompt_ms": 250.0, "predicted_ms": 1000.0}}, (12, 0.25, 1.0)),
    ({"usage": {"prompt_tokens_details": {"cached_tokens": 7}}}, (7, None, None)),
    ({"usage": {"prompt_tokens": 9}}, (None, None, None)),
    ({"timings": {"cache_n": -1, "prompt_ms": "x"}}, (None, None, None)),  # malformed: ignored
])
def test_server_work_reads_llama_cpp_and_openai_fields(response: dict[str, Any], expected: tuple[Any, ...]) -> None:
    work = transport.server_work(response)
    assert (work["prompt_reused"], work["prompt_seconds"], work["generation_seconds"]) == expected


def test_eval_summary_shows_the_per_stage_split_where_the_server_reported_it() -> None:
    from rich.console import Console

    from optimize.evaluation.results import ProblemResult
    from optimize.evaluation.summary import print_summary, summarize

    book = ledger.Ledger()
    with ledger.recording(book), ledger.stage("system1"):
        ledger.record(prompt_tokens=200, completion_tokens=50, prompt_reused=150, prompt_seconds=0.5,
                      generation_seconds=2.0)
    rows = [ProblemResult(str(i), correct=True, stages=book.by_stage(), totals=book.totals()) for i in range(2)]
    summary = summarize(rows)
    assert summary.mean_tokens_by_stage["system1"]["prompt_reused"] == 150
    assert summary.mean_tokens_by_stage["system1"]["generation_seconds"] == 2.0
    console = Console(record=True, width=160)
    print_summary(summary, console=console)
    text = console.export_text()
    assert "reused" in text and "gen s" in text and "150" in text


def test_eval_summary_shows_unreported_reuse_as_n_a_with_the_flag_to_set() -> None:
    from rich.console import Console

    from optimize.evaluation.results import ProblemResult
    from optimize.evaluation.summary import REUSE_HINT, print_summary, summarize

    book = ledger.Ledger()
    with ledger.recording(book):
        with ledger.stage("system1"):  # a llama.cpp-style call that said what it reused and timed it
            ledger.record(prompt_tokens=200, completion_tokens=50, prompt_reused=0, prompt_seconds=0.5)
        with ledger.stage("decompose"):  # a vLLM call without --enable-prompt-tokens-details
            ledger.record(prompt_tokens=90, completion_tokens=20)
    summary = summarize([ProblemResult("1", correct=True, stages=book.by_stage(), totals=book.totals())])
    console = Console(record=True, width=200)
    print_summary(summary, console=console)
    text = console.export_text()
    decompose = next(line for line in text.splitlines() if "decompose" in line)
    system1 = next(line for line in text.splitlines() if "system1" in line)
    assert "n/a" in decompose and "n/a" not in system1  # reported 0 stays 0
    assert "--enable-prompt-tokens-details" in REUSE_HINT and REUSE_HINT.split(";")[0] in text
