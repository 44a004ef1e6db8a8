"""The search space of ``scale search``: which knobs a trial may turn, and how each is sampled.

A config's ``search.space`` maps a parameter name to one of three forms:

- a scalar: the parameter is **fixed** (``num_waits: 0``); it overrides the base config and is not
  searched;
- ``[low, high]``: a **range**; integer parameters (budgets, counts) sample ints, ``threshold``
  samples floats (so ``[0, 1]`` is the whole tau interval, not the two ints 0 and 1);
  ``{low: 64, high: 1024, log: true}`` or ``{..., step: 64}`` adds Optuna's options;
- ``{choices: [...]}``: one of a list of values.

Parameters left out keep the base config's value. Every error names the parameter, its value and
what is expected. Parameters and what they set in a ``ProgramConfig``:

================================  ============================================================
``threshold``                     ``scale.threshold`` (tau): System 2 when a step's score > tau
``system1_max_tokens``            ``lm.system1.max_tokens``
``system2_max_tokens``            ``lm.system2.max_tokens`` (the visible answer after thinking)
``system2_thinking_budget``       ``lm.system2.thinking_budget`` when System 2 has a separate
                                  thinking cap (``forced``, ``effort``); otherwise (Qwen3 switch,
                                  always-thinking models) ``lm.system2.max_tokens``, the one cap
                                  on thinking there: the paper's "System 2 cap" sweep
``num_waits``                     ``lm.forcing.num_waits`` (s1 "Wait" extensions)
``num_candidates``                ``scale.num_candidates`` (k decompositions; k > 1 adds a judge)
``difficulty_source``             ``scale.difficulty_source`` (a name: fixed or ``{choices: [...]}``)
``attempt_confidence``            ``scale.attempt_confidence`` (the ``attempt`` source's option)
``system2_kind``                  ``scale.system2_kind``: ``think`` or ``vote`` (fixed or choices)
``vote_samples``                  ``vote.samples``: k, the most samples of a vote (System 2 or baseline)
``vote_stop_rule``                ``vote.stop_rule``: ``majority`` or ``beta`` (adaptive stopping)
``vote_max_tokens``               ``vote.max_tokens``: each vote sample's cap
================================  ============================================================

The names a parameter may take are read from the config's own ``Literal`` types and the source
registry (``options_of``), so this module restates no option list. ``optimize.search.families``
builds a space across methods from one of these per method.

A study that searches ``difficulty_source`` with ``threshold`` picks the source and its tau
together; the scores of one source are not on another's scale, so TPE/NSGA-II condition tau on it.

Example:
    >>> space = SearchSpace.parse({"threshold": [0.0, 1.0], "num_waits": 0})
    >>> space.searched
    ('threshold',)
    >>> import optuna
    >>> space.suggest(optuna.trial.FixedTrial({"threshold": 0.3}))
    {'threshold': 0.3, 'num_waits': 0}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

from program.config import ConfigError, ProgramConfig, VoteConfig, check_known_keys
from program.names import ATTEMPT_CONFIDENCES, DIFFICULTY_SOURCES, SYSTEM2_KINDS

if TYPE_CHECKING:
    import optuna

__all__ = ["PARAMETERS", "Parameter", "Fixed", "Range", "Choices", "SearchSpace", "options_of"]


def options_of(config_class: type, field_name: str) -> tuple[str, ...]:
    """The names a config field's ``Literal`` type allows: the config is the one place they are listed.

    Example:
        >>> options_of(VoteConfig, "stop_rule")
        ('majority', 'beta')
    """
    return tuple(get_args(get_type_hints(config_class)[field_name]))


def _with_scale(config: ProgramConfig, **changes: Any) -> ProgramConfig:
    return replace(config, scale=replace(config.scale, **changes))


def _with_vote(config: ProgramConfig, **changes: Any) -> ProgramConfig:
    return replace(config, vote=replace(config.vote, **changes))


def _with_mode(config: ProgramConfig, role: str, **changes: Any) -> ProgramConfig:
    return replace(config, lm=replace(config.lm, **{role: replace(getattr(config.lm, role), **changes)}))


def _separate_thinking_cap(config: ProgramConfig) -> bool:
    # bf always forces thinking on System 2 with lm.system2.thinking_budget (program.clients.budget_forcing)
    return config.method == "bf" or config.lm.system2.thinking in ("forced", "effort")


def _get_thinking(config: ProgramConfig) -> int:
    mode = config.lm.system2
    return mode.thinking_budget if _separate_thinking_cap(config) else mode.max_tokens


def _set_thinking(config: ProgramConfig, value: int) -> ProgramConfig:
    field = "thinking_budget" if _separate_thinking_cap(config) else "max_tokens"
    return _with_mode(config, "system2", **{field: value})


@dataclass(frozen=True)
class Parameter:
    """One searchable knob: its type, its smallest (and largest) legal value, and where it lives."""

    name: str
    kind: type  # int, float, or str (a name among ``options``)
    minimum: float
    maximum: float | None
    get: Callable[[ProgramConfig], Any]
    set: Callable[[ProgramConfig, Any], ProgramConfig]
    options: tuple[str, ...] = ()

    def check(self, value: Any, what: str = "value") -> Any:
        """``value`` as this parameter's type, or a ConfigError naming the parameter."""
        if self.kind is str:
            if value not in self.options:
                raise ConfigError(f"search.space.{self.name}: {what} {value!r} must be one of "
                                  f"{', '.join(self.options)}.")
            return str(value)
        expected = "an integer" if self.kind is int else "a number"
        bounds = f">= {self.minimum:g}" if self.maximum is None else f"in [{self.minimum:g}, {self.maximum:g}]"
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (self.kind is int and not float(value).is_integer()) or not math.isfinite(value):
            raise ConfigError(f"search.space.{self.name}: {what} {value!r} must be {expected} {bounds}.")
        if value < self.minimum or (self.maximum is not None and value > self.maximum):
            raise ConfigError(f"search.space.{self.name}: {what} {value!r} must be {bounds}.")
        return self.kind(value)


