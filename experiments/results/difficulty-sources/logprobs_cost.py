"""What token logprobs cost on the embedded llama.cpp server (issue 8 / 11).

Starts the embedded server twice on a spare port, without and with ``--logits_all true``, and times
the same requests on each: a 1-token rating (no logprobs), the same with 10 top logprobs, a
120-token answer (no logprobs), and a 32-token answer with 5 top logprobs per token. Five GSM8K
train problems, each request once per problem (distinct prompts, so the prefix cache helps each
kind alike), after one warm-up request. Writes logprobs-cost.json and prints a table.

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python experiments/results/difficulty-sources/logprobs_cost.py
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import httpx

from data.loading import dev_split
from program.local import LocalServer, model_path

PORT = 8771
HERE = Path(__file__).parent
RATE = "Rate how hard this problem is, as one digit from 0 (trivial) to 9 (very hard). Reply with the digit only."


def request(client: httpx.Client, problem: str, kind: str) -> float:
    body: dict = {"model": "local", "temperature": 0.0}
    if kind.startswith("rating"):
        body |= {"messages": [{"role": "system", "content": RATE}, {"role": "user", "content": problem}],
                 "max_tokens": 1}
    else:
        body |= {"messages": [{"role": "user", "content": f"Solve step by step.\n{problem}"}],
                 "max_tokens": 120 if kind == "answer-120" else 32}
    if kind == "rating+top10":
        body |= {"logprobs": True, "top_logprobs": 10}
    if kind == "answer-32+top5":
        body |= {"logprobs": True, "top_logprobs": 5}
    started = time.monotonic()
    reply = client.post(f"http://127.0.0.1:{PORT}/v1/chat/completions", json=body, timeout=600)
    reply.raise_for_status()
    return time.monotonic() - started


def main() -> None:
    problems = [str(e.problem) for e in dev_split("gsm8k_train", 6, seed=0, offset=2000)]
    results: dict = {}
    for logits_all in (False, True):
        server = LocalServer(model_path(), port=PORT, logprobs=logits_all)
        server.start()
        try:
            server.wait_ready()
            with httpx.Client() as client:
                request(client, problems[-1], "answer-120")  # warm-up
                kinds = ["rating", "answer-120"] + (["rating+top10", "answer-32+top5"] if logits_all else [])
                for kind in kinds:
                    seconds = [request(client, p, kind) for p in problems[:5]]
                    results[f"logits_all={logits_all} {kind}"] = {"median_s": round(statistics.median(seconds), 3),
                                                                  "seconds": [round(s, 3) for s in seconds]}
                    print(f"logits_all={logits_all!s:5} {kind:16} median {statistics.median(seconds):6.2f} s")
        finally:
            server.stop()
    (HERE / "logprobs-cost.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
