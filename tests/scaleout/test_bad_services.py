"""An unreachable or wrong study database or tracking server: one ``error:`` line naming it, exit 2.

No traceback, and never the password of the URL (it is in the URL the user typed, so a naive
message would echo it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from optimize.cli import main
from reliability.toy import data_dir, experiment_file
from scaleout.conftest import Postgres, free_port

PASSWORD = "hunter2-not-for-logs"


@pytest.fixture(autouse=True)
def _fresh_logging() -> None:
    """``main`` sets up logging on stderr once per process; each test captures a new stderr."""
    import logging

    import optuna

    optuna.logging.disable_default_handler()  # it would keep the first test's (closed) stderr
    for handler in list(logging.root.handlers):
        logging.root.removeHandler(handler)


def _search(tmp_path: Path, *extra: str) -> list[str]:
    config = experiment_file(tmp_path / "search.yaml", data=data_dir(tmp_path), output=tmp_path / "runs")
    return ["search", "--config", str(config), "--trials", "2", "--no-progress", "--model", "openai/fake",
            "--api-base", "http://127.0.0.1:9/v1", *extra]


def _one_error(capsys: pytest.CaptureFixture[str], code: int, *names: str) -> str:
    out, err = capsys.readouterr()
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in out + err
    assert PASSWORD not in out + err
    for name in names:
        assert name in errors[0]
    return errors[0]


def test_unreachable_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    code = main(_search(tmp_path, "--storage", f"postgresql://scale:{PASSWORD}@127.0.0.1:{port}/optuna"))
    line = _one_error(capsys, code, f"127.0.0.1:{port}/optuna", "scale:***")
    assert "database server is running" in line


def test_wrong_password_on_a_real_database(tmp_path: Path, postgres: Postgres,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://{postgres.user}:{PASSWORD}@{postgres.host}:{postgres.port}/postgres"
    code = main(_search(tmp_path, "--storage", url))
    line = _one_error(capsys, code, f"{postgres.host}:{postgres.port}")
    assert "password authentication failed" in line


@pytest.mark.parametrize("url", ["postgres-ql://x/y", "nosuchdb://scale:{pw}@host/db", "postgresql://scale:{pw}@/"])
def test_a_url_that_is_no_database(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_search(tmp_path, "--storage", url.format(pw=PASSWORD)))
    _one_error(capsys, code, "study storage")


def test_unreachable_tracking_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code = main(_search(tmp_path, "--tracking-uri", f"http://admin:{PASSWORD}@127.0.0.1:{port}"))
    line = _one_error(capsys, code, f"127.0.0.1:{port}", "admin:***")
    assert "not reachable" in line and "--tracking-uri" in line


def test_a_tracking_url_that_is_no_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_search(tmp_path, "--tracking-uri", f"htp://admin:{PASSWORD}@nowhere"))
    _one_error(capsys, code, "tracking store")


def test_tracking_server_from_the_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    code = main(_search(tmp_path))
    _one_error(capsys, code, f"127.0.0.1:{port}")
