"""Golden traces: SCALE, the cascade and every baseline give the same answers, traces, ledgers and prompts as recorded.

A refactor that means to change no behaviour must leave ``golden/traces.json`` untouched. A change
that alters traces on purpose regenerates it with one command and says why in its commit:

    SCALE_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_golden_traces.py

The scripted replies depend on the prompt (a hash picks each step's difficulty, so routing varies
and both systems answer), so a changed prompt shows up as a changed request or a changed route.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from program import Systems
from program.config import ProgramConfig, ScaleConfig, VoteConfig
from program.ledger import Ledger, recording
from program.methods import build_program
from program.testing import function_lm

GOLDEN = Path(__file__).parent / "golden" / "traces.json"
PROBLEMS = ["Tom has 3 apples and buys 5 more, then eats 2. How many apples are left?",
            "A train goes 60 km in 1.5 hours. What is its speed in km per hour?"]

# name -> (config, build options)
CASES: dict[str, tuple[ProgramConfig, dict[str, Any]]] = {
    "scale": (ProgramConfig(), {}),
    "scale-k2-rewrite": (ProgramConfig(scale=ScaleConfig(num_candidates=2, rewrite=True)), {}),
    "scale-solved-context-final-value": (
        ProgramConfig(scale=ScaleConfig(difficulty_mode="solved_context", context="final_value")), {}),
    "scale-attempt": (ProgramConfig(scale=ScaleConfig(difficulty_source="attempt", threshold=0.3)), {}),
    "scale-attempt-agreement": (ProgramConfig(scale=ScaleConfig(difficulty_source="attempt",
                                                                attempt_confidence="agreement")), {}),
    "scale-vote-system2": (ProgramConfig(scale=ScaleConfig(system2_kind="vote"), vote=VoteConfig(samples=3)), {}),
    "cascade": (ProgramConfig(method="cascade", scale=ScaleConfig(difficulty_source="attempt", threshold=0.2)), {}),
    "cot": (ProgramConfig(method="cot"), {}),
    "vote": (ProgramConfig(method="vote", vote=VoteConfig(samples=3)), {}),
    "vote-fixed": (ProgramConfig(method="vote", vote=VoteConfig(samples=3, adaptive=False)), {}),
    "inftythink": (ProgramConfig(method="inftythink"), {}),
    "system1": (ProgramConfig(method="system1"), {}),
    "system2": (ProgramConfig(method="system2"), {}),
    "bf": (ProgramConfig(method="bf"), {}),
}


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def stages(messages: list[dict[str, str]]) -> str:
    """Decompositions, rewrites, selections and ratings, chosen by what the prompt asks for."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if "Break the math problem" in system:
        return "1. Find how many there are after buying.\n2. Find how many are left after eating."
    if "Rewrite" in system:
        return "Conditions: Tom has 3 apples and buys 5 more, then eats 2.\nQuestion: How many apples are left?"
    if "candidate" in system.lower():
        return "Of the 2 candidates, 1 is best."
    if "after buying." in user:  # the first step: easy on the apples, hard on the train
        return "0.3" if "apples" in user else "0.7"
    return str(round((_digest(user) % 10) / 10, 1))


def solver(messages: list[dict[str, str]]) -> str:
    """A solution whose value and length depend on the prompt, so votes disagree and attempts escalate."""
    system, user = messages[0]["content"], messages[-1]["content"]
    if "Summarise the progress" in system:
        return "- the count is 8"
    if "continuing from the summary" in system and "count is" not in user:
        return "We add 3 and 5 first.\nSummary:\n- the count is 8"
    value = 6 + _digest(user) % 2
    filler = " and so on" * (40 * (_digest(user) % 3))  # 0, 120 or 240 words: some attempts look hard
    return f"3 + 5 - 2 = {value}{filler}, so \\boxed{{{value}}}."


def run_case(name: str, max_concurrency: int = 1) -> dict[str, Any]:
    """One case's answers, traces, ledgers and requests; ``max_concurrency`` > 1 runs each problem's
    independent calls at once (tests/unit/test_concurrency.py compares that run with this file)."""
    config, options = CASES[name]
    n = max_concurrency
    systems = Systems(stages=function_lm(stages, "stages", max_concurrency=n),
                      system1=function_lm(solver, "system1", max_concurrency=n, max_tokens=256),
                      system2=function_lm(solver, "system2", max_concurrency=n, max_tokens=1024))
    if config.method == "bf":
        options = {**options, "lm": function_lm(solver, "bf", max_concurrency=n)}
    program = build_program(config, systems, **options)
    out: list[dict[str, Any]] = []
    for problem in PROBLEMS:
        ledger = Ledger()
        with recording(ledger):
            prediction = program(problem=problem)
        out.append({"answer": prediction.answer, "solution": prediction.solution,
                    "trace": json.loads(json.dumps(prediction.trace, default=str)),
                    "ledger": {stage: dataclasses.asdict(usage) if dataclasses.is_dataclass(usage) else usage
                               for stage, usage in ledger.by_stage().items()}})
    engines = {role: getattr(systems, role).engine for role in ("stages", "system1", "system2")}
    if "lm" in options:
        engines["bf"] = options["lm"].engine
    requests = {role: [[_scrub(m["content"]) for m in request] for request in engine.requests]
                for role, engine in engines.items()}
    return {"problems": out, "requests": requests}


def _scrub(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x", text)  # object addresses, should any reach a prompt


def _all_cases() -> dict[str, Any]:
    return {name: run_case(name) for name in CASES}


def test_traces_match_the_golden_file() -> None:
    actual = _all_cases()
    if os.environ.get("SCALE_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    assert GOLDEN.exists(), f"{GOLDEN} is missing: regenerate it (see this module's docstring)"
    expected = json.loads(GOLDEN.read_text())
    assert sorted(actual) == sorted(expected)
    for name in CASES:
        assert json.loads(json.dumps(actual[name], sort_keys=True)) == expected[name], (
            f"{name}: the trace changed; if on purpose, regenerate (see the docstring) and say why in the commit")


@pytest.mark.parametrize("name", ["scale", "scale-attempt", "cascade"])
def test_the_scripted_cases_route_to_both_systems(name: str) -> None:
    # The golden file is worth something only if the scripted replies drive real decisions.
    case = run_case(name)
    modes = {step["mode"] for p in case["problems"] for step in p["trace"]["steps"]}
    assert modes == {"system1", "system2"}, modes
