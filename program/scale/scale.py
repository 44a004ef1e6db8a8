"""SCALE (arXiv 2512.00466) as a DSPy module: decompose, rate each step, route, solve in order.

``Scale.plan(problem)`` does everything that does not depend on tau or the solvers' budgets:
rewrite, decomposition, selection and (in ``upfront`` mode) difficulty. ``Scale.solve(problem,
plan)`` routes each step (System 2 iff score > tau), solves the steps in order and returns the
last step's answer. With rewritten conditions and ``step_layout="conditions"`` (the reference
code's layout) a step sees the conditions, the earlier steps and its own sub-problem, never the
original question; otherwise it sees the whole problem. The trace says which layout ran.
``forward(problem)`` is both. A ``plan_cache`` lets a hyperparameter search reuse plans across
trials; a reused plan's LM calls are re-booked into the active ledger flagged
``cached``, so a configuration's cost is the same whether its plan was reused or not.

Predictors are attributes (``decompose``, ``select``, ``rewrite``, ``difficulty``, ``system1``,
``system2``) so DSPy optimizers find them by name. LMs are bound per call, never stored on them.

Example:
    >>> from program.testing import scripted_systems
    >>> scale = Scale(ScaleConfig(threshold=0.2), scripted_systems(lambda m: "0.5", lambda m: "\\\\boxed{1}"))
    >>> sorted(name for name, _ in scale.named_predictors())
    ['decompose', 'difficulty', 'rewrite', 'select', 'system1', 'system2']
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Protocol, Self

import dspy

from program import ledger
from program.calls import Failure, Shared, Solution, solve
from program.clients import limits
from program.clients.lm import Systems, build_systems
from program.concurrent import run_all
from program.config import ConfigError, ProgramConfig, ScaleConfig, VoteConfig
from program.ledger import captured, usage_summary
from program.scale.decompose import Decomposition, decompose_problem
from program.scale.difficulty import Difficulty
from program.scale.routing import route, score_decides
from program.scale.sources import Assessment, DifficultySource, StepView, build_source
from program.scale.steps import StepResult, render_steps, solve_in_order
from program.signatures import AssessDifficulty, Decompose, Rewrite, SelectDecomposition, SolveStep
from program.voting import VoteOutcome, sample_settings, vote

__all__ = ["Plan", "PlanCache", "MemoryPlanCache", "Scale", "shown_problem"]


@dataclass(frozen=True)
class Plan:
    """Everything decided before solving: the steps, their up-front scores, and what they cost.

    ``difficulties`` is None when steps are scored during solving (``solved_context``) or not at
    all (uniform methods). ``calls`` are the ledger records of the planning calls; ``settings``
    the knobs the plan depends on (a cached plan made under other settings is not reused).
    """

    problem: str
    decomposition: Decomposition
    difficulties: list[Difficulty] | None
    failures: list[Failure] = field(default_factory=list)
    calls: list[ledger.Call] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def steps(self) -> list[str]:
        return self.decomposition.steps

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready) for a cache on disk."""
        return {"problem": self.problem, "decomposition": self.decomposition.to_dict(),
                "difficulties": None if self.difficulties is None else [d.to_dict() for d in self.difficulties],
                "failures": [f.to_dict() for f in self.failures],
                "calls": ledger.Ledger(calls=list(self.calls)).to_records(), "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        difficulties = data.get("difficulties")
        return cls(problem=data["problem"], decomposition=Decomposition.from_dict(data["decomposition"]),
                   difficulties=None if difficulties is None else [Difficulty.from_dict(d) for d in difficulties],
                   failures=[Failure(**f) for f in data.get("failures", [])],
                   calls=ledger.Ledger.from_records(data.get("calls", [])).calls, settings=data.get("settings", {}))


class PlanCache(Protocol):
    """Where plans are kept between trials, keyed by problem text."""

    def get(self, problem: str) -> Plan | None: ...

    def put(self, problem: str, plan: Plan) -> None: ...


class MemoryPlanCache:
    """A thread-safe in-memory ``PlanCache``.

    Example:
        >>> cache = MemoryPlanCache()
        >>> cache.get("2 + 2?") is None
        True
    """

    def __init__(self) -> None:
        self._plans: dict[str, Plan] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:  # MLflow pickles the program: a lock cannot travel
        return {"_plans": dict(self._plans)}

    def __setstate__(self, state: dict[str, object]) -> None:
        self._plans = dict(state["_plans"])  # type: ignore[call-overload]
        self._lock = threading.Lock()

    def get(self, problem: str) -> Plan | None:
        with self._lock:
            return self._plans.get(problem)

    def put(self, problem: str, plan: Plan) -> None:
        with self._lock:
            self._plans[problem] = plan

    def __len__(self) -> int:
        return len(self._plans)


def shown_problem(config: ScaleConfig, problem: str, decomposition: Decomposition) -> tuple[str, str]:
    """(layout, text) every step of ``decomposition`` is shown as the problem: its conditions under
    ``step_layout: conditions`` when the rewrite produced them, else the problem itself.

    Example:
        >>> shown_problem(ScaleConfig(), "P", Decomposition(steps=["s"]))
        ('problem', 'P')
    """
    if config.step_layout == "conditions" and decomposition.conditions:
        return "conditions", decomposition.conditions
    return "problem", problem


class Scale(dspy.Module):
    """The SCALE program. Knobs come from a frozen ``ScaleConfig``; a search rebuilds it per trial.

    Step scores come from ``config.difficulty_source`` (``program.scale.sources``); a source that solves
    the step to judge it (``attempt``) scores steps while solving, whatever ``difficulty_mode`` says,
    and its System 1 attempt is the step's solution unless the step is escalated to System 2.

    Args:
        config: the SCALE knobs (for a whole ``ProgramConfig``: ``Scale.from_config``).
        systems: the stages / System 1 / System 2 LMs (``program.clients.lm.build_systems``).
        plan_cache: optional ``PlanCache`` shared by every copy of the program.
        decompose_retries: extra attempts per unreadable decomposition candidate.
        difficulty_max_tokens: cap on a difficulty reply (reference: 64); None = the stages' cap.
        assess_difficulty: False skips scoring (uniform methods; needs tau >= 1 or tau < 0).
        vote: the samples of System 2 when ``config.system2_kind`` is ``vote`` (default ``VoteConfig()``).
    """

    def __init__(self, config: ScaleConfig, systems: Systems, *,
                 plan_cache: PlanCache | None = None, decompose_retries: int = 1,
                 difficulty_max_tokens: int | None = 64, assess_difficulty: bool = True,
                 vote: VoteConfig | None = None) -> None:
        super().__init__()
        if not isinstance(config, ScaleConfig):
            raise ConfigError(f"{type(self).__name__}(config, systems) takes a ScaleConfig, got "
                              f"{type(config).__name__}; for a ProgramConfig use "
                              f"{type(self).__name__}.from_config(config).")
        if not isinstance(systems, Systems):
            raise ConfigError(f"{type(self).__name__}(config, systems) needs the LMs as a Systems, got "
                              f"{type(systems).__name__} (see program.clients.lm.build_systems); or use "
                              f"{type(self).__name__}.from_config(program_config) to build them from its LM config.")
        if not assess_difficulty and score_decides(config.threshold):
            raise ConfigError(f"`assess_difficulty=False` needs a threshold that decides alone (>= 1 or < 0), "
                              f"got `threshold={config.threshold!r}`.")
        if decompose_retries < 0:
            raise ConfigError(f"`decompose_retries={decompose_retries!r}` must be non-negative.")
        self.config = config
        self.decompose_retries = decompose_retries
        self.difficulty_max_tokens = difficulty_max_tokens
        self.assess_difficulty = assess_difficulty
        self.vote_config = vote or VoteConfig()
        self.method = "scale"
        self._systems = Shared(systems)
        self._plan_cache = Shared(plan_cache)
        self._source: Shared[DifficultySource] = Shared(build_source(config))
        self.decompose = dspy.Predict(Decompose)
        self.select = dspy.Predict(SelectDecomposition)
        self.rewrite = dspy.Predict(Rewrite)
        self.difficulty = dspy.Predict(AssessDifficulty)
        self.system1 = dspy.Predict(SolveStep)
        self.system2 = dspy.Predict(SolveStep)

    @classmethod
    def from_config(cls, config: ProgramConfig, systems: Systems | None = None, **options: Any) -> Self:
        """The program of ``config``'s SCALE knobs and vote, on ``systems`` (default: built from ``config.lm``).

        Example:
            >>> from program.testing import scripted_systems
            >>> Scale.from_config(ProgramConfig(), scripted_systems(str, str)).config.threshold
            0.5
        """
        return cls(config.scale, systems or build_systems(config.lm), vote=config.vote, **options)

    @property
    def systems(self) -> Systems:
        return self._systems.value

    @property
    def plan_cache(self) -> PlanCache | None:
        """Where plans are reused from (shared by every copy of the program); set it after building."""
        return self._plan_cache.value

    @plan_cache.setter
    def plan_cache(self, cache: PlanCache | None) -> None:
        self._plan_cache.value = cache

    @property
    def source(self) -> DifficultySource:
        """Where step scores come from (``program.scale.sources``)."""
        return self._source.value

    def idle_predictors(self) -> list[str]:
        """Predictors this configuration never calls, so an optimizer should not spend on them.

        Example:
            >>> from program.testing import scripted_systems
            >>> Scale(ScaleConfig(), scripted_systems(str, str)).idle_predictors()
            ['select', 'rewrite']
        """
        c = self.config
        idle = []
        if c.num_candidates <= 1:
            idle.append("select")
        if not c.rewrite:
            idle.append("rewrite")
        if not self.assess_difficulty or not self.source.asks_rating:
            idle.append("difficulty")
        solves_first = self.assess_difficulty and self.source.needs_solved_context  # System 1 attempts every step
        if c.threshold < 0 and not solves_first:
            idle.append("system1")
        if c.threshold >= 1:
            idle.append("system2")
        return idle

    def scores_up_front(self) -> bool:
        """Whether the plan carries every step's score (else steps are scored while solving, or not at all)."""
        return (self.assess_difficulty and self.config.difficulty_mode == "upfront"
                and not self.source.needs_solved_context)

    def forward(self, problem: str) -> dspy.Prediction:
        """Plan, then solve. Returns ``Prediction(answer, solution, trace)``."""
        return self.solve(problem, self.plan(problem))

    def plan_settings(self) -> dict[str, Any]:
        """The knobs a plan depends on (not tau, not the solvers' budgets, not what System 2 is): the
        one list of them, which a cached plan must match and a search's plan key hashes
        (``optimize.search.plans.plan_key``)."""
        c = self.config
        return {"num_candidates": c.num_candidates, "rewrite": c.rewrite, "max_steps": c.max_steps,
                **({"candidate_temperature": c.candidate_temperature} if c.num_candidates > 1 else {}),
                "range_min_steps": c.range_min_steps, "range_max_steps": c.range_max_steps,
                "difficulty_mode": c.difficulty_mode, "difficulty_retries": c.difficulty_retries,
                "fallback_difficulty": c.fallback_difficulty, "last_step_score": c.last_step_score,
                "assess_difficulty": self.assess_difficulty, "decompose_retries": self.decompose_retries,
                "difficulty_max_tokens": self.difficulty_max_tokens,
                **({"difficulty_source": c.difficulty_source, "learned_path": c.learned_path}
                   if self.scores_up_front() and c.difficulty_source != "rating" else {})}

    def plan(self, problem: str) -> Plan:
        """Rewrite + decompose + select + up-front difficulty, or the cached plan (its calls re-booked as cached)."""
        cache = self.plan_cache
        settings = self.plan_settings()
        if cache is not None:
            hit = cache.get(problem)
            if hit is not None and hit.settings == settings:
                active = ledger.current_ledger()
                if active is not None:  # the plan's true cost, flagged as not paid again
                    for made in hit.calls:
                        active.add(replace(made, cached=True))
                return replace(hit, cached=True)
        with captured() as calls:
            decomposition = self.decomposition_of(problem)
            failures = list(decomposition.failures)
            difficulties = None
            if self.scores_up_front():
                steps = decomposition.steps
                views = [StepView(problem, render_steps(steps[:i]), step, is_last=i == len(steps) - 1, index=i)
                         for i, step in enumerate(steps)]
                # Up-front ratings are independent of each other: at once, up to the server's limit.
                verdicts = run_all([partial(self.assess, view) for view in views],
                                   limits.width(self.systems.stages))
                difficulties = [verdict.difficulty for verdict in verdicts]
                failures += [failure for verdict in verdicts for failure in verdict.failures]
        plan = Plan(problem, decomposition, difficulties, failures, list(calls.calls), settings)
        if cache is not None:
            cache.put(problem, plan)
        return plan

    def decomposition_of(self, problem: str) -> Decomposition:
        """The steps: rewrite, decompose and select (the cascade's is the whole problem, with no call)."""
        return decompose_problem(problem, decompose=self.decompose, select=self.select, rewrite=self.rewrite,
                                 lm=self.systems.stages, config=self.config, retries=self.decompose_retries)

    def solve(self, problem: str, plan: Plan) -> dspy.Prediction:
        """Route and solve the plan's steps in order; the problem's answer is the last step's."""
        failures = list(plan.failures)
        traces: list[dict[str, Any]] = []
        layout, seen = self.step_view(problem, plan)

        def solve_step(i: int, step: str, earlier: str) -> StepResult:
            votes = None
            with captured() as calls:
                verdict = self._assess(plan, problem, seen, earlier, i)
                difficulty = verdict.difficulty if verdict else None
                failures.extend(verdict.failures if verdict else [])
                decision = route(difficulty.score if difficulty else None, self.config.threshold)
                attempt = verdict.attempt if verdict else None
                if attempt is not None and decision.mode == "system1":
                    result = attempt  # System 1 already solved it while being judged
                elif decision.mode == "system2" and self.config.system2_kind == "vote":
                    outcome = self._vote(seen, earlier, step)
                    result, votes = outcome.solution, outcome.to_dict()
                else:
                    predictor = self.system1 if decision.mode == "system1" else self.system2
                    lm = self.systems.system1 if decision.mode == "system1" else self.systems.system2
                    result = solve(predictor, lm, decision.mode, problem=seen, earlier_steps=earlier, current_step=step)
            if result.reason:
                failures.append(Failure(decision.mode, result.reason, i))
            traces.append({"index": i, "step": step, "difficulty": difficulty.to_dict() if difficulty else None,
                           **decision.to_dict(), "escalated": attempt is not None and decision.mode == "system2",
                           "visible": result.text, "value": result.answer, **({"vote": votes} if votes else {}),
                           "usage": usage_summary(calls)})
            return StepResult(step, result.text, result.answer)

        last = solve_in_order(plan.steps, self.config.context, solve_step)[-1]
        plan_record = {**plan.decomposition.to_dict(), "cached": plan.cached}
        del plan_record["failures"]  # listed once, with the solving failures, under "failures"
        trace = {"method": self.method, "threshold": self.config.threshold,
                 "difficulty_mode": self.config.difficulty_mode, "difficulty_source": self.config.difficulty_source,
                 "context": self.config.context,
                 "step_layout": layout,
                 "plan": plan_record, "steps": traces,
                 "failures": [f.to_dict() for f in failures]}
        return dspy.Prediction(answer=last.value or "", solution=last.text, trace=trace)

    def step_view(self, problem: str, plan: Plan) -> tuple[str, str]:
        """(layout, text): what every step is shown as the problem (``problem`` input field).

        ``conditions`` needs conditions from a successful rewrite; without them the layout that
        runs is ``problem``, whatever the config says.
        """
        return shown_problem(self.config, problem, plan.decomposition)

    def _vote(self, seen: str, earlier: str, step: str) -> VoteOutcome:
        """System 2 as a vote: samples of the step on ``vote.lm``, booked to stage ``system2``."""
        config = self.vote_config
        lm = self.systems.system1 if config.lm == "system1" else self.systems.system2

        def draw(i: int) -> Solution:
            return solve(self.system2, lm, "system2", config=sample_settings(config, i), problem=seen,
                         earlier_steps=earlier, current_step=step)

        return vote(draw, config, window=self.config.confidence_window, slots=lambda: limits.free(lm))

    def _assess(self, plan: Plan, problem: str, seen: str, earlier: str, index: int) -> Assessment | None:
        """The step's verdict: from the plan (up front), now (solved context), or none (uniform)."""
        if plan.difficulties is not None:
            return Assessment(plan.difficulties[index])
        if not self.assess_difficulty:
            return None
        # A source that solves the step sees it exactly as System 1 would; a rating sees the problem.
        shown = seen if self.source.needs_solved_context else problem
        return self.assess(StepView(
            shown, earlier, plan.steps[index],
            is_last=index == len(plan.steps) - 1, index=index, original=problem))

    def assess(self, step: StepView) -> Assessment:
        """The source's verdict on ``step``, after the last-step rule, applied here once for every source.

        With ``last_step_score`` set (reference: 0.9) and a source the rule applies to
        (``DifficultySource.last_step_rule``: the rating sources, not ``attempt`` or ``learned``), the
        last step's score is forced without asking the source, so the final step runs in System 2
        unless tau >= that score.

        Example:
            >>> from program.testing import scripted_systems
            >>> scale = Scale(ScaleConfig(last_step_score=0.9), scripted_systems(lambda m: "0.2", str))
            >>> last = StepView("P", "(none)", "S", is_last=True, index=0)
            >>> scale.assess(last).difficulty.forced, scale.assess(replace(last, is_last=False)).difficulty.score
            (True, 0.2)
        """
        score = self.config.last_step_score
        if step.is_last and score is not None and self.source.last_step_rule:
            return Assessment(Difficulty(score=score, forced=True, source=self.source.name))
        return self.source.assess(self, step)
