"""The quickstart's compile and search steps print no pickle warning a user cannot act on.

DSPy warns "Loading untrusted .pkl files can run arbitrary code" and "`dspy.settings` are
serialized using cloudpickle" whenever a program is saved with pickle, which MLflow's dspy flavor
does. Logging that MLflow model is opt-in (``--log-mlflow-model``); by default only the
pickle-free program directory is logged. The control at the end shows the check sees those
warnings when the model IS logged, so it could fail.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import replace
from pathlib import Path

import mlflow
import pytest

from optimize.experiment import CompileConfig
from test_search import experiment, toy_examples, toy_systems

PICKLE_WARNINGS = ("Loading untrusted .pkl", "serialized using cloudpickle")


def pickle_messages(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(w in line for w in PICKLE_WARNINGS) or "pickle" in line.lower()]


def test_quickstart_compile_and_search_print_no_pickle_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capfd: pytest.CaptureFixture[str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from optimize.commands.quickstart import quickstart
    from optimize.compiling.compile import log_program_model

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact folder is relative to the working directory
    monkeypatch.setattr("data.loading.dev_split", lambda pool, n, **kw: toy_examples(3)[kw.get("offset", 0):][:n])
    monkeypatch.setattr("data.loading.load_benchmark", lambda name, **kw: toy_examples(4)[1:])
    config = replace(experiment(tmp_path), compile=CompileConfig(optimizer="bootstrap", max_bootstrapped_demos=1,
                                                                 max_labeled_demos=0))
    config = replace(config, search=replace(config.search, trials=2))
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = quickstart(config, track=True, progress=False, systems=toy_systems())
    assert outcome["program_dir"] and outcome["parent_run_id"]  # compile and search ran, tracked in MLflow
    assert outcome["compiled"].model_uri is None  # the pickled MLflow model is opt-in
    shown = capfd.readouterr().err + "\n" + caplog.text + "\n" + "\n".join(str(w.message) for w in caught)
    assert pickle_messages(shown) == []

    # control: logging the MLflow dspy model (--log-mlflow-model) does bring them, and the check sees it
    caplog.clear()
    mlflow.set_tracking_uri(outcome["tracking_uri"])
    with mlflow.start_run():
        log_program_model(outcome["compiled"].program)
    shown = capfd.readouterr().err + "\n" + caplog.text
    assert pickle_messages(shown)
