"""The embedded engine stops with whoever started it, even mid-generation (issue 24).

- ``scale serve`` gets SIGTERM while its llama-server decodes two requests: within 5 s no process
  of it is left (issue 24 saw the old Python server still generating 37 s later, re-parented to 1).
- ``scale eval`` that started the server is SIGKILLed mid-run (no handler runs): the kernel's
  parent-death signal ends the server within 5 s.

Real llama-server and model (marked ``integration``); each on its own free port, never 8765.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from prerequisites import require_local_model
from program.config import LOCAL_MODEL_ALIAS
from reliability.toy import data_dir, experiment_file, scale_command, scale_env

pytestmark = pytest.mark.integration

LONG = [{"role": "user", "content": "Write the numbers from one to three hundred in words, one per line."}]
# `scale eval` exactly as the CLI runs it, with the embedded port moved off the shared 8765 (embedded_lm reads
# program.config.LOCAL_PORT when it builds the config).
EVAL_ON_PORT = "import sys, program.config as c; c.LOCAL_PORT = int(sys.argv[1]); " \
               "from optimize.cli import main; sys.exit(main(sys.argv[2:]))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def servers_on(port: int) -> list[int]:
    """PIDs of llama-server processes listening on ``port`` by their command line (any parent, zombies excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except OSError:
            continue
        if state != "Z" and argv and argv[0].endswith(b"llama-server") and str(port).encode() in argv:
            found.append(int(entry.name))
    return found


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def busy_slots(port: int) -> int:
    try:
        return sum(bool(slot["is_processing"]) for slot in get(port, "/slots"))
    except OSError:
        return 0


def healthy(port: int) -> bool:
    try:
        return get(port, "/health").get("status") == "ok"
    except OSError:
        return False


def flood(port: int, requests: int) -> None:
    """Long generations in background threads (they fail when the server goes: that is the point)."""
    def one() -> None:
        body = json.dumps({"model": LOCAL_MODEL_ALIAS, "messages": LONG, "max_tokens": 1500}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=120).read()
        except OSError:
            pass

    for _ in range(requests):
        threading.Thread(target=one, daemon=True).start()


def running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a dead process that init has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    alive = [p for p in pids if running(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if running(p)]
    return alive


def test_sigterm_to_scale_serve_mid_generation_leaves_no_server(tmp_path: Path) -> None:
    require_local_model()  # a skip, or a failure under CI=true
    port = free_port()
    serve = subprocess.Popen(scale_command("serve", "--port", str(port), "--slots", "2"), env=scale_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: healthy(port) or serve.poll() is not None, 300, "scale serve to be ready")
        assert serve.poll() is None, serve.stdout.read() if serve.stdout else ""
        servers = servers_on(port)
        assert len(servers) == 1
        flood(port, 2)
        wait_for(lambda: busy_slots(port) == 2, 60, "both slots to generate")
        serve.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        serve.wait(5)
        left = gone_within(servers, 5 - (time.monotonic() - t0))
        assert not left, f"llama-server {left} outlived a SIGTERMed scale serve by 5 s"
        assert not healthy(port)
    finally:
        if serve.poll() is None:
            serve.kill()
        for pid in servers_on(port):
            os.kill(pid, signal.SIGKILL)


def test_sigkilled_scale_eval_takes_the_server_it_started_with_it(tmp_path: Path) -> None:
    require_local_model()
    port = free_port()
    config = experiment_file(tmp_path / "exp.yaml", data=data_dir(tmp_path), output=tmp_path / "runs", method="cot")
    # -P: `python -c` would put the working directory first on sys.path, and the toy benchmark folder there is
    # called data/, which would shadow the project's data package (the installed `scale` script has no such entry).
    argv = [sys.executable, "-P", "-c", EVAL_ON_PORT, str(port), "eval", "--config", str(config), "--limit", "6",
            "--no-progress"]
    run = subprocess.Popen(argv, cwd=tmp_path, env=scale_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        wait_for(lambda: busy_slots(port) >= 1 or run.poll() is not None, 300, "scale eval to start generating")
        assert run.poll() is None, run.stdout.read() if run.stdout else ""
        servers = servers_on(port)
        assert len(servers) == 1  # the eval started it (nothing else was on this port)
        run.send_signal(signal.SIGKILL)
        run.wait(5)
        left = gone_within(servers, 5)
        assert not left, f"llama-server {left} outlived a SIGKILLed scale eval by 5 s"
    finally:
        if run.poll() is None:
            run.kill()
        for pid in servers_on(port):
            os.kill(pid, signal.SIGKILL)
