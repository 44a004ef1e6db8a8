"""Prompt tokens of one call per stage: our PlainAdapter against DSPy's ChatAdapter and JSONAdapter.

The same signature and inputs (GSM8K test problem 0, a one-step context), counted with the embedded
model's own tokenizer (the GGUF's vocabulary only), plus ~5 tokens per message for the chat template.

    .venv/bin/python experiments/results/speed-30/adapter_tokens.py > experiments/results/speed-30/adapter-tokens.txt
"""

from __future__ import annotations

import dspy
import llama_cpp

from program import signatures
from program.adapter import DEFAULT_ADAPTER
from program.local import model_path

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


def main() -> None:
    vocab = llama_cpp.Llama(str(model_path()), vocab_only=True, verbose=False)

    def tokens(messages: list[dict[str, str]]) -> int:
        return sum(len(vocab.tokenize(m["content"].encode(), add_bos=False, special=False)) + 5 for m in messages)

    adapters = {"PlainAdapter": DEFAULT_ADAPTER, "ChatAdapter": dspy.ChatAdapter(), "JSONAdapter": dspy.JSONAdapter()}
    print(f"{'stage':20s} " + " ".join(f"{name:>12s}" for name in adapters))
    for signature, inputs in CALLS:
        counts = [tokens(adapter.format(signature, [], inputs)) for adapter in adapters.values()]
        print(f"{signature.__name__:20s} " + " ".join(f"{c:12d}" for c in counts))


if __name__ == "__main__":
    main()
