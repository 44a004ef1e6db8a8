"""Real services for the scale-out tests: one PostgreSQL server and one ``mlflow server`` per session.

Both run on loopback ports chosen at start, in temporary directories, and are stopped at the end
of the session. PostgreSQL is Debian's package (``make install-services`` installs it; the
Makefile's ``test`` target does that first). PostgreSQL refuses to run as root, so as root (CI)
the server runs as the ``postgres`` user that Debian's package creates.

Where the binaries are missing the tests skip with the install command, except under CI
(``CI=true``), where they must run: there a missing server fails the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_USER = "scale"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.fake_server)  # real HTTP on loopback, no model


def _missing(what: str, fix: str) -> None:
    message = f"{what} not found; {fix}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} (CI must run the scale-out tests)", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass(frozen=True)
class Postgres:
    """A running server: ``url(db)`` gives an SQLAlchemy URL with the password."""

    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on a free loopback port, password-protected (scram), for the whole session."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        _missing("PostgreSQL (initdb, pg_ctl)", "install it with `make install-services` "
                 "(Debian: apt-get install postgresql)")
    run_as: str | None = None
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _missing("the 'postgres' user (PostgreSQL refuses to run as root)", "apt-get install postgresql creates it")
        run_as = "postgres"
    base = Path(tempfile.mkdtemp(prefix="scale-tts-pg-"))
    data, password = base / "data", secrets.token_hex(12)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if run_as:
        shutil.chown(base, run_as)
        shutil.chown(pwfile, run_as)
    port = free_port()
    subprocess.run([initdb, "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                    "--encoding=UTF8", "--no-sync"], check=True, capture_output=True, user=run_as)
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    started = subprocess.run([pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "-t", "60",
                              "start"], capture_output=True, text=True, user=run_as)
    if started.returncode != 0:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{log}", pytrace=False)
    try:
        yield Postgres("127.0.0.1", port, PG_USER, password)
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True, user=run_as)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(postgres: Postgres, request: pytest.FixtureRequest) -> str:
    """A fresh database of the session's server for one test."""
    name = "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40]
    name = f"t_{name}_{secrets.token_hex(3)}"
    return postgres.create_database(name)


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[str]:
    """``mlflow server`` on a free loopback port (sqlite store, local artifact store); its URL."""
    mlflow = Path(sys.executable).with_name("mlflow")
    if not mlflow.exists():
        _missing("the mlflow command", "pip install -e '.[dev]'")
    base = Path(tempfile.mkdtemp(prefix="scale-tts-mlflow-server-"))
    port = free_port()
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(base / "server.log", "wb")
    process = subprocess.Popen([str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
                                "--backend-store-uri", f"sqlite:///{base / 'mlflow.db'}",
                                "--artifacts-destination", str(base / "artifacts"), "--workers", "1"],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, base / "server.log", timeout=120)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, *, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited ({process.returncode}):\n{log.read_text()[-3000:]}", pytrace=False)
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer /health within {timeout:.0f} s:\n{log.read_text()[-3000:]}",
                pytrace=False)
