"""The exact tau curve equals brute-force evaluation at every breakpoint (cascade, SCALE up front, attempt tree).

The scripted replies are the golden-trace ones (``test_golden_traces``): difficulty ratings and
solution lengths depend on the prompt, so scores differ by step and problem, and System 1 is
sometimes wrong; System 2 is always right and longer. Brute force builds a fresh program at each
tau and solves every problem.
"""

from __future__ import annotations

from dataclasses import replace

import dspy
import pytest

from optimize.evaluation.evaluate import solve_one
from optimize.search.curve import exact_curve, routing_tree
from program import Systems
from program.config import ProgramConfig, ScaleConfig
from program.methods import build_program
from program.testing import function_lm
from tests.unit.test_golden_traces import solver, stages

PROBLEMS = ["Tom has 3 apples and buys 5 more, then eats 2. How many apples are left?",
            "A train goes 60 km in 1.5 hours. What is its speed in km per hour?",
            "Ann reads 4 pages a day for 3 days. How many pages?",
            "A box holds 6 eggs; 2 break. How many eggs are whole?"]
EXAMPLES = [dspy.Example(id=f"p{i}", problem=p, answer="6").with_inputs("problem") for i, p in enumerate(PROBLEMS)]

CASES = {
    "cascade": ProgramConfig(method="cascade", scale=ScaleConfig(difficulty_source="attempt")),
    "scale-upfront": ProgramConfig(scale=ScaleConfig(difficulty_source="rating")),
    "scale-attempt": ProgramConfig(scale=ScaleConfig(difficulty_source="attempt", last_step_score=None)),
    "scale-solved-context": ProgramConfig(scale=ScaleConfig(difficulty_mode="solved_context")),
}


def thinker(messages: list[dict[str, str]]) -> str:
    """System 2: always right, and longer than System 1, so each routing has its own outcome and cost."""
    return "Let me think it through carefully. " * 20 + solver(messages).replace("= 7", "= 6").replace("{7}", "{6}")


def _systems() -> Systems:
    return Systems(stages=function_lm(stages, "stages"), system1=function_lm(solver, "system1", max_tokens=256),
                   system2=function_lm(thinker, "system2", max_tokens=1024))


def _at(config: ProgramConfig, tau: float) -> ProgramConfig:
    return replace(config, scale=replace(config.scale, threshold=tau))


def _brute_force(config: ProgramConfig, tau: float) -> tuple[float, float]:
    program = build_program(_at(config, tau), _systems())  # fresh LMs: nothing shared with the curve's runs
    results = [solve_one(program, example) for example in EXAMPLES]
    return (100.0 * sum(r.correct for r in results) / len(results),
            sum(r.totals["total_tokens"] for r in results) / len(results))


@pytest.mark.parametrize("name", sorted(CASES))
def test_exact_curve_equals_brute_force_at_every_breakpoint(name: str) -> None:
    config, systems = CASES[name], _systems()
    trees = []
    for example in EXAMPLES:
        tree = routing_tree(lambda tau, ex=example: solve_one(build_program(_at(config, tau), systems), ex), 0.0, 1.0)
        assert tree is not None
        trees.append(tree)
    curve = exact_curve(trees)
    assert len(curve) >= 2, "the scripted scores must split the tau interval somewhere"
    if name == "cascade":
        assert all(len(tree) <= 2 for tree in trees)  # one System 1 and one System 2 pass per problem
    for point in curve:
        for tau in (point.low, (point.low + point.high) / 2):  # the breakpoint itself and inside its interval
            accuracy, tokens = _brute_force(config, tau)
            assert (point.accuracy, point.mean_tokens) == pytest.approx((accuracy, tokens)), (name, tau)
    assert len({(p.accuracy, p.mean_tokens) for p in curve}) >= 2, "a flat curve would test nothing"


def test_the_tree_gives_up_past_its_cap() -> None:
    config, systems = CASES["scale-attempt"], _systems()
    example = EXAMPLES[1]
    full = routing_tree(lambda tau: solve_one(build_program(_at(config, tau), systems), example), 0.0, 1.0)
    assert full is not None and len(full) >= 2
    assert routing_tree(lambda tau: solve_one(build_program(_at(config, tau), systems), example), 0.0, 1.0,
                        cap=len(full) - 1) is None
