"""Fixtures of the reliability suite: no response cache (request counts must be real), toy data."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.toy import data_dir


@pytest.fixture(autouse=True)
def _no_response_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request reaches the (fake) server: a cache hit would hide a repeated call."""
    from program.clients import transport

    monkeypatch.setenv("SCALE_NO_CACHE", "1")
    monkeypatch.setattr(transport, "_CACHE_ENABLED", False)


@pytest.fixture
def toy_data(tmp_path: Path) -> Path:
    """A data directory with a 6-problem gsm8k test file and a 12-problem gsm8k_train pool."""
    return data_dir(tmp_path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the reliability tests tried and found, scenario by scenario."""
    from reliability.toy import TALLY

    if not TALLY:
        return
    terminalreporter.section("reliability: scenarios tried")
    for scenario in sorted(TALLY):
        counts = ", ".join(f"{k} {v}" for k, v in TALLY[scenario].items())
        terminalreporter.write_line(f"{scenario}: {counts}")
