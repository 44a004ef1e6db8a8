"""``python -m program.serving.build``: llama.cpp's own ``llama-server``, built once into the user cache.

The embedded engine is llama.cpp's C++ server. Its sources come from a pinned, sha256-checked
registry package: the llama-cpp-python sdist vendors llama.cpp (``vendor/llama.cpp``), and
``pip download`` fetches it from PyPI like any other package. We build the cmake target
``llama-server`` from it (about 7-10 minutes on 2 cores), statically linked, into
``<cache>/llama-server/<version>-<key>/`` where ``<cache>`` is the model's cache root
(``cache.default_cache_dir``) and ``<key>`` hashes the build flags and the compiler.

Build flags: Release, this CPU's instructions (``GGML_NATIVE``) but no AMX kernels
(``-mno-amx-*``): a ``-march=native`` build with AMX and weight repacking segfaulted on the first
batch (issue 24); no curl/OpenSSL, no web UI download. cmake and ninja come from PyPI (the
``local`` extra) where the system lacks them.

Reuse is checked the way the model file is: a stamp beside the binary records the flags, the
sdist hash and the binary's size/mtime/inode; a binary that matches it and answers ``--version``
is used as it is. A file lock makes a second process wait for the first one's build.

An existing binary (a GPU build, a package manager's) is used instead when named by
``scale serve --server-binary`` or ``$SCALE_LLAMA_SERVER`` (a path, or a name looked up on PATH
such as ``llama-server``); see ``server_binary``.

Example:
    $ python -m program.serving.build          # builds once, prints the binary's path
    $ SCALE_LLAMA_SERVER=llama-server scale serve   # use the one on PATH instead
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from program.errors import ProgramError
from program.serving.cache import default_cache_dir

__all__ = ["SDIST_VERSION", "SDIST_SHA256", "CMAKE_FLAGS", "build_dir", "built_binary", "ensure_built",
           "server_binary", "template_path", "main"]

SDIST_NAME = "llama-cpp-python"
SDIST_VERSION = "0.3.36"
SDIST_FILE = f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
LLAMA_CPP_DIR = f"llama_cpp_python-{SDIST_VERSION}/vendor/llama.cpp"
BINARY_ENV = "SCALE_LLAMA_SERVER"
SDIST_ENV = "SCALE_LLAMA_SDIST"  # a local copy of the sdist (offline machines); its hash is checked too
TEMPLATES = ("Qwen-Qwen3-0.6B.jinja",)  # kept beside the binary: tests serve the real Qwen3 template

# -mno-amx-*: GCC/Clang keep an explicit -mno-X over what -march=native implies, whatever the order,
# so ggml's AMX kernels (ggml-cpu/amx, compiled only under __AMX_INT8__) are left out.
_NO_AMX = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
CMAKE_FLAGS: tuple[str, ...] = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",  # one self-contained file: the build tree can be deleted
    "-DGGML_NATIVE=ON",
    f"-DCMAKE_C_FLAGS={_NO_AMX}",
    f"-DCMAKE_CXX_FLAGS={_NO_AMX}",
    "-DLLAMA_OPENSSL=OFF",  # no HTTPS model downloads: we serve a local file
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # otherwise the build fetches the web UI from Hugging Face
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)
_COMPILERS = {"C": ("CC", ("cc", "gcc", "clang")), "C++": ("CXX", ("c++", "g++", "clang++"))}


def _cache_root(cache_dir: Path | str | None) -> Path:
    return Path(cache_dir) if cache_dir is not None else default_cache_dir()


def _compilers() -> dict[str, str]:
    """{"C": path, "C++": path}, or a ProgramError naming the missing compiler and how to install one."""
    found: dict[str, str] = {}
    for language, (env, names) in _COMPILERS.items():
        candidates = [os.environ[env]] if os.environ.get(env) else list(names)
        path = next((p for p in map(shutil.which, candidates) if p), None)
        if path is None:
            raise ProgramError(
                f"Building llama-server needs a {language} compiler; none found (looked for "
                f"{', '.join(candidates)}{' from $' + env if os.environ.get(env) else ''}). Install one "
                "(Debian/Ubuntu: apt-get install build-essential; macOS: xcode-select --install), or use an "
                f"existing llama-server binary: {BINARY_ENV}=/path/to/llama-server.")
        found[language] = path
    return found


def _tool(name: str) -> str:
    """cmake or ninja: the PyPI package's binary (the ``local`` extra), else the system's."""
    with contextlib.suppress(ImportError, AttributeError):
        module = __import__(name)
        candidate = Path(module.CMAKE_BIN_DIR if name == "cmake" else module.BIN_DIR) / name
        if candidate.is_file():
            return str(candidate)
    path = shutil.which(name)
    if path is None:
        raise ProgramError(f"Building llama-server needs {name}; it is missing. Install it from PyPI: "
                           f"pip install cmake ninja (the `local` extra includes both).")
    return path


def _build_key(compilers: dict[str, str]) -> str:
    """Hash of what the binary depends on: sdist, flags, compilers, machine (-march=native)."""
    versions = []
    for path in compilers.values():
        out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False).stdout
        versions.append(out.splitlines()[0] if out else path)
    basis = json.dumps({"sdist": SDIST_SHA256, "flags": CMAKE_FLAGS, "compilers": versions,
                        "machine": platform.machine(), "cpu": _cpu_flags()})
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (Linux): a -march=native binary belongs to this CPU."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(line.split(":", 1)[1].split()))
    return platform.processor()


def build_dir(cache_dir: Path | str | None = None) -> Path:
    """Where this machine's build lives: ``<cache>/llama-server/<version>-<key>``.

    Example:
        >>> build_dir("/tmp/scale-cache").parent.name
        'llama-server'
    """
    return _cache_root(cache_dir) / "llama-server" / f"{SDIST_VERSION}-{_build_key(_compilers())}"


def _stamp(binary: Path) -> str:
    st = binary.stat()
    return json.dumps({"sdist_sha256": SDIST_SHA256, "flags": CMAKE_FLAGS, "size": st.st_size,
                       "mtime_ns": st.st_mtime_ns, "inode": st.st_ino})


def _version(binary: Path | str) -> str | None:
    """The first line ``llama-server --version`` prints, or None when it does not run."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout + done.stderr).strip()  # it prints the version on stderr
    return next((line for line in text.splitlines() if line.startswith("version")), None) if done.returncode == 0 \
        else None


