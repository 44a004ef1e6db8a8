"""llama-server (new engine) against the old Python server (llama-cpp-python, the `before` tree), one sitting.

Same GGUF, 2 threads each, greedy, 128 generated tokens (ignore_eos), cold prompt cache per request
(a different problem each). For each server: 1 request alone, then 4 requests at once. Prints JSON lines.

    PYTHONPATH=. /work/main/.venv/bin/python experiments/results/engine/bench.py > experiments/results/engine/bench.jsonl
"""

from __future__ import annotations

import json
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
PROBLEMS = ["Janet's ducks lay 16 eggs per day. She eats three for breakfast and bakes muffins with four. She "
            f"sells the rest for $2 each. How much does she make? (variant {i})" for i in range(20)]


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


def measure(name: str, port: int, problems: list[str]) -> None:
    for label, batch in (("1 request", problems[:1]), ("4 at once", problems[1:5])):
        results: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda p=p: results.append(chat(port, p))) for p in batch]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        generated = sum(r["completion_tokens"] for r in results)
        print(json.dumps({"server": name, "case": label, "wall_s": round(wall, 2), "generated": generated,
                          "aggregate_tokens_per_s": round(generated / wall, 2), "requests": results}), flush=True)


def wait(port: int, process: subprocess.Popen[bytes]) -> None:
    while True:
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"server exited {process.returncode}")
            time.sleep(0.5)


def main() -> None:
    model = model_path()
    for repack in (True, False):
        new = LocalServer(model, port=free_port(), slots=4, repack=repack, log_path=f"/tmp/engine-bench-new-{repack}.log")
        new.start()
        try:
            new.wait_ready(300)
            measure(f"llama-server --parallel 4{'' if repack else ' --no-repack'}", new.port,
                    PROBLEMS[:5] if repack else PROBLEMS[5:10])
        finally:
            new.stop()
    port = free_port()
    old = subprocess.Popen([sys.executable, "-m", "program.llama_server", "--model", str(model), "--model_alias",
                            "qwen2.5-coder-1.5b-instruct", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2",
                            "--n_threads_batch", "2", "--logits_all", "false"], cwd=BEFORE,
                           env={"PYTHONPATH": BEFORE, "PATH": "/usr/bin:/bin"},
                           stdout=open("/tmp/engine-bench-old.log", "wb"), stderr=subprocess.STDOUT)
    try:
        wait(port, old)
        measure("old Python server (llama-cpp-python 0.3.36, before tree)", port, PROBLEMS[10:15])
    finally:
        old.terminate()
        old.wait(10)


if __name__ == "__main__":
    main()
