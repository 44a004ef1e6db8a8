"""``scale eval --preset qwen3`` end to end against the fake server's vLLM mode (issue 23's done-when).

The whole path runs: the CLI, the data loader (a toy gsm8k file in a temporary data dir), the real
SCALE program, DSPy, litellm and HTTP. The fake answers as vLLM does (``program.testing.servermodes``:
the qwen3 reasoning parser before and after PR #35230, ``max_model_len``, ``/tokenize``), for a Qwen3 model
served under a name without "qwen3" in it. The assertions are on the bodies the server received and on
the graded result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from optimize.cli import main
from program.testing.fakeserver import FakeServer

pytestmark = pytest.mark.fake_server

PROBLEM = "Tom has 2 apples and buys 3 more. How many apples does he have now?"
# System 2 is cut off inside its thinking: no </think>, a wrong guess in it (the reply).
CUT_OFF = "Maybe 2 + 3 is \\boxed{7}? Hmm, wait" + " let me recount the apples" * 1200


def role(body: dict[str, Any]) -> str:
    """Which part of SCALE sent a request, read from its prompt and sampling (never from its switch)."""
    if "prompt" in body:
        return "forced answer"  # /v1/completions
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    if "Break the math problem" in text:
        return "decompose"
    if "Rate how hard" in text:
        return "difficulty"
    return "system2" if body.get("temperature") == 0.6 else "system1"  # the qwen3 preset's System 2 samples at 0.6


REPLIES = {  # the model's raw output per role; a real Qwen3 thinks unless its template is told not to
    "decompose": "<think>two steps</think>1. Count the apples at the start.\n2. Add the apples he buys.",
    "difficulty": "<think>it is easy</think>0.1",
    "system1": "<think>easy</think>He starts with 2 apples, so \\boxed{2}.",
    "system2": "<think>" + CUT_OFF,
    "forced answer": " \\boxed{5}",
}


@pytest.mark.parametrize("parser", ["qwen3-old", "qwen3"])  # before and after vLLM PR #35230
def test_scale_eval_on_vllm_switches_thinking_per_mode_and_never_grades_cut_off_thinking(
        parser: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "gsm8k_test.jsonl").write_text(json.dumps({"id": "toy-1", "problem": PROBLEM, "answer": "5"}) + "\n")
    with FakeServer(default=lambda body: REPLIES[role(body)], server="vllm", parser=parser,
                    max_model_len=4096) as server:
        status = main(["eval", "--preset", "qwen3", "--model", "openai/served-32b", "--api-base", server.api_base,
                       "--method", "scale", "--benchmark", "gsm8k", "--limit", "1", "--data-dir", str(data),
                       "--output", str(tmp_path / "run"), "--no-progress"])
        bodies = [b for b in server.requests if "path" not in b]  # /tokenize (the window clamp) aside
    assert status == 0, capsys.readouterr()
    sent = [(role(b), (b.get("chat_template_kwargs") or {}).get("enable_thinking")) for b in bodies]
    assert {r for r, _ in sent} == {"decompose", "difficulty", "system1", "system2", "forced answer"}
    for name, switch in sent:
        expected = {"system2": True, "forced answer": None}.get(name, False)
        assert switch is expected, (name, switch)

    row = json.loads((tmp_path / "run" / "scale-gsm8k" / "results.jsonl").read_text().splitlines()[0])
    first, last = row["trace"]["steps"]
    assert (first["mode"], last["mode"]) == ("system1", "system2")
    # System 2 was cut off at the window (4096 tokens less the prompt) inside its thinking, a "7" in it:
    cut = [b for b in bodies if role(b) == "system2"][0]
    assert cut["max_tokens"] < 4096 and len(CUT_OFF.split()) > cut["max_tokens"]
    forced = [b for b in bodies if role(b) == "forced answer"][0]
    assert "\\boxed{7}" in forced["prompt"] and forced["prompt"].endswith("</think>\nFinal Answer:")
    # ... and the step's answer is the forced one, never the guess in the thinking.
    assert last["value"] == "5" and "7" not in last["visible"]
    assert (row["answer"], row["correct"]) == ("5", True)