def built_binary(cache_dir: Path | str | None = None) -> Path | None:
    """The cached build if its stamp matches and it runs ``--version``, else None (nothing is built)."""
    directory = build_dir(cache_dir)
    binary = directory / "bin" / "llama-server"
    with contextlib.suppress(OSError):
        if (directory / "stamp.json").read_text() == _stamp(binary) and _version(binary):
            return binary
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _sdist(directory: Path) -> Path:
    """The sha256-checked sdist: ``$SCALE_LLAMA_SDIST``, a copy already in the cache, else ``pip download``."""
    given = os.environ.get(SDIST_ENV)
    target = Path(given) if given else directory / SDIST_FILE
    if not target.is_file() and not given:
        print(f"Downloading the llama.cpp sources ({SDIST_NAME}=={SDIST_VERSION} sdist, 77 MB) from PyPI...",
              file=sys.stderr)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                               "--disable-pip-version-check", f"{SDIST_NAME}=={SDIST_VERSION}", "-d", str(directory)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not target.is_file():
            raise ProgramError(f"Could not download {SDIST_NAME}=={SDIST_VERSION} from PyPI:\n"
                               f"{(done.stdout + done.stderr)[-2000:]}\nOffline? Put the sdist somewhere and set "
                               f"{SDIST_ENV}=/path/to/{SDIST_FILE}, or use your own binary: {BINARY_ENV}=...")
    if not target.is_file():
        raise ProgramError(f"{SDIST_ENV}={given!r} is not a file; point it at {SDIST_FILE}.")
    digest = _sha256(target)
    if digest != SDIST_SHA256:
        raise ProgramError(f"{target} has sha256 {digest}, expected {SDIST_SHA256} ({SDIST_NAME} {SDIST_VERSION}). "
                           "Delete it so that it is downloaded again.")
    return target


