"""Issue 11: where a call's time goes on the embedded server, and what logits_all (logprobs) costs.

For each server setting, in one sitting: a fresh server of this checkout on a free port, then two
difficulty-style calls that share a ~150-token fixed system message and differ in the problem,
then the same pair again. Every call's ledger entry (prompt tokens evaluated vs reused, prompt-eval
and generation seconds, as the server's timings report them) goes to calls.jsonl; the load average
is recorded before and after each call (the machine is shared).

    LITELLM_LOCAL_MODEL_COST_MAP=True .venv/bin/python experiments/results/time-split/measure.py
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from program import ledger, transport  # noqa: E402
from program.config import LOCAL_MODEL_ALIAS, Endpoint  # noqa: E402
from program.local import LocalServer, model_path  # noqa: E402

HERE = Path(__file__).parent
FIXED = ("Rate how hard the current sub-problem of a math problem is, as a number between 0 and 1. "
         "0 to 0.5: an elementary or middle school student who knows the topic could do it quickly. "
         "0.5 to 1: even a strong high school or college student would need extensive thought or help. "
         "Do not solve it. ") * 3 + "Reply with the difficulty, between 0 and 1 (one number) and nothing else."
PROBLEMS = ["Janet's ducks lay 16 eggs per day.", "A robe takes 2 bolts of blue fiber.",
            "Josh buys a house for $80,000.", "James runs 3 sprints 3 times a week."]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    transport.set_cache_enabled(False)
    rows = []
    for logprobs in (False, True):
        server = LocalServer(model_path(), port=free_port(), logprobs=logprobs,
                             log_path=HERE / f"server-logits_all-{str(logprobs).lower()}.log")  # trimmed to *-perf.txt
        server.start()
        try:
            server.wait_ready(300)
            endpoint = Endpoint(f"openai/{LOCAL_MODEL_ALIAS}", api_base=server.url, timeout=900.0)
            for i, problem in enumerate(PROBLEMS):
                book = ledger.Ledger()
                load_before = os.getloadavg()[0]
                with ledger.recording(book), ledger.stage("difficulty"):
                    transport.chat(endpoint, [{"role": "system", "content": FIXED},
                                              {"role": "user", "content": f"Problem:\n{problem}"}], max_tokens=8)
                call = book.calls[0]
                row = {"logits_all": logprobs, "call": i, **asdict(call), "prompt_evaluated": call.prompt_evaluated,
                       "load_before": load_before, "load_after": os.getloadavg()[0]}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.stop()
    (HERE / "calls.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
