"""Does ``scale eval --workers N`` keep N requests in flight? Its request rate vs a bare load generator.

A fake OpenAI-compatible server (``program.testing.fakeserver.FakeServer``, in its own process) answers
every request after a fixed latency, with at most ``--slots`` requests served at once, like a
batching model server. Against it:

1. ``scale eval --method cot --workers N`` on the first ``--problems`` GSM8K test problems (the
   real command in a subprocess: DSPy, litellm, grading, one results line per problem);
2. a bare load generator: ``N`` threads with one ``httpx.Client`` sending the very request bodies
   the evaluation sent, in the same order.

Both rates are measured at the server: requests / (end of the last one - start of the first
one). The ratio (eval / bare) is the share of the server's capacity the evaluation uses.

    python experiments/throughput.py --workers 32 --slots 32 --latency 1.0 --problems 320 \\
        --out experiments/results/throughput
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _serve(latency: float, slots: int, ports: Any, control: Any) -> None:
    """The fake server process: answers until told "stop"; "dump" returns and clears its request log."""
    sys.path.insert(0, str(ROOT))
    from program.testing.fakeserver import FakeServer

    server = FakeServer(default="Adding the numbers gives \\boxed{42}.", latency=latency, slots=slots).start()
    ports.put(server.port)
    while True:
        command = control.recv()
        if command == "dump":
            with server._lock:
                control.send({"requests": list(server.requests), "served": list(server.served)})
                server.requests.clear()
                server.served.clear()
        else:
            server.stop()
            return


def _rate(served: list[tuple[float, float]]) -> dict[str, float]:
    start, end = min(s for s, _ in served), max(e for _, e in served)
    return {"requests": len(served), "seconds": round(end - start, 3),
            "requests_per_second": len(served) / (end - start)}


def _bare(api_base: str, bodies: list[dict[str, Any]], workers: int) -> float:
    """Send ``bodies`` with ``workers`` threads sharing one httpx client; returns the client's wall time."""
    import httpx

    todo: queue.Queue[dict[str, Any]] = queue.Queue()
    for body in bodies:
        todo.put(body)
    errors: list[str] = []
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=api_base, limits=limits, timeout=600) as client:
        def worker() -> None:
            while True:
                try:
                    body = todo.get_nowait()
                except queue.Empty:
                    return
                path = "/completions" if "prompt" in body else "/chat/completions"
                response = client.post(path, json=body, headers={"Authorization": "Bearer sk-no-key"})
                if response.status_code != 200:
                    errors.append(f"HTTP {response.status_code}")

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if errors:
        raise RuntimeError(f"the bare load generator got errors: {errors[:3]}")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--slots", type=int, default=32)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per request at the fake server")
    parser.add_argument("--problems", type=int, default=320)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "throughput")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    ports, (control, child) = context.Queue(), context.Pipe()
    server = context.Process(target=_serve, args=(args.latency, args.slots, ports, child), daemon=True)
    server.start()
    api_base = f"http://127.0.0.1:{ports.get(timeout=60)}/v1"
    run_dir = Path(tempfile.mkdtemp(prefix="scale-throughput-"))
    command = [str(Path(sys.executable).with_name("scale")), "eval", "--method", "cot", "--benchmark", "gsm8k",
               "--limit", str(args.problems), "--workers", str(args.workers), "--no-progress", "--output",
               str(run_dir), "--model", "openai/fake", "--api-base", api_base]
    env = {**os.environ, "SCALE_NO_CACHE": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    try:
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        eval_wall = time.monotonic() - started
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n")
            return 1
        control.send("dump")
        evaluation = control.recv()
        bare_wall = _bare(api_base, evaluation["requests"], args.workers)
        control.send("dump")
        bare = control.recv()
    finally:
        control.send("stop")
        server.join(timeout=10)

    eval_rate, bare_rate = _rate(evaluation["served"]), _rate(bare["served"])
    ratio = eval_rate["requests_per_second"] / bare_rate["requests_per_second"]
    report = {
        "ratio": round(ratio, 3), "goal": 0.9, "scale_eval": eval_rate, "bare_httpx": bare_rate,
        "scale_eval_command_wall_seconds": round(eval_wall, 2), "bare_client_wall_seconds": round(bare_wall, 2),
        "config": {"workers": args.workers, "slots": args.slots, "latency_seconds": args.latency,
                   "problems": args.problems, "method": "cot", "benchmark": "gsm8k (test, first N)"},
        "ideal_requests_per_second": min(args.workers, args.slots) / args.latency,
        "command": "python " + " ".join([str(Path(__file__).relative_to(ROOT)), *sys.argv[1:]]),
        "eval_command": " ".join(command[1:]).replace(api_base, "<fake server>").replace(str(run_dir), "<run dir>"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "console.txt").write_text(done.stdout + done.stderr)
    timings = {"scale_eval": evaluation["served"], "bare_httpx": bare["served"]}
    (args.out / "request_timings.json").write_text(json.dumps(timings) + "\n")
    for path in run_dir.rglob("*"):
        if path.name in ("results.jsonl", "summary.json"):
            shutil.copy(path, args.out / f"eval-{path.name}")
    shutil.rmtree(run_dir, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