def _run_logged(argv: list[str], log_path: Path, env: dict[str, str]) -> None:
    with log_path.open("a") as log_file:
        log_file.write("$ " + " ".join(argv) + "\n")
        log_file.flush()
        done = subprocess.run(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env, check=False)
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise ProgramError(f"Building llama-server failed ({argv[0]} exited with {done.returncode}). "
                           f"Last lines of {log_path}:\n{tail}")


def _build(directory: Path, jobs: int | None) -> Path:
    compilers = _compilers()
    cmake, ninja = _tool("cmake"), _tool("ninja")
    sdist = _sdist(directory.parent)
    log_path = directory / "build.log"
    directory.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    jobs = jobs or os.cpu_count() or 1
    print(f"Building llama-server from the llama.cpp sources in {sdist.name} with {jobs} jobs "
          f"(once; about 7-10 minutes on 2 cores). Log: {log_path}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=directory, prefix="work.") as work:
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(LLAMA_CPP_DIR + "/")]
            archive.extractall(work, members=members, filter="data")  # no paths outside work/
        source, tree = Path(work) / LLAMA_CPP_DIR, Path(work) / "build"
        env = {**os.environ, "CC": compilers["C"], "CXX": compilers["C++"]}
        _run_logged([cmake, "-S", str(source), "-B", str(tree), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}",
                     *CMAKE_FLAGS], log_path, env)
        _run_logged([cmake, "--build", str(tree), "--target", "llama-server", "-j", str(jobs)], log_path, env)
        (directory / "bin").mkdir(exist_ok=True)
        (directory / "templates").mkdir(exist_ok=True)
        for name in TEMPLATES:
            shutil.copyfile(source / "models" / "templates" / name, directory / "templates" / name)
        tmp = directory / "bin" / "llama-server.part"
        shutil.copy2(tree / "bin" / "llama-server", tmp)
        binary = directory / "bin" / "llama-server"
        os.replace(tmp, binary)
    version = _version(binary)
    if version is None:
        raise ProgramError(f"The freshly built {binary} does not run `--version`; see {log_path}.")
    (directory / "stamp.json").write_text(_stamp(binary))
    print(f"Built {binary} ({version}).", file=sys.stderr)
    return binary


def ensure_built(cache_dir: Path | str | None = None, *, jobs: int | None = None) -> Path:
    """The project's llama-server build, building it on first use (one process builds; others wait).

    Example:
        >>> ensure_built().name  # doctest: +SKIP
        'llama-server'
    """
    binary = built_binary(cache_dir)
    if binary is not None:
        return binary
    directory = build_dir(cache_dir)
    directory.parent.mkdir(parents=True, exist_ok=True)
    with directory.parent.joinpath("build.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return built_binary(cache_dir) or _build(directory, jobs)


def server_binary(configured: str | None = None, cache_dir: Path | str | None = None) -> Path:
    """The llama-server to run: ``configured`` (``--server-binary``), else ``$SCALE_LLAMA_SERVER``, else our build.

    A name without a slash is looked up on PATH. A given binary must answer ``--version``.

    Example:
        >>> server_binary("/bin/true")  # doctest: +SKIP
        PosixPath('/bin/true')
    """
    chosen, origin = (configured, "--server-binary") if configured else (os.environ.get(BINARY_ENV), f"${BINARY_ENV}")
    if not chosen:
        return ensure_built(cache_dir)
    path = shutil.which(chosen) if "/" not in chosen else (chosen if Path(chosen).is_file() else None)
    if path is None:
        raise ProgramError(f"{origin}={chosen!r}: no such executable{' on PATH' if '/' not in chosen else ''}. "
                           f"Give the path of a llama-server binary, or unset it to use the project's own build.")
    if _version(path) is None:
        raise ProgramError(f"{origin}={chosen!r} does not run `{path} --version`: is it llama.cpp's llama-server?")
    return Path(path)


def template_path(name: str = TEMPLATES[0], cache_dir: Path | str | None = None) -> Path:
    """A chat template from the vendored llama.cpp (``models/templates``), kept beside the build."""
    return ensure_built(cache_dir).parent.parent / "templates" / name


def main() -> None:
    """Build (or find) llama-server and print its path and version."""
    try:
        binary = server_binary()
    except ProgramError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{binary} ({_version(binary)})")


if __name__ == "__main__":
    main()
