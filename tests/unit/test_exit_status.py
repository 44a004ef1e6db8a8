"""Exit statuses: 0 all answered, 2 never reached (one line), 3 some problems failed (results written).

Scripted programs and LMs only (no network): the same rule through ``evaluate``, ``scale eval``,
``scale search`` and the summary table. The installed command against real sockets is in
``tests/reliability/test_exit_codes.py``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import dspy
import pytest
from optuna.trial import TrialState
from rich.console import Console

from optimize.cli import main
from optimize.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, ServerDownError
from optimize.evaluation import evaluate as evaluation
from optimize.evaluation.evaluate import evaluate
from optimize.evaluation.results import ProblemResult, ResultsFile
from optimize.evaluation.summary import print_summary, summarize
from optimize.experiment import save_experiment
from program.errors import ServerError
from program.testing import scripted_systems
from test_search import _solver, experiment, stages, toy_examples

OFFLINE = ["--api-base", "http://127.0.0.1:9/v1"]  # a named server: the embedded one is not started
DOWN = "The LLM server http://127.0.0.1:9/v1 failed after 1 attempts. Check that it is running (curl ...)"


def examples(n: int) -> list[dspy.Example]:
    return [dspy.Example(id=f"p{i}", problem=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("problem")
            for i in range(n)]


class Program:
    """Answers ``i + i`` right, except that the problems named in ``down`` raise a server error."""

    def __init__(self, down: set[int] | None = None, every: bool = False) -> None:
        self.down, self.every = down or set(), every

    def forward(self, problem: str) -> dspy.Prediction:
        number = int(problem.split()[2])
        if self.every or number in self.down:
            raise ServerError(DOWN)
        return dspy.Prediction(answer=str(2 * number))

    __call__ = forward


def table(summary: Any) -> str:
    console = Console(record=True, width=200)
    print_summary(summary, console=console)
    return console.export_text()


def test_the_table_shows_an_incomplete_accuracy_over_the_answered_problems() -> None:
    rows = [ProblemResult("a", correct=True), ProblemResult("b", correct=False),
            ProblemResult("c", error="ServerError: down", error_type="ServerError")]
    text = table(summarize(rows))
    assert "incomplete: 1 of 3 problems failed" in text and "accuracy over answered" in text
    assert "50.0% (1/2)" in text and "33.3%" not in text  # the all-problems figure is not shown as a result
    complete = summarize(rows[:2])
    assert complete.complete and "50.0% (1/2)" in table(complete) and "incomplete" not in table(complete)
    assert summarize(rows).to_dict()["complete"] is False


def test_a_one_problem_run_that_never_reaches_the_server_raises(tmp_path: Path) -> None:
    with pytest.raises(ServerDownError, match="never reached .*1 problem failed with a server error") as info:
        evaluate(Program(every=True), examples(1), results_path=tmp_path / "r.jsonl", progress=False)
    assert info.value.reached is False and info.value.exit_status == EXIT_USAGE
    assert "\n" not in str(info.value) and "http://127.0.0.1:9/v1" in str(info.value)
    assert [r.error_type for r in ResultsFile(tmp_path / "r.jsonl").read()] == ["ServerError"]  # written


def test_an_answered_problem_makes_a_later_server_failure_a_failed_problem_not_a_stop(tmp_path: Path) -> None:
    report = evaluate(Program(down={1}), examples(2), results_path=tmp_path / "r.jsonl", progress=False)
    assert (report.summary.n_failed, report.summary.n_answered, report.summary.accuracy_answered) == (1, 1, 100.0)


def test_a_server_down_after_answers_is_incomplete(tmp_path: Path) -> None:
    with pytest.raises(ServerDownError, match="3 problems in a row") as info:
        evaluate(Program(down={1, 2, 3}), examples(5), results_path=tmp_path / "r.jsonl", progress=False)
    assert info.value.reached and info.value.exit_status == EXIT_INCOMPLETE


@pytest.fixture
def toy_benchmark(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("data.loading.load_benchmark", lambda name, *, limit=None, **kw: examples(5)[:limit])


@pytest.mark.parametrize("program, limit, status", [
    (Program(every=True), 1, EXIT_USAGE),       # never reached, below the 3-in-a-row rule
    (Program(every=True), 5, EXIT_USAGE),       # never reached, stopped by the 3-in-a-row rule
    (Program(down={2}), 5, EXIT_INCOMPLETE),    # 1 of 5 failed: results written, summary printed
    (Program(down={2, 3, 4}), 5, EXIT_INCOMPLETE),  # down after 2 answers: stopped, work saved
    (Program(), 5, EXIT_OK),
])
def test_scale_eval_exit_status(program: Program, limit: int, status: int, tmp_path: Path, toy_benchmark: None,
                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(evaluation, "build_program", lambda config: program)
    argv = ["eval", "--method", "cot", "--benchmark", "toy", "--limit", str(limit), "--output", str(tmp_path),
            "--no-progress", *OFFLINE]
    assert main(argv) == status
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith(("error:", "warning:"))]
    assert len(lines) == (0 if status == EXIT_OK else 1)
    if status == EXIT_USAGE:
        assert lines[0].startswith("error: Stopped: the LLM server was never reached") and "127.0.0.1:9" in lines[0]
        assert "accuracy" not in out
    assert (tmp_path / "cot-toy" / "results.jsonl").is_file()


def test_every_evaluating_command_documents_its_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["eval", "--help"], ["compile", "--help"], ["search", "--help"], ["quickstart", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "exit status: 0 every problem was answered" in text and "2 a usage error" in text, argv
        assert "3 some problems failed" in text and "130 interrupted" in text, argv
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    assert "--log-mlflow-model" in capsys.readouterr().out


def test_scale_search_stops_at_a_trial_with_a_server_failure_and_resumes_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from program import methods

    failures = {"left": 1}
    solve = _solver(slow=False)

    def flaky(messages: list[dict[str, str]]) -> str:  # the first System 1 call (trial 1, tau 0.5) fails once
        if failures["left"]:
            failures["left"] -= 1
            raise ServerError(DOWN)
        return solve(messages)

    real_build = methods.build_program
    systems = scripted_systems(stages, flaky, _solver(slow=True))
    monkeypatch.setattr(methods, "build_program", lambda config, _=None, **kw: real_build(config, systems, **kw))
    monkeypatch.setattr("data.loading.dev_split", lambda pool, n, **kw: toy_examples(n))
    monkeypatch.setenv("COLUMNS", "200")
    config_file = save_experiment(experiment(tmp_path), tmp_path / "search.yaml")
    argv = ["search", "--config", str(config_file), "--trials", "2", "--no-mlflow", "--no-progress", *OFFLINE]
    assert main(argv) == EXIT_INCOMPLETE
    err = capsys.readouterr().err
    assert "trial 1: 1 of 3 problems failed with server errors" in err and "queued again" in err
    assert main(argv) == EXIT_OK
    assert "2 trials (2 complete" in capsys.readouterr().out

    import optuna

    study = optuna.load_study(study_name="toy-study", storage=f"sqlite:///{tmp_path / 'runs' / 'toy' / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]  # the cut-off one does not count
    assert study.trials[1].user_attrs["interrupted"] and study.trials[2].user_attrs["retry_of"] == 1
    assert study.trials[2].user_attrs["n_failed"] == 0
    stored = ResultsFile(study.trials[2].user_attrs["results_path"]).read()
    assert len(stored) == 4 and sum(r.failed for r in stored) == 1  # the rerun asked only the failed problem


def test_scale_search_against_a_server_that_never_answers_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from program import methods

    def down(messages: list[dict[str, str]]) -> str:
        raise ServerError(DOWN)

    real_build = methods.build_program
    systems = scripted_systems(down, down)
    monkeypatch.setattr(methods, "build_program", lambda config, _=None, **kw: real_build(config, systems, **kw))
    monkeypatch.setattr("data.loading.dev_split", lambda pool, n, **kw: toy_examples(1))
    config = replace(experiment(tmp_path), data=replace(experiment(tmp_path).data, dev="gsm8k_train:1"))
    config_file = save_experiment(config, tmp_path / "search.yaml")
    assert main(["search", "--config", str(config_file), "--trials", "2", "--no-mlflow", "--no-progress",
                 *OFFLINE]) == EXIT_USAGE
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: Stopped: the LLM server was never reached (1 problem failed")


def test_compile_exits_3_when_scoring_had_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from optimize.commands.compile import scores_status

    class Result:
        directory = tmp_path
        scores = {"dev": {"n": 3, "failed": 1}, "heldout": None}

    assert scores_status(Result()) == EXIT_INCOMPLETE  # type: ignore[arg-type]
    assert capsys.readouterr().err.startswith("warning: 1 of 3 problems failed")
    Result.scores = {"dev": {"n": 3, "failed": 0}, "heldout": {"n": 2, "failed": 0}}
    assert scores_status(Result()) == EXIT_OK  # type: ignore[arg-type]
    assert not capsys.readouterr().err


def test_scale_run_against_a_server_that_never_answers_exits_2_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from program.methods import build_program

    def down(messages: list[dict[str, str]]) -> str:
        raise ServerError(DOWN)

    # DSPy re-raises the engine's ServerError as its own LMUnexpectedError: the CLI finds it in the chain
    monkeypatch.setattr(evaluation, "build_program", lambda config: build_program(config, scripted_systems(down, down)))
    assert main(["run", "What is 2 + 2?", "--method", "cot", *OFFLINE]) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert err.strip().splitlines() == [f"error: {DOWN}"] and "Traceback" not in err and not out
