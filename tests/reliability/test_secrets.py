"""Secrets: planted API keys never reach MLflow, artifacts, logs, saved programs or results files.

Two keys are planted: ``OPENAI_API_KEY=sk-planted-...`` (a known variable, key-shaped) and a custom
variable the experiment file names in ``api_key_env`` whose value has no key shape at all (so only
"never written anywhere" protects it, not pattern redaction). Then ``scale eval`` (with a server
fault on the way), ``scale compile`` (MLflow on, DSPy traces on), ``scale run --program`` and
``scale search`` (MLflow on) run against a FakeServer that checks the custom key arrives as the
bearer token. Finally every file under the test's directories (mlflow.db, artifacts, runs, saved
programs, results, the Optuna storage, the response cache), the captured logs at DEBUG and
stdout/stderr are searched for both values.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml

from optimize.cli import main
from program.clients import transport
from program.testing.fakeserver import FakeServer, Fault
from reliability.toy import TALLY, data_dir, experiment_file, toy_reply

pytestmark = pytest.mark.fake_server

CUSTOM_VAR = "SCALE_RELIABILITY_LLM_SECRET"  # ends in neither _API_KEY nor _TOKEN on purpose


class KeyCheckingServer(FakeServer):
    """A FakeServer that records the Authorization header of every request."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.authorizations: list[str] = []

    def _handle(self, handler: Any, body: dict[str, Any]) -> None:
        self.authorizations.append(handler.headers.get("Authorization", ""))
        super()._handle(handler, body)


def encodings(value: str) -> dict[str, bytes]:
    """The key as written, and the base64 text any copy of it would contain (standard and URL-safe).

    Base64 of a longer text holding the key starts the key at one of three byte offsets; for each,
    the characters that depend only on the key's own bytes are a fixed needle.
    """
    forms = {"plain": value.encode()}
    raw = value.encode()
    for shift in range(3):
        # prefix ``shift`` filler bytes, encode, drop the characters the filler touches and the tail
        encoded = base64.b64encode(b"\0" * shift + raw)
        skip = {0: 0, 1: 2, 2: 3}[shift]
        body = encoded[skip:len(encoded) - 4]
        forms[f"base64@{shift}"] = body
        forms[f"base64url@{shift}"] = body.replace(b"+", b"-").replace(b"/", b"_")
    return forms


def files_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


def test_planted_keys_appear_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    openai_key = f"sk-planted-{secrets.token_hex(16)}"
    custom_key = f"plantedCustomValue{secrets.token_hex(16)}"
    monkeypatch.setenv("OPENAI_API_KEY", openai_key)
    monkeypatch.setenv(CUSTOM_VAR, custom_key)
    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative to the working directory
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.setattr(transport, "_CACHE_ENABLED", True)  # the response cache is searched too
    caplog.set_level(logging.DEBUG)

    data = data_dir(tmp_path)
    runs = tmp_path / "runs"
    with KeyCheckingServer([Fault(status=500), Fault(status=500)], default=toy_reply) as server:
        lm = {"preset": "local", "endpoint": {"model": "openai/fake", "api_base": server.api_base,
                                              "api_key_env": CUSTOM_VAR, "retries": 1}}
        config = experiment_file(tmp_path / "exp.yaml", data=data, output=runs, method="scale", mlflow_uri=mlflow_uri,
                                 lm=lm, search={"trials": 3, "space": {"threshold": [0.0, 1.0], "num_waits": 0},
                                                "heldout": 0},
                                 compile={"max_bootstrapped_demos": 1, "max_labeled_demos": 1})
        # configs store the variable's NAME, never its value
        text = config.read_text()
        assert CUSTOM_VAR in text and custom_key not in text and openai_key not in text

        common = ["--config", str(config), "--no-progress"]
        commands: list[list[str]] = []

        def run(argv: list[str]) -> int:
            commands.append(argv)
            return main(argv)

        # the two injected 500s fail the first problem (retries 1): exit 3, results written
        assert run(["-v", "eval", *common, "--method", "cot", "--limit", "4", "--max-server-errors", "5"]) == 3
        assert run(["-v", "compile", *common, "--dev", "gsm8k_train:3", "--val", "1", "--trace",
                     "--log-mlflow-model"]) == 0  # the opt-in pickled model is searched too
        compiled = runs / "toy" / "compiled-bootstrap"
        assert (compiled / "program.json").is_file()
        assert run(["-v", "run", "--program", str(compiled), "Row 7. What is 9 + 22?"]) == 0
        assert run(["-v", "search", *common, "--program", str(compiled)]) == 0
        # a user pasting the key itself where the variable's name belongs
        assert run(["eval", *common, "--api-key-env", openai_key]) == 2
        sent = set(server.authorizations)
    assert sent == {f"Bearer {custom_key}"}  # the custom key really was used on every request
    mlflow.flush_trace_async_logging()

    out, err = capfd.readouterr()
    for prefix in (b"", b"x", b"xy", b'{"auth": "Bearer '):  # the needles find an encoded copy at any offset
        encoded = base64.b64encode(prefix + custom_key.encode() + b'"}')
        assert any(needle in encoded for needle in encodings(custom_key).values())
    leaks = []
    planted = (("OPENAI_API_KEY", openai_key), (CUSTOM_VAR, custom_key))
    for name, value in planted:
        forms = encodings(value)
        for where, text in (("logs", caplog.text), ("stdout", out), ("stderr", err)):
            leaks += [f"{name} ({form}) in {where}" for form, needle in forms.items() if needle.decode() in text]
        for path in files_under(tmp_path, Path(os.environ["DSPY_CACHEDIR"])):
            data = path.read_bytes()
            leaks += [f"{name} ({form}) in {path}" for form, needle in forms.items() if needle in data]
    assert leaks == []

    # the search was meaningful: those stores hold the run's data in plain text
    searched = files_under(tmp_path)
    names = {p.name for p in searched}
    assert {"mlflow.db", "results.jsonl", "program.json", "config.yaml", "metadata.json", "optuna.db"} <= names
    assert any(b"What is" in p.read_bytes() for p in searched if p.name == "mlflow.db")  # traces/params in plain text
    artifacts = [p for p in searched if "mlruns" in p.parts or "mlartifacts" in p.parts]
    assert artifacts, "MLflow artifacts were not written under the test directory"
    saved = yaml.safe_load((compiled / "config.yaml").read_text())
    assert saved["lm"]["endpoint"]["api_key_env"] == CUSTOM_VAR
    TALLY["secrets"] = {"commands run": len(commands), "files searched": len(searched), "keys planted": len(planted),
                        "forms searched per key": len(encodings(custom_key)), "leaks": len(leaks)}
