"""``scale calibrate`` on scripted LMs: labels, resume without repeated calls, the report, the learned fit, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import dspy
import pytest

from optimize.calibration.labels import ProblemLabel, label_all, label_problem
from optimize.calibration.report import calibrate_report, format_table
from optimize.calibration.run import calibrate, labelling_program
from optimize.cli import main
from optimize.experiment import ExperimentConfig, TrackingConfig
from program.clients.lm import Systems
from program.config import ProgramConfig, ScaleConfig
from program.scale.sources import LearnedModel
from program.signatures import AssessDifficulty, Decompose
from program.testing import function_lm
from tests.unit.test_scale_module import field, is_stage

Messages = list[dict[str, str]]


def stages(messages: Messages) -> str:
    if is_stage(messages, Decompose):
        return "1. Find the total.\n2. Give the answer."
    if is_stage(messages, AssessDifficulty):
        return "0.5"
    raise AssertionError("unexpected stage")


def problem_number(messages: Messages) -> int:
    return int(field(messages, "Problem").split()[1])


def toy_systems() -> Systems:
    """Problem k (gold k): System 1 is right on even k with a short reply, wrong on odd k with a long one;
    System 2 is always right."""
    def s1(messages: Messages) -> str:
        k = problem_number(messages)
        return f"short \\boxed{{{k}}}" if k % 2 == 0 else "long " * 12 + f"\\boxed{{{k + 1}}}"

    return Systems(stages=function_lm(stages, "stages"), system1=function_lm(s1, "system1", max_tokens=20),
                   system2=function_lm(lambda m: f"slow \\boxed{{{problem_number(m)}}}", "system2"))


def examples(n: int) -> list[dspy.Example]:
    return [dspy.Example(id=f"p{k}", problem=f"Problem {k} needs an answer.", answer=str(k)).with_inputs("problem")
            for k in range(1, n + 1)]


def config(tmp_path: Path, method: str = "cascade") -> ExperimentConfig:
    return ExperimentConfig(program=ProgramConfig(method=method, scale=ScaleConfig(max_steps=3)),
                            tracking=TrackingConfig(output_dir=str(tmp_path / "runs")))


def test_a_problem_is_labelled_from_both_chains_with_tokens_and_scores(tmp_path: Path) -> None:
    systems = toy_systems()
    program = labelling_program(config(tmp_path, "scale"), "scale", systems)
    label = label_problem(program, examples(1)[0], ["rating", "attempt:length"])
    assert [s.step for s in label.steps] == ["Find the total.", "Give the answer."]
    assert (label.s1_answer, label.s2_answer, label.s1_correct, label.s2_correct) == ("2", "1", False, True)
    assert all(s.differs for s in label.steps)
    assert label.steps[0].scores == {"attempt:length": 0.65, "rating": 0.5}  # 13 of 20 tokens
    assert label.s1_tokens == 2 * 13 and label.s2_tokens == 2 * 2
    # System 2 was asked three times: step 1 (label and chain at once), step 2 in each chain's context.
    assert len(systems.system2.engine.requests) == 3


def test_an_interrupted_labelling_resumes_without_repeating_a_call(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    label_all(lambda: labelling_program(config(tmp_path), "cascade", toy_systems()), examples(2), path,
              ["attempt:length"], progress=False)
    with path.open("a") as cut:  # a kill mid-write leaves half a line
        cut.write('{"id": "p3", "problem": "Prob')
    systems = toy_systems()
    labels = label_all(lambda: labelling_program(config(tmp_path), "cascade", systems), examples(3), path,
                       ["attempt:length"], progress=False)
    assert [label.id for label in labels] == ["p1", "p2", "p3"]
    assert [problem_number(r) for r in systems.system1.engine.requests] == [3]  # only the missing problem
    assert len(path.read_text().splitlines()) == 3


def test_calibrate_writes_the_report_plot_and_a_learned_model_that_scores_like_its_fit(tmp_path: Path) -> None:
    run = calibrate(config(tmp_path), examples(8), output=tmp_path / "cal", method="cascade",
                    sources=["rating", "attempt:length", "learned"], fit=True, tracking=False, progress=False,
                    resamples=200, systems=toy_systems())
    report = run.report
    by_name = {s.name: s for s in report.sources}
    assert by_name["attempt:length"].problem_auroc == 1.0  # long, unanswered attempts are exactly the wrong ones
    assert by_name["rating"].problem_auroc == 0.5  # a constant rating carries nothing
    assert by_name["attempt:length"].gain_half == pytest.approx(1.0)
    assert math.isclose(by_name["rating"].gain_half, 0.5)
    assert (report.s1_accuracy, report.s2_accuracy, report.one_step_plans) == (0.5, 1.0, True)
    saved = json.loads(run.json_path.read_text())
    assert saved["source_names"] == ["rating", "attempt:length", "learned"] and saved["n_problems"] == 8
    assert run.plot_path.read_bytes()[:4] == b"\x89PNG"
    model = LearnedModel.load(run.learned_path)
    assert model.fitted_on["label"] == "system1_wrong" and model.fitted_on["n_problems"] == 8
    labels = [ProblemLabel.from_dict(json.loads(line)) for line in (tmp_path / "cal" / "labels.jsonl").open()]
    scores = [model.score(label.steps[0].features) for label in labels]
    assert min(s for s, label in zip(scores, labels, strict=True) if not label.s1_correct) > max(
        s for s, label in zip(scores, labels, strict=True) if label.s1_correct)
    assert "attempt:length" in format_table(report)


def one_step_label(pid: str, s1_correct: bool, s2_correct: bool, score: float) -> ProblemLabel:
    right, wrong = "1", "2"
    s1, s2 = (right if s1_correct else wrong), (right if s2_correct else wrong)
    return ProblemLabel.from_dict({"id": pid, "problem": "p", "gold": right, "steps": [
        {"index": 0, "step": "s", "s1_value": s1, "s2_value": s2, "differs": s1 != s2, "features": {},
         "scores": {"attempt:length": score}, "s1_tokens": 1, "s2_tokens": 1}], "s1_answer": s1, "s2_answer": s2,
        "s1_correct": s1_correct, "s2_correct": s2_correct, "s1_tokens": 1, "s2_tokens": 1, "measure_tokens": 0,
        "wall_seconds": 0.1})


def test_the_report_needs_every_source_measured() -> None:
    label = one_step_label("a", True, True, 0.2)
    with pytest.raises(ValueError, match="'rating' was not measured on every problem"):
        calibrate_report([label], ["rating"], resamples=0)


def test_the_table_warns_that_g_is_a_share_of_a_loss_when_system2_is_worse() -> None:
    warning = "G(r) is the share of a loss"
    worse = [one_step_label("a", True, False, 0.1), one_step_label("b", False, False, 0.9)]
    report = calibrate_report(worse, ["attempt:length"], resamples=0)
    assert report.s2_accuracy < report.s1_accuracy and warning in format_table(report)
    better = [one_step_label("a", True, True, 0.1), one_step_label("b", False, True, 0.9)]
    assert warning not in format_table(calibrate_report(better, ["attempt:length"], resamples=0))


def test_the_command_names_an_unknown_source_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--dev", "gsm8k_train:5", "--sources", "rating,horoscope", "--no-mlflow"]) == 2
    assert "unknown source(s) 'horoscope'; known sources are: rating, rating_logprobs" in capsys.readouterr().err


def test_the_best_threshold_maximises_dev_accuracy_then_saves_tokens() -> None:
    from optimize.calibration.report import best_threshold

    kept, routed = [True, False, True, False], [True, True, True, True]
    # Routing the two failures (scores 0.7, 0.9) is enough: tau between 0.5 and 0.7, not lower (more tokens).
    assert best_threshold([0.1, 0.7, 0.5, 0.9], kept, routed, [1] * 4, [5] * 4) == (0.6, 1.0, 3.0)
    # A constant score: all or nothing; System 2 is better here, so everything goes (tau -1).
    assert best_threshold([0.5] * 4, kept, routed, [1] * 4, [5] * 4) == (-1.0, 1.0, 5.0)
    # Nothing to gain: keep everything on System 1 (the cheapest of the equally accurate).
    assert best_threshold([0.5, 0.6], [True, True], [True, True], [1, 1], [5, 5]) == (1.0, 1.0, 1.0)


def test_the_logprob_options_are_read_from_the_chains_one_attempt(tmp_path: Path) -> None:
    """length, deepconf and mean_logprob are all scored from System 1's one attempt, asked with logprobs."""
    from program.clients.transport import Completion

    def s1(messages: Messages) -> Completion:
        k = problem_number(messages)
        words = ["short", f"\\boxed{{{k}}}"]
        logprobs = [{"token": w, "logprob": -0.5, "top": [[w, -0.5], ["x", -1.0]]} for w in words]
        return Completion(text=" ".join(words), completion_tokens=len(words), logprobs=logprobs)

    systems = Systems(stages=function_lm(stages, "stages"), system1=function_lm(s1, "system1", max_tokens=20),
                      system2=function_lm(lambda m: f"slow \\boxed{{{problem_number(m)}}}", "system2"))
    program = labelling_program(config(tmp_path), "cascade", systems)
    label = label_problem(program, examples(1)[0], ["attempt:length", "attempt:deepconf", "attempt:mean_logprob"])
    assert len(systems.system1.engine.requests) == 1  # one attempt, not one per option
    assert systems.system1.engine.configs[0].logprobs  # it asked for the logprobs the options read
    step = label.steps[0]
    assert step.scores["attempt:length"] == 0.1  # 2 of 20 tokens
    assert step.scores["attempt:mean_logprob"] == pytest.approx(1 - math.exp(-0.5), abs=1e-6)
    assert 0.0 <= step.scores["attempt:deepconf"] <= 1.0
    assert step.features["attempt_mean_logprob"] == -0.5 and "attempt_lowest_confidence" in step.features