PARAMETERS: dict[str, Parameter] = {p.name: p for p in (
    Parameter("threshold", float, -1.0, 1.0, lambda c: c.scale.threshold,
              lambda c, v: _with_scale(c, threshold=float(v))),
    Parameter("system1_max_tokens", int, 1, None, lambda c: c.lm.system1.max_tokens,
              lambda c, v: _with_mode(c, "system1", max_tokens=int(v))),
    Parameter("system2_max_tokens", int, 1, None, lambda c: c.lm.system2.max_tokens,
              lambda c, v: _with_mode(c, "system2", max_tokens=int(v))),
    Parameter("system2_thinking_budget", int, 1, None, _get_thinking, lambda c, v: _set_thinking(c, int(v))),
    Parameter("num_waits", int, 0, None, lambda c: c.lm.forcing.num_waits,
              lambda c, v: replace(c, lm=replace(c.lm, forcing=replace(c.lm.forcing, num_waits=int(v))))),
    Parameter("num_candidates", int, 1, None, lambda c: c.scale.num_candidates,
              lambda c, v: _with_scale(c, num_candidates=int(v))),
    Parameter("difficulty_source", str, 0, None, lambda c: c.scale.difficulty_source,
              lambda c, v: _with_scale(c, difficulty_source=str(v)), options=DIFFICULTY_SOURCES),
    Parameter("attempt_confidence", str, 0, None, lambda c: c.scale.attempt_confidence,
              lambda c, v: _with_scale(c, attempt_confidence=str(v)),
              options=ATTEMPT_CONFIDENCES),
    Parameter("system2_kind", str, 0, None, lambda c: c.scale.system2_kind,
              lambda c, v: _with_scale(c, system2_kind=str(v)), options=SYSTEM2_KINDS),
    Parameter("vote_samples", int, 1, None, lambda c: c.vote.samples,
              lambda c, v: _with_vote(c, samples=int(v))),
    Parameter("vote_stop_rule", str, 0, None, lambda c: c.vote.stop_rule,
              lambda c, v: _with_vote(c, stop_rule=str(v)),
              options=options_of(VoteConfig, "stop_rule")),
    Parameter("vote_max_tokens", int, 1, None, lambda c: c.vote.max_tokens,
              lambda c, v: _with_vote(c, max_tokens=int(v))),
)}


@dataclass(frozen=True)
class Fixed:
    value: int | float | str

    def clip(self, value: Any) -> Any:
        return self.value if value == self.value else None


@dataclass(frozen=True)
class Range:
    low: int | float
    high: int | float
    log: bool = False
    step: int | float | None = None

    def clip(self, value: Any) -> Any:
        clipped = min(max(value, self.low), self.high)
        if self.step:  # onto the grid Optuna samples from
            clipped = self.low + round((clipped - self.low) / self.step) * self.step
            clipped = min(clipped, self.high)
        return type(self.low)(clipped)


@dataclass(frozen=True)
class Choices:
    values: tuple[Any, ...]

    def clip(self, value: Any) -> Any:
        if isinstance(self.values[0], str):  # names have no nearest: the value itself, else the first
            return value if value in self.values else self.values[0]
        return min(self.values, key=lambda choice: (abs(choice - value), choice))


Spec = Fixed | Range | Choices


