"""``scale compare``: samples and seeds, intervals, the frontier, resume, Pareto configs as entries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import dspy
import pytest
import yaml

from optimize.compare import load_compare, run_compare
from optimize.compare.entries import is_greedy
from optimize.compare.run import format_table
from optimize.compare.stats import frontier, mean_interval, wilson_interval
from optimize.compiling.saved import save_program
from optimize.experiment import ExperimentConfig, save_experiment
from program.baselines import CoT
from program.clients import transport
from program.config import ConfigError, ProgramConfig
from program.testing import function_lm


def examples(n: int = 4) -> list[dspy.Example]:
    return [dspy.Example(id=f"q{i}", problem=f"What is {i} + {i}?", answer=str(2 * i)).with_inputs("problem")
            for i in range(1, n + 1)]


def write_compare(tmp_path: Path, entries: list[dict[str, Any]], samples: int = 2) -> Path:
    path = tmp_path / "compare.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "tracking": {"output_dir": str(tmp_path / "runs")},
                                    "compare": {"samples": samples, "entries": entries}}))
    return path


class Counting:
    """Builds CoT programs on a scripted LM: right on even problems, counts every call and its sample."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, config: ProgramConfig) -> Any:
        def reply(messages: list[dict[str, str]]) -> str:
            i = int(messages[-1]["content"].split("What is ")[1].split(" ")[0])
            self.calls.append((f"q{i}", transport._SAMPLE.get()))
            return f"\\boxed{{{2 * i if i % 2 == 0 else 0}}}"

        return CoT(function_lm(reply, max_tokens=config.lm.system1.max_tokens))


def test_intervals_on_hand_made_counts() -> None:
    low, high = wilson_interval(15, 30)
    assert (round(low, 4), round(high, 4)) == (0.3315, 0.6685)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    mean, low, high = mean_interval([40.0, 50.0, 60.0])
    assert mean == 50.0 and (round(low, 2), round(high, 2)) == (25.16, 74.84)  # t(0.975, 2) = 4.303
    with pytest.raises(ValueError, match="at least two samples"):
        mean_interval([50.0])


def test_the_frontier_keeps_ties_and_drops_the_dominated() -> None:
    points = [(100, 50.0), (100, 50.0), (150, 50.0), (200, 70.0), (90, 40.0), (300, 65.0)]
    assert frontier(points) == [True, True, False, True, True, False]


def test_sample_k_shifts_seeds_and_cache_keys_and_sample_zero_changes_nothing() -> None:
    request = {"kind": "chat", "seed": 3}
    assert transport.sampled_seed(3) == 3 and transport._with_sample(request) == request
    with transport.sample(1):
        first = (transport.sampled_seed(3), transport._with_sample(request))
    with transport.sample(1):
        again = (transport.sampled_seed(3), transport._with_sample(request))
    with transport.sample(2):
        other = transport.sampled_seed(3)
    assert first == again == (3 + transport.SAMPLE_SEED_STRIDE, {"kind": "chat", "seed": 3, "sample": 1})
    assert other == 3 + 2 * transport.SAMPLE_SEED_STRIDE


def test_samples_run_per_entry_greedy_once_and_a_rerun_asks_nothing(tmp_path: Path) -> None:
    path = write_compare(tmp_path, [
        {"name": "cot-greedy", "method": "cot", "lm": {"system1": {"max_tokens": 64}}},
        {"name": "cot-sampled", "method": "cot", "lm": {"system1": {"max_tokens": 64, "temperature": 0.7}}}])
    config = load_compare(path)
    assert [is_greedy(e.program) for e in config.entries] == [True, False]
    programs = Counting()
    report = run_compare(config, examples(), output=tmp_path / "out", progress=False, program_factory=programs)
    greedy, sampled = report.entries
    assert (greedy.samples, sampled.samples) == (1, 2)
    assert greedy.server_seconds is None  # scripted LMs report no server timings
    problems = [f"q{i}" for i in range(1, 5)]
    assert sorted(programs.calls) == sorted([(q, 0) for q in problems] * 2 + [(q, 1) for q in problems])
    assert greedy.accuracy == 50.0 and (round(greedy.low, 1), round(greedy.high, 1)) == (15.0, 85.0)  # Wilson 2/4
    assert sampled.accuracies == [50.0, 50.0] and sampled.low == sampled.high == 50.0  # t interval, no spread
    assert report.plot_path.read_bytes()[:4] == b"\x89PNG" and report.json_path.exists()
    assert "cot-sampled" in format_table(report)
    programs.calls.clear()
    run_compare(config, examples(), output=tmp_path / "out", progress=False, program_factory=programs)
    assert programs.calls == []  # every problem of every sample was finished