def test_labelling_several_problems_at_once_gives_the_labels_of_one_at_a_time(tmp_path: Path) -> None:
    one = label_all(lambda: labelling_program(config(tmp_path), "cascade", toy_systems()), examples(5),
                    tmp_path / "one.jsonl", ["attempt:length"], progress=False)
    systems = toy_systems()
    at_once = label_all(lambda: labelling_program(config(tmp_path), "cascade", systems), examples(5),
                        tmp_path / "four.jsonl", ["attempt:length"], progress=False, workers=4)
    strip = [{k: v for k, v in label.to_dict().items() if k != "wall_seconds"} for label in one]
    assert [{k: v for k, v in label.to_dict().items() if k != "wall_seconds"} for label in at_once] == strip
    assert sorted(json.loads(line)["id"] for line in (tmp_path / "four.jsonl").read_text().splitlines()) == \
        [f"p{k}" for k in range(1, 6)]
    assert len(systems.system1.engine.requests) == 5  # each problem asked once
    with pytest.raises(Exception, match="workers >= 1"):
        label_all(lambda: labelling_program(config(tmp_path), "cascade", systems), examples(1),
                  tmp_path / "none.jsonl", ["attempt:length"], progress=False, workers=0)


def test_a_failed_problem_among_several_at_once_keeps_the_ones_in_flight(tmp_path: Path) -> None:
    import threading

    started = threading.Barrier(2)

    def s1(messages: Messages) -> str:
        k = problem_number(messages)
        if k in (1, 2):
            started.wait(timeout=10)  # problems 1 and 2 are in flight together
        if k == 1:
            raise RuntimeError("problem 1 broke")
        return f"short \\boxed{{{k}}}"

    def program() -> Any:
        systems = Systems(stages=function_lm(stages, "stages"), system1=function_lm(s1, "system1", max_tokens=20),
                          system2=function_lm(lambda m: f"slow \\boxed{{{problem_number(m)}}}", "system2"))
        return labelling_program(config(tmp_path), "cascade", systems)

    path = tmp_path / "labels.jsonl"
    with pytest.raises(Exception, match="problem 1 broke"):  # as DSPy wraps it
        label_all(program, examples(2), path, ["attempt:length"], progress=False, workers=2)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["p2"]  # kept, not lost