def _parse_one(param: Parameter, raw: Any) -> Spec:
    name = f"search.space.{param.name}"
    if param.kind is str and isinstance(raw, (list, tuple)):
        raise ConfigError(f"{name}: {list(raw)!r} is not a range of names; write one name or "
                          f"{{choices: [...]}} from: {', '.join(param.options)}.")
    if isinstance(raw, (list, tuple)):
        if len(raw) != 2:
            raise ConfigError(f"{name}: {list(raw)!r} must be [low, high] (two values), a single value, "
                              "or {choices: [...]}.")
        raw = {"low": raw[0], "high": raw[1]}
    if not isinstance(raw, Mapping):
        return Fixed(param.check(raw))
    if "choices" in raw:
        if set(raw) != {"choices"}:
            raise ConfigError(f"{name}: `choices` cannot be combined with {sorted(set(raw) - {'choices'})}.")
        choices = raw["choices"]
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{name}: choices={choices!r} must be a non-empty list of values.")
        values = tuple(param.check(v, "choice") for v in choices)
        if len(set(values)) != len(values):
            raise ConfigError(f"{name}: choices={list(choices)!r} has duplicates.")
        return Choices(values)
    unknown = sorted(set(raw) - {"low", "high", "log", "step"})
    if unknown or not {"low", "high"} <= set(raw):
        raise ConfigError(f"{name}: {dict(raw)!r} must be [low, high], {{low, high, log, step}} or "
                          "{choices: [...]}" + (f"; unknown key(s) {unknown}." if unknown else "."))
    low, high = param.check(raw["low"], "low"), param.check(raw["high"], "high")
    if low >= high:
        raise ConfigError(f"{name}: low {low!r} must be below high {high!r} (for a fixed value write "
                          f"`{param.name}: {low!r}`).")
    log = raw.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):
        raise ConfigError(f"{name}: log={log!r} must be true or false, and a log range needs low > 0.")
    step = raw.get("step")
    if step is not None:
        step = param.check(step, "step")
        if step <= 0 or log:
            raise ConfigError(f"{name}: step={step!r} must be positive and cannot be combined with log.")
    return Range(low, high, log, step)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space: a spec per named parameter. Build it with ``SearchSpace.parse``."""

    specs: dict[str, Spec]

    @classmethod
    def parse(cls, space: Mapping[str, Any]) -> SearchSpace:
        """Validate ``search.space`` from a config; unknown names and bad values raise ConfigError."""
        if not isinstance(space, Mapping):
            raise ConfigError(f"search.space: expected a mapping of parameter -> value/range, got {space!r}.")
        check_known_keys(space, PARAMETERS, "search.space", kind="parameter")
        return cls({name: _parse_one(PARAMETERS[name], raw) for name, raw in space.items()})

    @property
    def searched(self) -> tuple[str, ...]:
        """Names of the parameters a trial samples (not fixed)."""
        return tuple(name for name, spec in self.specs.items() if not isinstance(spec, Fixed))

    def without(self, name: str) -> SearchSpace:
        """This space less one parameter (the exact tau curve takes ``threshold`` out of sampling)."""
        return SearchSpace({key: spec for key, spec in self.specs.items() if key != name})

    def suggest(self, trial: optuna.trial.BaseTrial, prefix: str = "") -> dict[str, Any]:
        """Every parameter's value for ``trial``: sampled ones from the trial, then the fixed ones.

        ``prefix`` names the trial's parameters (``cot.system1_max_tokens``) so that one knob of
        two methods keeps two distributions in one study; the values returned are unprefixed.
        """
        values: dict[str, Any] = {}
        for name, spec in self.specs.items():
            key = prefix + name
            if isinstance(spec, Range) and PARAMETERS[name].kind is int:
                values[name] = trial.suggest_int(key, int(spec.low), int(spec.high), step=int(spec.step or 1),
                                                 log=spec.log)
            elif isinstance(spec, Range):
                values[name] = trial.suggest_float(key, float(spec.low), float(spec.high), step=spec.step,
                                                   log=spec.log)
            elif isinstance(spec, Choices):
                values[name] = trial.suggest_categorical(key, list(spec.values))
        return values | {name: spec.value for name, spec in self.specs.items() if isinstance(spec, Fixed)}

    def apply(self, config: ProgramConfig, values: Mapping[str, Any]) -> ProgramConfig:
        """``config`` with ``values`` set (frozen configs: a new one, validated on construction)."""
        for name, value in values.items():
            config = PARAMETERS[name].set(config, value)
        return config

    def seed(self, base: ProgramConfig, **values: Any) -> dict[str, Any] | None:
        """Params to enqueue for a known setting: ``values`` over ``base``, clipped into the space.

        Returns only the searched parameters, or None when one of ``values`` contradicts a fixed
        value (that setting cannot run in this space). Base values of fixed parameters yield.

        Example:
            >>> space = SearchSpace.parse({"threshold": [0.3, 1.0], "system1_max_tokens": [64, 128]})
            >>> space.seed(ProgramConfig(), threshold=0.2)  # the local preset's System 1 has 320
            {'threshold': 0.3, 'system1_max_tokens': 128}
        """
        params: dict[str, Any] = {}
        for name, spec in self.specs.items():
            if isinstance(spec, Fixed):
                if name in values and spec.clip(values[name]) is None:
                    return None  # e.g. tau 0.2 asked for, but the space fixes tau at 0.5
                continue  # base budgets yield to a fixed value: it is this search's base
            params[name] = spec.clip(values.get(name, PARAMETERS[name].get(base)))
        return params