def test_an_interrupted_comparison_finishes_only_what_is_missing(tmp_path: Path) -> None:
    path = write_compare(tmp_path, [{"name": "cot", "method": "cot"}], samples=1)
    config = load_compare(path)
    run_compare(config, examples(), output=tmp_path / "out", progress=False, program_factory=Counting())
    results = tmp_path / "out" / "cot" / "sample-0" / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:2]) + "\n")  # killed after two problems
    programs = Counting()
    report = run_compare(config, examples(), output=tmp_path / "out", progress=False, program_factory=programs)
    assert len(programs.calls) == 2 and report.entries[0].n == 4


def test_a_pareto_config_file_is_an_entry_and_overrides_apply_on_top(tmp_path: Path) -> None:
    trial = save_experiment(replace(ExperimentConfig(name="front-trial-3"), program=ProgramConfig(method="system1")),
                            tmp_path / "front" / "trial-3.yaml")
    path = write_compare(tmp_path, [{"name": "search-best", "config": "front/trial-3.yaml"},
                                    {"name": "search-best-tau", "config": str(trial), "scale": {"threshold": 0.3}}])
    first, second = load_compare(path).entries
    assert first.program.method == second.program.method == "system1" and first.origin.endswith("trial-3.yaml")
    assert second.program.scale.threshold == 0.3


def test_a_compiled_program_directory_is_an_entry_that_runs_with_its_tuned_state(tmp_path: Path) -> None:
    tuned = CoT(function_lm(lambda _: "\\boxed{0}"))
    tuned.solver.signature = tuned.solver.signature.with_instructions("TUNED: add the two numbers.")
    save_program(tuned, ExperimentConfig(name="compiled", program=ProgramConfig(method="cot")),
                 tmp_path / "compiled", scores={"dev": None})
    path = write_compare(tmp_path, [{"name": "cot", "method": "cot"}, {"name": "compiled", "program": "compiled"}],
                         samples=1)
    config = load_compare(path)
    plain, compiled = config.entries
    assert compiled.saved == tmp_path / "compiled" and compiled.program.method == "cot"
    seen: dict[str, list[bool]] = {"cot": [], "compiled": []}

    def factory(entry: str) -> Any:
        def reply(messages: list[dict[str, str]]) -> str:
            seen[entry].append("TUNED: add the two numbers." in messages[0]["content"])
            return "\\boxed{2}"
        return lambda program_config: CoT(function_lm(reply))

    for entry in (plain, compiled):
        run_compare(replace(config, entries=(entry,)), examples(2), output=tmp_path / "out", progress=False,
                    program_factory=factory(entry.name))
    assert seen == {"cot": [False, False], "compiled": [True, True]}  # the saved instruction reached the LM
    with pytest.raises(ConfigError, match="not both"):
        load_compare(write_compare(tmp_path, [{"name": "x", "config": "a.yaml", "program": "compiled"}]))


