"""Prompt tokens of one call per stage: our PlainAdapter against DSPy's ChatAdapter and JSONAdapter.

The same signature and inputs (GSM8K test problem 0, a one-step context), counted with the embedded
model's own tokenizer (llama-server's ``POST /tokenize`` on the embedded model, no special tokens;
it replaced llama-cpp-python's vocab-only ``Llama``: same GGUF vocabulary), plus ~5 tokens per
message for the chat template.

    .venv/bin/python experiments/results/speed-30/adapter_tokens.py > experiments/results/speed-30/adapter-tokens.txt
"""

from __future__ import annotations

import json
import socket
import urllib.request

import dspy

from program import signatures
from program.adapter import DEFAULT_ADAPTER
from program.serving.local import LocalServer, model_path

PROBLEM = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
           "her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh "
           "duck egg. How much in dollars does she make every day at the farmers' market?")
CALLS = [
    (signatures.Decompose, {"problem": PROBLEM}),
    (signatures.AssessDifficulty, {"problem": PROBLEM, "earlier_steps": "Step 1: Find the eggs left.",
                                   "current_step": "Find the income."}),
    (signatures.SolveStep, {"problem": PROBLEM, "earlier_steps": "Step 1: Find the eggs left.\nResult: 9",
                            "current_step": "Find the income."}),
    (signatures.SolveProblem, {"problem": PROBLEM}),
    (signatures.Rewrite, {"problem": PROBLEM}),
    (signatures.SelectDecomposition, {"problem": PROBLEM, "candidates": "1. ...\n2. ..."}),
    (signatures.InftyThinkSegment, {"problem": PROBLEM, "progress": "(none)", "token_limit": 256}),
]


def count(port: int, text: str) -> int:
    """llama-server's tokenizer (tools/server/server-context.cpp, post_tokenize): {"content"} -> {"tokens"}."""
    body = json.dumps({"content": text, "add_special": False, "parse_special": False}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/tokenize", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=60) as response:
        return len(json.load(response)["tokens"])


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = LocalServer(model_path(), port=port, slots=1)
    server.start()
    try:
        server.wait_ready(300)
        report(port)
    finally:
        server.stop()


def report(port: int) -> None:
    def tokens(messages: list[dict[str, str]]) -> int:
        return sum(count(port, m["content"]) + 5 for m in messages)

    adapters = {"PlainAdapter": DEFAULT_ADAPTER, "ChatAdapter": dspy.ChatAdapter(), "JSONAdapter": dspy.JSONAdapter()}
    print(f"{'stage':20s} " + " ".join(f"{name:>12s}" for name in adapters))
    for signature, inputs in CALLS:
        counts = [tokens(adapter.format(signature, [], inputs)) for adapter in adapters.values()]
        print(f"{signature.__name__:20s} " + " ".join(f"{c:12d}" for c in counts))


if __name__ == "__main__":
    main()
