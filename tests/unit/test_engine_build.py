"""Building and finding llama-server: the compiler check, the pinned sdist, reuse, your own binary.

The full build of llama.cpp takes 7-10 minutes; here a tiny stand-in sdist (same layout:
``llama_cpp_python-<v>/vendor/llama.cpp`` with a cmake target ``llama-server`` written to
``bin/``, as llama.cpp's CMakeLists does) goes through the same cmake + ninja steps in seconds.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from program.errors import ProgramError
from program.serving import build

STAND_IN_CMAKE = """cmake_minimum_required(VERSION 3.16)
project(standin CXX)
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
add_executable(llama-server main.cpp)
"""
STAND_IN_MAIN = """#include <cstdio>
int main() { std::fprintf(stderr, "version: 4242 (standin)\\nbuilt with test\\n"); return 0; }
"""
needs_toolchain = pytest.mark.skipif(not (shutil.which("c++") or shutil.which("g++")) or not shutil.which("cc"),
                                     reason="no C/C++ compiler here")


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv("SCALE_CACHE_DIR", str(directory))
    monkeypatch.delenv(build.BINARY_ENV, raising=False)
    monkeypatch.delenv(build.SDIST_ENV, raising=False)
    return directory


@pytest.fixture
def stand_in_sdist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tar.gz laid out like the llama-cpp-python sdist, pinned by its own hash for the test."""
    path = tmp_path / build.SDIST_FILE
    files = {"CMakeLists.txt": STAND_IN_CMAKE, "main.cpp": STAND_IN_MAIN,
             f"models/templates/{build.TEMPLATES[0]}": "{{ messages }}"}
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{build.LLAMA_CPP_DIR}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(build, "SDIST_SHA256", hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setenv(build.SDIST_ENV, str(path))
    return path


def test_a_missing_compiler_is_named_with_the_fix(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(cache))  # nothing on it
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ProgramError, match=r"needs a C compiler; none found \(looked for cc, gcc, clang\).*"
                                           r"build-essential.*SCALE_LLAMA_SERVER"):
        build.ensure_built()


def test_a_named_compiler_that_is_absent_says_so(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "no-such-compiler++")
    with pytest.raises(ProgramError, match=r"C\+\+ compiler; none found \(looked for no-such-compiler\+\+ from \$CXX"):
        build.build_dir()


def test_the_sdist_hash_is_checked(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / build.SDIST_FILE
    bad.write_bytes(b"not the sources")
    monkeypatch.setenv(build.SDIST_ENV, str(bad))
    with pytest.raises(ProgramError, match=rf"sha256 {hashlib.sha256(b'not the sources').hexdigest()}, "
                                           rf"expected {build.SDIST_SHA256}"):
        build._sdist(cache)


def test_the_flags_leave_amx_out_and_download_nothing() -> None:
    flags = " ".join(build.CMAKE_FLAGS)
    assert "-mno-amx-tile" in flags and "-mno-amx-int8" in flags
    assert "-DLLAMA_USE_PREBUILT_UI=OFF" in flags and "-DLLAMA_OPENSSL=OFF" in flags


@needs_toolchain
def test_builds_once_then_reuses_and_rebuilds_a_changed_binary(cache: Path, stand_in_sdist: Path) -> None:
    binary = build.ensure_built(jobs=1)
    assert binary == build.build_dir() / "bin" / "llama-server"
    assert build._version(binary) == "version: 4242 (standin)"
    assert (binary.parent.parent / "templates" / build.TEMPLATES[0]).read_text() == "{{ messages }}"
    assert not list(binary.parent.parent.glob("work.*"))  # the source and build trees are gone
    stamp = (binary.parent.parent / "stamp.json").read_text()
    assert build.ensure_built() == binary and (binary.parent.parent / "stamp.json").read_text() == stamp  # reused
    assert build.built_binary() == binary
    script(binary, "exit 1")  # replaced (or broken): the stamp no longer matches
    assert build.built_binary() is None
    assert build._version(build.ensure_built(jobs=1)) == "version: 4242 (standin)"


@needs_toolchain
def test_a_failing_build_shows_the_log_tail(cache: Path, stand_in_sdist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build, "CMAKE_FLAGS", (*build.CMAKE_FLAGS, "-DCMAKE_CXX_FLAGS=-DBROKEN=1 -include nonexist.h"))
    with pytest.raises(ProgramError, match=r"Building llama-server failed(.|\n)*nonexist\.h"):
        build.ensure_built(jobs=1)


def test_your_own_binary_by_path_or_by_name_on_path(cache: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    own = script(tmp_path / "llama-server", "echo 'version: 7000 (gpu)' >&2")
    assert build.server_binary(str(own)) == own
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.setenv(build.BINARY_ENV, "llama-server")
    assert build.server_binary() == own


def test_a_wrong_own_binary_is_refused_clearly(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(build.BINARY_ENV, str(tmp_path / "missing"))
    with pytest.raises(ProgramError, match=r"\$SCALE_LLAMA_SERVER=.*missing.*no such executable"):
        build.server_binary()
    broken = script(tmp_path / "broken", "exit 3")
    with pytest.raises(ProgramError, match=r"--server-binary=.*does not run .*--version"):
        build.server_binary(str(broken))
