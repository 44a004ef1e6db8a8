"""The toy world the reliability tests share: "What is A + B?" problems, a fake server that solves
them at every stage (chat and raw completions), data directories and experiment files.

Problems name their numbers in the text, so a scripted or fake-server reply can always be right;
every test then knows what a correct run looks like and can spot a lost, doubled or wrong result.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from program.testing.fakeserver import FakeServer

ROOT = Path(__file__).resolve().parents[2]
SCALE = ROOT / ".venv" / "bin" / "scale"
_PROBLEM = re.compile(r"What is (\d+) \+ (\d+)\?")


# --- problems and data files -------------------------------------------------------------------

def problem(i: int) -> dict[str, str]:
    """Row ``i`` of a toy benchmark: a distinct sum per row."""
    a, b = i + 2, 3 * i + 1
    return {"id": f"q{i:03d}", "problem": f"Row {i}. What is {a} + {b}?", "answer": str(a + b)}


def rows(n: int, start: int = 0) -> list[dict[str, str]]:
    return [problem(i) for i in range(start, start + n)]


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def data_dir(root: Path, n_test: int = 6, n_train: int = 12) -> Path:
    """A directory with toy ``gsm8k_test.jsonl`` (benchmark gsm8k) and ``gsm8k_train.jsonl`` (the dev pool)."""
    directory = root / "data"
    write_jsonl(directory / "gsm8k_test.jsonl", rows(n_test))
    write_jsonl(directory / "gsm8k_train.jsonl", rows(n_train, start=100))
    return directory


def experiment_file(path: Path, *, data: Path, output: Path, method: str = "scale", mlflow_uri: str | None = None,
                    search: dict[str, Any] | None = None, compile: dict[str, Any] | None = None,
                    lm: dict[str, Any] | None = None, name: str = "toy") -> Path:
    """An experiment YAML on the toy data (LM endpoint given on the command line or in ``lm``)."""
    config: dict[str, Any] = {
        "name": name, "method": method, "lm": lm or {"preset": "local"},
        "scale": {"threshold": 0.5},
        "data": {"benchmark": "gsm8k", "dev": "gsm8k_train:3", "val": 0, "data_dir": str(data)},
        # heldout 0: the toy pool (a few dozen rows) has no room for a held-out slice beside the dev slice
        "search": {"trials": 4, "study": "toy-study", "sampler": "random", "heldout": 0,
                   "space": {"threshold": [0.0, 1.0], "system1_max_tokens": [64, 128], "num_waits": 0},
                   **(search or {})},
        "compile": {"optimizer": "bootstrap", "max_bootstrapped_demos": 1, "max_labeled_demos": 1,
                    **(compile or {})},
        "tracking": {"output_dir": str(output), **({"mlflow_uri": mlflow_uri} if mlflow_uri else {})},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# --- a fake server that solves the toy problems --------------------------------------------------

def sum_in(text: str) -> int | None:
    """The answer to the LAST toy problem named in ``text`` (demos of other problems come first)."""
    found = _PROBLEM.findall(text)
    return int(found[-1][0]) + int(found[-1][1]) if found else None


def problem_of(body: dict[str, Any]) -> str:
    """The toy problem a request is about ("Row 3. What is ..."), or "" if none."""
    text = body.get("prompt") or "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    found = re.findall(r"Row \d+\. What is \d+ \+ \d+\?", text)
    return found[-1] if found else ""


def toy_reply(body: dict[str, Any]) -> str:
    """A right reply for whatever stage a request belongs to (a FakeServer action)."""
    if "prompt" in body:  # s1 budget forcing over /v1/completions: a thinking segment or the answer
        prompt = str(body["prompt"])
        if prompt.rstrip().endswith(("</think>", "Final Answer:")):
            return f"\\boxed{{{sum_in(prompt)}}}"
        return "I add the two numbers."
    messages = body.get("messages", [])
    system = str(messages[0].get("content", "")) if messages else ""
    text = "\n".join(str(m.get("content", "")) for m in messages)
    if "Break the math problem" in system:
        return "1. Find the sum of the two numbers."
    if "Rate how hard" in system:
        return "0.3"
    if "Choose the best one" in system:
        return "1"
    if "Restate the math problem" in system:
        return "Conditions: two numbers are given.\nQuestion: What is their sum?"
    if "Summarise the progress" in system:
        return "- the two numbers are known"
    return f"Adding them gives \\boxed{{{sum_in(text)}}}."


def toy_server(*script: Any, default: Any = toy_reply) -> FakeServer:
    return FakeServer(list(script), default=default)


def requests_for(server: FakeServer) -> list[str]:
    """The toy problem of every request the server received, in order."""
    return [problem_of(body) for body in list(server.requests)]


def stop_listening(server: FakeServer) -> tuple[Any, int]:
    """Kill the server: new connections are refused. Returns what ``listen_again`` needs."""
    assert server._server is not None
    handler, port = server._server.RequestHandlerClass, server.port
    server.stop()
    return handler, port


def listen_again(server: FakeServer, handler: Any, port: int) -> None:
    """Bring a killed server back on the same port (same script, same request log)."""
    http = ThreadingHTTPServer(("127.0.0.1", port), handler)
    http.daemon_threads = True
    threading.Thread(target=http.serve_forever, daemon=True).start()
    server._server = http


def kill_after(server: FakeServer, n: int, reply: Callable[[dict[str, Any]], str] = toy_reply) -> Callable:
    """A FakeServer action: answer the request, but stop listening first once ``n`` requests arrived."""
    state = {"killed": None}

    def action(body: dict[str, Any]) -> str:
        if len(server.requests) >= n and state["killed"] is None:
            state["killed"] = stop_listening(server)
        return reply(body)

    action.state = state  # type: ignore[attr-defined]
    return action


# --- the real command in a subprocess ----------------------------------------------------------

def scale_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "SCALE_NO_CACHE": "1", "HF_DATASETS_OFFLINE": "1",
                "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **extra})
    # this checkout's code first: the venv's editable install may point at another checkout (a git worktree)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def scale_command(*args: str) -> list[str]:
    """argv of the installed ``scale`` command (the venv's), else ``python -P -m optimize.cli``.

    ``-P``: the tests run in a temporary directory whose toy benchmark folder is called data/; ``-m`` would put that
    directory first on sys.path, where it would shadow the project's data package.
    """
    if SCALE.exists():
        return [str(SCALE), *args]
    return [sys.executable, "-P", "-m", "optimize.cli", *args]


def run_scale(*args: str, cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(scale_command(*args), cwd=cwd, env=scale_env(**env), capture_output=True, text=True,
                          timeout=timeout)


# --- counts for the report -------------------------------------------------------------------

# What each scenario tried and found ("bad replies", "crashes", "calls repeated", ...): filled by
# the tests, printed at the end of the session (tests/reliability/conftest.py).
TALLY: dict[str, dict[str, Any]] = {}
