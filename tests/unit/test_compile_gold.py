"""Issue 27: gold demos from the train pool, a metric that sees the cap, and a compile that never hides a loss."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dspy
import pytest

from data.errors import DataError
from data.gold import gold_reply
from optimize.cli import main
from optimize.compiling.compile import compile_experiment, dev_and_heldout
from optimize.compiling.gold import bound_demos, gold_pool, recorded_ids, stage_demos
from optimize.compiling.metric import CompileMetric, attempt_of
from optimize.compiling.saved import load_program
from optimize.experiment import ExperimentConfig, experiment_from_dict, save_experiment
from program.adapter import PlainAdapter
from program.errors import SavedProgramError
from program.ledger import Call, Ledger
from program.methods import build_program
from program.signatures import SolveProblem, SolveStep
from program.testing import count_tokens, scripted_systems
from test_compile_stages import write_labels

SOLUTION = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
OFFLINE = ["--api-base", "http://127.0.0.1:9/v1"]  # a named server: the embedded one is not started


def pool(tmp_path: Path, n: int = 40) -> Path:
    """A train pool of apple problems, each with a GSM8K-style worked solution (calculator marks, ####)."""
    directory = tmp_path / "data"
    directory.mkdir(exist_ok=True)
    rows = []
    for i in range(n):
        a, b = i + 2, i + 3
        rows.append({"id": f"a{i}", "problem": f"Tom has {a} apples and buys {b} more. How many apples?",
                     "answer": str(a + b), "solution": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} apples.\n"
                                                       f"#### {a + b}"})
    (directory / "gsm8k_train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return directory


def config(tmp_path: Path, method: str = "cot", **compile_options: object) -> ExperimentConfig:
    return experiment_from_dict({
        "name": "g", "method": method, "lm": {"preset": "qwen3"}, "scale": {"threshold": 0.5},
        "data": {"dev": "gsm8k_train:5", "val": 4, "data_dir": str(pool(tmp_path))},
        "compile": {"optimizer": "labeled", "gold_demos": 6, "max_labeled_demos": 2, "max_bootstrapped_demos": 0,
                    "recorded": str(tmp_path / "results"), **compile_options},
        "tracking": {"output_dir": str(tmp_path / "runs")}})


def solver(messages: list[dict[str, str]], *, worse_with_demos: bool = False) -> str:
    """Adds the two numbers of the problem; with ``worse_with_demos``, off by one once demos are in the prompt."""
    a, b = map(int, re.findall(r"\d+", messages[-1]["content"].split("Problem:", 1)[-1])[:2])
    return f"{a} + {b} = {a + b}, so \\boxed{{{a + b + (worse_with_demos and len(messages) > 2)}}}."


def test_a_gold_solution_becomes_a_demo_in_the_reply_format() -> None:
    reply = gold_reply(SOLUTION, "72")
    assert reply == ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n"
                     "The answer is \\boxed{72}.")
    with pytest.raises(DataError, match="no '#### answer' line"):
        gold_reply("just prose", "1")
    [pool_demo] = gold_pool_of([("g1", "How many clips?", "72", SOLUTION)])
    for signature, inputs in ((SolveStep, ["problem", "earlier_steps", "current_step"]), (SolveProblem, ["problem"])):
        [demo] = stage_demos([pool_demo], signature)
        assert sorted(demo.inputs().keys()) == sorted(inputs) and demo.solution == reply
        user, assistant = PlainAdapter().format_demos(signature, [demo])
        assert "How many clips?" in user["content"] and assistant["content"] == reply
        assert "<<" not in assistant["content"] and "####" not in assistant["content"]
    [cascade_demo] = stage_demos([pool_demo], SolveStep)
    assert cascade_demo.current_step == "Solve the whole problem and give its final answer."


def gold_pool_of(rows: list[tuple[str, str, str, str]]) -> list:
    from optimize.compiling.gold import GoldDemo

    return [GoldDemo(i, problem, answer, gold_reply(solution, answer), 0) for i, problem, answer, solution in rows]


