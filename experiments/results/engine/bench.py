"""llama-server (new engine) against the old Python server (llama-cpp-python, the `before` tree), one sitting.

Same GGUF, 2 threads each, greedy, 128 generated tokens (ignore_eos), a different problem per request
(its number first, so requests share only the chat template's opening). For each server: 1 request
alone, then 4 requests at once. Two rounds, the order of the servers reversed in the second, so drift in
the shared machine's load shows up as a difference between rounds. Each row carries the 1-minute load
average before and after it. Prints JSON lines.

    PYTHONPATH=. /work/main/.venv/bin/python experiments/results/engine/bench.py \\
        > experiments/results/engine/bench.jsonl
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from program.serving.local import LocalServer, model_path

BEFORE = "/work/wt/before"
TOKENS = 128
PROBLEMS = [f"Problem {i}. Janet's ducks lay {16 + i} eggs per day. She eats three for breakfast and bakes muffins "
            "with four. She sells the rest for $2 each. How much does she make?" for i in range(40)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chat(port: int, problem: str) -> dict[str, Any]:
    body = {"model": "qwen2.5-coder-1.5b-instruct", "messages": [{"role": "user", "content": problem}],
            "max_tokens": TOKENS, "temperature": 0.0, "ignore_eos": True}
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=900) as response:
        reply = json.load(response)
    return {"seconds": time.perf_counter() - t0, "completion_tokens": reply["usage"]["completion_tokens"],
            "prompt_tokens": reply["usage"]["prompt_tokens"], "timings": reply.get("timings")}


def measure(name: str, port: int, problems: list[str], round_: int) -> None:
    for label, batch in (("1 request", problems[:1]), ("4 at once", problems[1:5])):
        results: list[dict[str, Any]] = []
        load_before = os.getloadavg()[0]
        threads = [threading.Thread(target=lambda p=p, out=results: out.append(chat(port, p))) for p in batch]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        generated = sum(r["completion_tokens"] for r in results)
        print(json.dumps({"round": round_, "server": name, "case": label, "load_before": round(load_before, 2),
                          "load_after": round(os.getloadavg()[0], 2), "wall_s": round(wall, 2), "generated": generated,
                          "aggregate_tokens_per_s": round(generated / wall, 2), "requests": results}), flush=True)


def wait(port: int, process: subprocess.Popen[bytes]) -> None:
    while True:
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"server exited {process.returncode}") from None
            time.sleep(0.5)


def run_new(repack: bool, problems: list[str], round_: int) -> None:
    new = LocalServer(model_path(), port=free_port(), slots=4, repack=repack,
                      log_path=f"/tmp/engine-bench-new-{repack}.log")
    new.start()
    try:
        new.wait_ready(300)
        measure(f"llama-server --parallel 4{'' if repack else ' --no-repack'}", new.port, problems, round_)
    finally:
        new.stop()


def run_old(problems: list[str], round_: int) -> None:
    port = free_port()
    old = subprocess.Popen([sys.executable, "-m", "program.llama_server", "--model", str(model_path()),
                            "--model_alias", "qwen2.5-coder-1.5b-instruct", "--port", str(port), "--n_ctx", "4096",
                            "--n_threads", "2", "--n_threads_batch", "2", "--logits_all", "false"], cwd=BEFORE,
                           env={"PYTHONPATH": BEFORE, "PATH": "/usr/bin:/bin"},
                           stdout=open("/tmp/engine-bench-old.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait(port, old)
        measure("old Python server (llama-cpp-python 0.3.36, before tree)", port, problems, round_)
    finally:
        old.terminate()
        old.wait(10)


def main() -> None:
    runs = [lambda p, r: run_new(True, p, r), lambda p, r: run_new(False, p, r), run_old]
    for round_, order in ((1, runs), (2, runs[::-1])):
        for i, run in enumerate(order):
            start = (round_ - 1) * 15 + i * 5
            run(PROBLEMS[start:start + 5], round_)


if __name__ == "__main__":
    main()