@pytest.mark.parametrize(("entries", "message"), [
    ([], "compare.entries must be a non-empty list"),
    ([{"method": "cot"}], r"compare.entries\[0\]: each entry needs a `name`"),
    ([{"name": "a", "method": "cot"}, {"name": "a", "method": "bf"}], "'a' appear more than once"),
    ([{"name": "a", "metod": "cot"}], r"unknown key\(s\) 'metod'"),
    ([{"name": "a b", "method": "cot"}], "must be letters, digits"),
    ([{"name": "a", "method": "magic"}], "magic"),
])
def test_bad_compare_files_name_what_is_wrong(tmp_path: Path, entries: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_compare(write_compare(tmp_path, entries))


def test_the_paired_difference_on_hand_made_before_and_after() -> None:
    from optimize.compare.stats import paired_difference

    before = [True] * 10 + [False] * 10
    after = [True] * 10 + [True] * 6 + [False] * 4  # 6 gained, none lost
    change = paired_difference(before, after)
    assert (change.before, change.after, change.difference, change.gained, change.lost) == (50.0, 80.0, 30.0, 6, 0)
    assert 10.0 <= change.low < 30.0 < change.high <= 50.0
    assert round(change.p_value, 4) == 0.0312  # McNemar exact: 6 of 6 discordant pairs, two-sided 2 / 2^6
    same = paired_difference(before, before)
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="same problems"):
        paired_difference([True], [True, False])


def test_a_comparison_is_one_mlflow_parent_run_with_a_child_per_entry(tmp_path: Path) -> None:
    from optimize.compare.tracking import log_compare
    from optimize.tracking import Tracker

    path = write_compare(tmp_path, [{"name": "cot", "method": "cot"}, {"name": "cot-512", "method": "cot",
                                                                      "lm": {"system1": {"max_tokens": 512}}}])
    config = load_compare(path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = replace(config, experiment=replace(config.experiment, tracking=replace(config.experiment.tracking,
                                                                                     mlflow_uri=uri)))
    report = run_compare(config, examples(2), output=tmp_path / "out", progress=False, program_factory=Counting())
    parent = log_compare(config, report, benchmark="toy")
    tracker = Tracker.create(uri, config.experiment.tracking.mlflow_experiment)
    children = tracker.children(parent)
    assert sorted(run.data.tags["mlflow.runName"] for run in children) == ["cot", "cot-512"]
    assert {run.data.metrics["accuracy"] for run in children} == {50.0}
    artifacts = [a.path for a in tracker.client.list_artifacts(parent)]
    assert "compare.json" in artifacts and "compare.png" in artifacts


def test_vote_entries_report_the_samples_adaptive_stopping_saved(tmp_path: Path) -> None:
    from program.methods import build_program
    from program.testing import scripted_systems

    path = write_compare(tmp_path, [{"name": "vote-fixed", "method": "vote", "vote": {"samples": 5, "adaptive": False}},
                                    {"name": "vote-adaptive", "method": "vote", "vote": {"samples": 5}},
                                    {"name": "cot", "method": "cot"}], samples=1)
    systems = scripted_systems(lambda m: "0.5", lambda m: "so \\boxed{4}")  # every sample agrees
    report = run_compare(load_compare(path), examples(2), output=tmp_path / "out", progress=False,
                         program_factory=lambda config: build_program(config, systems))
    fixed, adaptive, cot = report.entries
    assert (fixed.samples_per_vote, fixed.samples_saved, fixed.votes_per_problem) == (5.0, 0.0, 1.0)
    assert (adaptive.samples_per_vote, adaptive.samples_saved) == (3.0, 0.4)  # 3 agreeing of 5: settled at 3
    assert cot.samples_per_vote is None
    assert cot.ahead_of_reference is None and fixed.accuracy == cot.accuracy == 50.0  # both right on q2 only
    assert fixed.ahead_of_reference == 0.0 and fixed.reference_tokens_to_match == cot.completion_tokens
    table = format_table(report)
    assert "vote-adaptive           3.00 (40 % saved)" in table
    assert f"vote-fixed              +0.0 points; {cot.completion_tokens:.0f} tokens" in table