def test_the_demo_pool_never_holds_a_dev_heldout_or_recorded_id(tmp_path: Path) -> None:
    c = config(tmp_path)
    dev, heldout = dev_and_heldout(c.data)
    results = tmp_path / "results"
    (results / "calibration").mkdir(parents=True)
    calibration = write_labels(results / "calibration" / "labels.jsonl")
    calibration.write_text(calibration.read_text().replace('"p1"', '"a30"').replace('"p2"', '"a31"'))
    saved = results / "compile" / "metadata.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps({"data": {"dev": {"ids": ["a32", "a33"]}, "heldout": {"ids": ["a34"]}}}))
    recorded = recorded_ids(results)
    assert recorded == {"a30", "a31", "a32", "a33", "a34"}
    exclude = {str(e.id) for e in (*dev, *heldout)} | recorded
    everything_left = 40 - len(exclude)
    demos = gold_pool("gsm8k_train", everything_left, seed=0, exclude=exclude, count=count_tokens,
                      data_dir=c.data.data_dir)
    assert len({d.id for d in demos}) == everything_left and not {d.id for d in demos} & exclude
    with pytest.raises(DataError, match=f"only {everything_left} problems with a gold solution are left"):
        gold_pool("gsm8k_train", everything_left + 1, seed=0, exclude=exclude, count=count_tokens,
                  data_dir=c.data.data_dir)
    shortest = gold_pool("gsm8k_train", everything_left, seed=0, exclude=exclude, count=len, shortest=3,
                         data_dir=c.data.data_dir)
    lengths = sorted(len(d.reply) for d in demos)
    assert [d.tokens for d in shortest] == lengths[:3]  # count=len: the three shortest replies, shortest first


def test_the_cap_penalty_on_a_hand_made_trace() -> None:
    gold = dspy.Example(problem="p", answer="72").with_inputs("problem")
    caps = {"system1": 256, "cot": 256}

    def prediction(answer: str, completion: int, stage: str = "system1") -> dspy.Prediction:
        p = dspy.Prediction(answer=answer)
        p._scale_ledger = Ledger([Call(stage, "m", prompt_tokens=100, completion_tokens=completion)])
        return p

    metric = CompileMetric(cap_penalty=0.5, caps=caps)
    assert metric(gold, prediction("72", 120)) == 1.0  # right, inside the cap: nothing charged
    assert metric(gold, prediction("", 256)) == -0.5  # cut off without an answer
    assert metric(gold, prediction("", 90)) == -0.5  # finished, but no boxed answer
    assert metric(gold, prediction("72", 256)) == 0.5  # right, but it ran into the cap
    assert metric(gold, prediction("", 256, "system2")) == -0.5  # unboxed; System 2 has no System 1 cap
    within = CompileMetric(caps=caps, within_cap=True)  # the stage-level System 1 metric
    assert within(gold, prediction("72", 256)) == 0.0 and within(gold, prediction("72", 255)) == 1.0
    assert within(gold, prediction("72", 256), trace=[]) is False  # never bootstrapped as a demo
    # Without a ledger, the attempt source's signals in the trace say it.
    traced = dspy.Prediction(answer="", trace={"steps": [{"difficulty": {"signals": {
        "attempt_capped": 1.0, "attempt_length": 256.0, "attempt_no_answer": 1.0}}}]})
    assert attempt_of(traced, caps).cut_off_at == 256 and metric(gold, traced) == -0.5


