"""optimize.search.pareto: the front of accuracy vs tokens as rows, table, plot and loadable experiment files."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optimize.experiment import ExperimentConfig, load_experiment
from optimize.search.pareto import (
    best_point,
    best_row,
    export_front,
    front_markdown,
    front_points,
    pareto_table,
    plot_front,
    point_row,
    trial_row,
)
from optimize.search.space import PARAMETERS
from program.config import ProgramConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)

# (tau, accuracy, mean tokens): 1 and 3 dominate 0 and 2; 4 ties 3 on accuracy with more tokens
POINTS = [(0.9, 40.0, 500.0), (0.7, 60.0, 400.0), (0.5, 50.0, 900.0), (0.2, 80.0, 1200.0), (0.1, 80.0, 1500.0)]


def make_study(points=POINTS, failed: bool = True) -> optuna.Study:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for tau, accuracy, tokens in points:
        config = PARAMETERS["threshold"].set(ProgramConfig(), tau)
        study.add_trial(create_trial(params={"threshold": tau}, distributions={"threshold": FloatDistribution(0, 1)},
                                     values=[accuracy, tokens],
                                     user_attrs={"values": {"threshold": tau, "num_waits": 0},
                                                 "system2_share": 100 * (1 - tau), "true_cost_tokens": int(tokens * 5),
                                                 "spent_tokens": int(tokens), "program_config": asdict(config)}))
    if failed:
        study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "RuntimeError: boom"}))
    return study


def test_front_and_best() -> None:
    study = make_study()
    assert [p.trial for p in front_points(study)] == [1, 3]  # fewest tokens first
    assert best_point(study).trial == 3
    rows = [{"trial": 7, "accuracy": 50.0, "mean_tokens": 10.0}, {"trial": 2, "accuracy": 50.0, "mean_tokens": 10.0}]
    assert best_row(rows)["trial"] == 2  # full tie: the earlier trial
    with pytest.raises(ValueError, match="No finished trials"):
        best_row([])


def test_rows_table_and_markdown() -> None:
    study = make_study()
    rows = [point_row(p, study) for p in front_points(study)]
    assert rows[0] == {**rows[0], "trial": 1, "threshold": 0.7, "num_waits": 0, "accuracy": 60.0,
                       "mean_tokens": 400.0, "spent_tokens": 400, "true_cost_tokens": 2000}
    failed = trial_row(study.trials[-1])
    assert failed["state"] == "FAIL" and failed["fail_reason"] == "RuntimeError: boom"
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(pareto_table(rows))
    text = console.export_text()
    assert "tau" in text and "0.70" in text and "2,000" in text and "waits" in text
    markdown = front_markdown(rows)
    assert markdown.splitlines()[0].startswith("| trial | tau |") and "| 3 | 0.20 |" in markdown


def test_plot_is_a_png(tmp_path: Path) -> None:
    path = plot_front(make_study(), tmp_path / "deep" / "front.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = optuna.create_study(directions=["maximize", "minimize"])
    assert plot_front(empty, tmp_path / "empty.png").is_file()  # a study with no finished trial still plots


def test_export_writes_loadable_configs_and_drops_stale_ones(tmp_path: Path) -> None:
    base = ExperimentConfig(name="demo")
    stale = tmp_path / "trial-0.yaml"
    stale.write_text("name: old\n")
    paths = export_front(make_study(), base, tmp_path)
    assert [p.name for p in paths] == ["trial-1.yaml", "trial-3.yaml"] and not stale.exists()
    loaded = load_experiment(paths[1])
    assert loaded.name == "demo-trial-3" and loaded.program.scale.threshold == 0.2
    assert loaded.program.lm == base.program.lm and loaded.search == base.search
    assert (tmp_path / "front.json").is_file() and (tmp_path / "front.md").read_text().count("\n") == 4


def test_export_without_a_stored_config_applies_the_params(tmp_path: Path) -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(create_trial(params={"threshold": 0.3}, distributions={"threshold": FloatDistribution(0, 1)},
                                 values=[50.0, 100.0]))
    base = replace(ExperimentConfig(name="x"))
    [path] = export_front(study, base, tmp_path)
    assert load_experiment(path).program.scale.threshold == 0.3
