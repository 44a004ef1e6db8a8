"""A search space across methods: a define-by-run conditional space, each method with its own knobs.

``search.space`` may name several methods under ``methods``; every other key is a knob shared by
all of them (today's flat space, which alone searches the config's own method)::

    space:
      num_waits: 0                                         # shared: fixed for every method
      methods:
        cot: {system1_max_tokens: {choices: [512, 768]}}
        bf: {system2_thinking_budget: {choices: [256, 512]}}
        vote: {vote_samples: [3, 5], vote_stop_rule: {choices: [majority, beta]}}
        cascade: {difficulty_source: attempt, system2_kind: {choices: [think, vote]}, vote_samples: [3, 5]}
        scale: {difficulty_source: {choices: [rating, attempt]}, system1_max_tokens: [160, 320]}

A trial first picks ``method`` (Optuna's ``suggest_categorical``), then only that method's knobs,
named ``<method>.<knob>`` so one knob of two methods keeps two distributions (Optuna's
define-by-run conditional space: TPE and NSGA-II see which knobs each trial had). Each method takes
the knobs in ``FAMILY_KNOBS``; any other is refused with the list it takes.

Tau: for the score-routed methods (``SCORE_ROUTED``) with ``tau: curve`` (the default), ``threshold``
is not sampled: its range (default ``[0, 1)``) is the domain of the trial's exact curve
(``optimize.search.curve``). ``tau: sample`` samples it like any other knob (the old behaviour).

Example:
    >>> import optuna
    >>> space = MethodSpace.parse({"methods": {"cot": {"system1_max_tokens": [256, 768]}, "cascade": {}}}, "scale")
    >>> space.suggest(optuna.trial.FixedTrial({"method": "cot", "cot.system1_max_tokens": 512}))
    Choice(method='cot', values={'system1_max_tokens': 512}, curve=None)
    >>> space.suggest(optuna.trial.FixedTrial({"method": "cascade"})).curve
    (0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from optimize.search.space import PARAMETERS, Choices, Range, SearchSpace
from program.config import METHODS, ConfigError, ProgramConfig

if TYPE_CHECKING:
    import optuna

__all__ = ["FAMILY_KNOBS", "SCORE_ROUTED", "UNIFORM", "TAU_MODES", "Choice", "MethodSpace"]

_BUDGETS = ("system1_max_tokens", "system2_max_tokens", "system2_thinking_budget", "num_waits")
_VOTE = ("vote_samples", "vote_stop_rule", "vote_max_tokens")
_ROUTED = ("threshold", "difficulty_source", "attempt_confidence", "system2_kind", *_VOTE, *_BUDGETS)

# method -> the knobs that change what it does (program.methods.build_program says what each reads)
FAMILY_KNOBS: dict[str, tuple[str, ...]] = {
    "cot": ("system1_max_tokens",),
    "bf": ("system2_thinking_budget", "system2_max_tokens", "num_waits"),
    "vote": ("system1_max_tokens", *_VOTE),
    "inftythink": ("system1_max_tokens",),
    "cascade": _ROUTED,
    "scale": (*_ROUTED, "num_candidates"),
    "system1": ("system1_max_tokens", "num_candidates"),
    "system2": ("system2_max_tokens", "system2_thinking_budget", "num_waits", "num_candidates", "system2_kind",
                *_VOTE),
}
assert set(FAMILY_KNOBS) == set(METHODS), "every method needs its knobs listed"

SCORE_ROUTED = ("scale", "cascade")  # tau routes them: their curve over tau is exact
UNIFORM = ("cot", "bf")  # the uniform methods a search's choice is measured against
TAU_MODES = ("curve", "sample")
WHOLE_TAU = (0.0, 1.0)  # [0, 1): below 0 every step is System 2 and from 1 every one System 1, unscored


@dataclass(frozen=True)
class Choice:
    """What one trial runs: a method, its knob values, and the tau interval of its exact curve (or None)."""

    method: str
    values: dict[str, Any]
    curve: tuple[float, float] | None = None


@dataclass(frozen=True)
class MethodSpace:
    """The shared knobs and, per method, its own space. Build it with ``MethodSpace.parse``."""

    shared: SearchSpace
    families: dict[str, SearchSpace] = field(default_factory=dict)
    base_method: str = "scale"
    tau: str = "curve"

    @classmethod
    def parse(cls, space: Mapping[str, Any], base_method: str, tau: str = "curve") -> MethodSpace:
        """Validate ``search.space``; ``base_method`` is the config's method (searched when none is named)."""
        if tau not in TAU_MODES:
            raise ConfigError(f"search.tau: {tau!r} must be one of {', '.join(TAU_MODES)}.")
        if not isinstance(space, Mapping):
            raise ConfigError(f"search.space: expected a mapping of parameter -> value/range, got {space!r}.")
        shared = SearchSpace.parse({k: v for k, v in space.items() if k != "methods"})
        raw = space.get("methods")
        if raw is None:
            return cls(shared, {}, base_method, tau)
        if isinstance(raw, (list, tuple)):  # a list of names: each method at the base config
            raw = {name: {} for name in raw}
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError(f"search.space.methods: {raw!r} must map method names to their knobs "
                              f"(methods: {', '.join(METHODS)}).")
        families = {}
        for method, knobs in raw.items():
            if method not in FAMILY_KNOBS:
                raise ConfigError(f"search.space.methods: unknown method {method!r}; choose from {', '.join(METHODS)}.")
            knobs = knobs or {}
            if not isinstance(knobs, Mapping):
                raise ConfigError(f"search.space.methods.{method}: {knobs!r} must map knobs to a value or range.")
            foreign = sorted(set(knobs) - set(FAMILY_KNOBS[method]))
            if foreign:
                raise ConfigError(f"search.space.methods.{method}: {', '.join(foreign)} do(es) not change "
                                  f"{method}; its knobs are: {', '.join(FAMILY_KNOBS[method])}.")
            families[method] = SearchSpace.parse(knobs)
        return cls(shared, families, base_method, tau)

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods a trial may pick."""
        return tuple(self.families) or (self.base_method,)

    def _family(self, method: str) -> SearchSpace:
        own = self.families.get(method, SearchSpace({}))
        return SearchSpace({**self.shared.specs, **own.specs})

    def curve_of(self, method: str) -> tuple[float, float] | None:
        """The tau interval of ``method``'s exact curve, or None where tau is sampled, fixed or unused."""
        if self.tau != "curve" or method not in SCORE_ROUTED:
            return None
        spec = self._family(method).specs.get("threshold")
        if spec is None:
            return WHOLE_TAU
        if isinstance(spec, Range) and not spec.step and spec.low < min(spec.high, 1.0):
            return (max(float(spec.low), 0.0), min(float(spec.high), 1.0))
        return None  # fixed, choices or a grid: the user asked for those taus

    def suggest(self, trial: optuna.trial.BaseTrial) -> Choice:
        """The trial's method (sampled when there are several), then only that method's knobs."""
        methods = self.methods
        method = methods[0] if len(methods) == 1 else str(trial.suggest_categorical("method", list(methods)))
        space, curve = self._family(method), self.curve_of(method)
        if curve is not None:
            space = space.without("threshold")
        prefix = f"{method}." if self.families else ""  # the flat space keeps today's parameter names
        return Choice(method, space.suggest(trial, prefix=prefix), curve)

    def apply(self, config: ProgramConfig, choice: Choice, tau: float | None = None) -> ProgramConfig:
        """``config`` running ``choice`` (at ``tau`` when given: a point of the curve)."""
        config = replace(config, method=choice.method)
        config = self._family(choice.method).apply(config, choice.values)
        if tau is not None:
            config = replace(config, scale=replace(config.scale, threshold=float(tau)))
        return config

    def seeds(self, base: ProgramConfig, taus: tuple[float, ...]) -> list[dict[str, Any] | None]:
        """Params to enqueue first: each method at the base config's values (``taus`` where tau is sampled)."""
        seeds: list[dict[str, Any] | None] = []
        for method in self.methods:
            space = self._sampled(method)
            sampled_tau = method in SCORE_ROUTED and isinstance(space.specs.get("threshold"), (Range, Choices))
            for tau in (taus if sampled_tau else (None,)):
                params = space.seed(replace(base, method=method), **({} if tau is None else {"threshold": tau}))
                if params is not None:
                    seeds.append(self._trial_params(method, params))
        return seeds

    def setting(self, base: ProgramConfig, values: Mapping[str, Any]) -> dict[str, Any]:
        """Params to enqueue for a setting a user names (``search.enqueue``); knobs left out take ``base``.

        Unlike a seed, nothing is clipped: a method or knob outside the space, or a value outside a
        knob's range or choices, is a ConfigError that names it and what the space allows.

        Example:
            >>> space = MethodSpace.parse({"methods": {"cot": {"system1_max_tokens": [256, 768]}, "bf": {}}}, "scale")
            >>> space.setting(ProgramConfig(), {"method": "cot", "system1_max_tokens": 512})
            {'method': 'cot', 'cot.system1_max_tokens': 512}
        """
        where = f"search.enqueue: {dict(values)!r}"
        method = values.get("method", self.methods[0] if len(self.methods) == 1 else None)
        if method not in self.methods:
            raise ConfigError(f"{where}: name the method, one of {', '.join(self.methods)}"
                              + ("" if method is None else f" (not {method!r})") + ".")
        space = self._sampled(method)
        knobs = {k: v for k, v in values.items() if k != "method"}
        for name, value in knobs.items():
            spec = space.specs.get(name)
            if spec is None:
                exact = " (its tau is not sampled: each trial computes the whole curve)" if name == "threshold" else ""
                raise ConfigError(f"{where}: {name!r} is not a knob of {method}'s space{exact}; it has: "
                                  f"{', '.join(space.specs) or 'none'}.")
            try:
                checked = PARAMETERS[name].check(value)
            except ConfigError as exc:  # its message names the space's key; this value is the setting's
                raise ConfigError(f"{where}: {exc}") from None
            if spec.clip(checked) != value:
                allowed = (f"one of {list(spec.values)}" if isinstance(spec, Choices) else
                           f"[{spec.low}, {spec.high}]" if isinstance(spec, Range) else f"fixed at {spec.value!r}")
                raise ConfigError(f"{where}: {name}={value!r} lies outside {method}'s space: {allowed}.")
        params = space.seed(replace(base, method=method), **knobs)
        assert params is not None, "every named value was checked against its spec above"
        return self._trial_params(method, params)

    def _sampled(self, method: str) -> SearchSpace:
        """``method``'s space as a trial samples it: without tau where the trial computes the exact curve."""
        space = self._family(method)
        return space.without("threshold") if self.curve_of(method) is not None else space

    def _trial_params(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` under the names a trial has (``<method>.<knob>``, and ``method`` when there are several)."""
        prefix = f"{method}." if self.families else ""
        named = {prefix + k: v for k, v in params.items()}
        return {"method": method, **named} if len(self.methods) > 1 else named