def test_gepa_feedback_names_the_cap() -> None:
    gold = dspy.Example(problem="p", answer="72", solution="48 + 24 = 72\nThe answer is \\boxed{72}.")
    cut = dspy.Prediction(answer="")
    cut._scale_ledger = Ledger([Call("system1", "m", prompt_tokens=100, completion_tokens=256)])
    text = CompileMetric(cap_penalty=0.5, caps={"system1": 256}).feedback(gold, cut).feedback
    assert "cut off at 256 tokens without an answer (its cap is 256) (costing 0.500 of the score)" in text
    assert "A worked solution that finishes: 48 + 24 = 72" in text
    unboxed = dspy.Prediction(answer="")
    unboxed._scale_ledger = Ledger([Call("system1", "m", prompt_tokens=100, completion_tokens=40)])
    assert "ended without a \\boxed{} answer" in CompileMetric(caps={"system1": 256}).feedback(gold, unboxed).feedback


def test_a_cascade_system1_compile_with_short_gold_demos(tmp_path: Path) -> None:
    labels = write_labels(tmp_path / "labels.jsonl")
    c = config(tmp_path, method="cascade", stage="system1", labels=str(labels), shortest=2, max_demo_tokens=200)
    systems = scripted_systems(lambda m: "0.3", solver)
    result = compile_experiment(c, systems=systems, builder=lambda cfg, _s: build_program(cfg, systems),
                                track=False, progress=False, count=count_tokens)
    demos = result.program.system1.demos
    assert len(demos) == 2 and all(d.solution.endswith(f"\\boxed{{{d.answer}}}.") for d in demos)
    assert not result.program.difficulty.demos and not result.program.system2.demos
    dev, heldout = dev_and_heldout(c.data)
    pool_record = result.optimizer["gold_pool"]
    assert not set(pool_record["ids"]) & {str(e.id) for e in (*dev, *heldout)}
    assert pool_record["kept"] == 2 and result.optimizer["demo_tokens"]["system1"]["demos"] == 2
    assert result.optimizer["demo_tokens"]["system1"]["tokens"] <= 200
    tighter = result.program.deepcopy()
    assert bound_demos(tighter, 60, count_tokens) == {"system1": 1} and len(tighter.system1.demos) == 1
    asked = [r for r in systems.system1.engine.requests if len(r) == 6]  # system, two demo pairs, the problem
    assert asked and "Current step:\nSolve the whole problem" in asked[0][1]["content"]
    assert "\\boxed{" in asked[0][2]["content"] and "<<" not in asked[0][2]["content"]
    # What the demos cost shows in the prompt tokens the server reported, before vs after.
    assert result.scores["heldout"]["mean_prompt_tokens"] > result.scores["heldout_before"]["mean_prompt_tokens"]


def test_keep_if_better_saves_nothing_after_a_negative_heldout_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    systems = scripted_systems(str, lambda m: solver(m, worse_with_demos=True))
    monkeypatch.setattr("program.clients.lm.build_systems", lambda lm: systems)
    monkeypatch.setattr("optimize.compiling.compile.default_counter", lambda config: count_tokens)
    config_file = save_experiment(config(tmp_path), tmp_path / "experiment.yaml")
    out = tmp_path / "compiled"
    argv = ["compile", "--config", str(config_file), "--output", str(out), "--no-mlflow", "--no-progress", *OFFLINE]
    assert main(argv) == 0  # without the flag: saved, marked, and said first
    printed = capsys.readouterr().out
    assert printed.startswith("WARNING: the compiled program is WORSE than the untuned program: held-out accuracy "
                              "-100.0 points on 4 problems")
    assert json.loads((out / "metadata.json").read_text())["verdict"]["worse"] is True
    assert load_program(out, systems=systems, builder=lambda cfg, _s: build_program(cfg, systems)).program

    kept = tmp_path / "kept"
    assert main([*argv[:4], str(kept), *argv[5:], "--keep-if-better"]) == 0
    printed = capsys.readouterr().out
    assert "Nothing saved (--keep-if-better)" in printed.splitlines()[1] and "Program:" not in printed
    assert sorted(p.name for p in kept.iterdir()) == ["eval", "rejected.json"]  # the evidence, no program
    assert json.loads((kept / "rejected.json").read_text())["difference"] == -100.0
    with pytest.raises(SavedProgramError, match="--keep-if-better` saved no program here"):
        load_program(kept)
