"""Experiment files: one YAML/JSON file that says what to run, on which data, and how to tune it.

```yaml
name: quickstart
method: scale                 # scale | cot | vote | inftythink | bf | system1 | system2
lm: {preset: local}           # a preset plus any overrides, or a full LMConfig
scale: {threshold: 0.5}
data: {benchmark: gsm8k, limit: 10, dev: "gsm8k_train:20"}
search:
  trials: 16
  space: {threshold: [0.0, 1.0], system2_thinking_budget: [64, 512]}
compile: {optimizer: bootstrap}
```

Every key is checked: an unknown key or an out-of-range value is an error naming the file and the
key. Example:
    >>> cfg = experiment_from_dict({"method": "cot", "lm": {"preset": "local"}})
    >>> cfg.program.method
    'cot'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

from program.config import (
    ConfigError,
    InftyThinkConfig,
    LMConfig,
    ModeConfig,
    ProgramConfig,
    ScaleConfig,
    VoteConfig,
    check_known_keys,
)
from program.config_data import from_dict, to_dict
from program.presets import preset
from program.serving.local import DEFAULT_SLOTS

__all__ = [
    "DataConfig", "SearchConfig", "CompileConfig", "TrackingConfig", "ExperimentConfig",
    "load_experiment", "experiment_from_dict", "experiment_to_dict", "lm_from_dict", "save_experiment",
]

OPTIMIZERS = ("bootstrap", "labeled", "random-search", "mipro", "gepa", "simba", "none")
# What a compile tunes: the whole program, or one stage on its own examples (optimize.compiling.stage).
COMPILE_STAGES = ("program", "system1", "decompose", "difficulty")


@dataclass(frozen=True)
class DataConfig:
    """Which problems: the test benchmark for evaluation, and a dev slice of a pool for tuning.

    ``dev`` is ``POOL:N`` (a train pool, never a test set); ``val`` more pool problems held out
    after the dev ones, for a compile's held-out score. ``val_offset``: where the held-out problems
    start in the same seeded shuffle (default: right after the dev ones), so a held-out slice can
    skip problems earlier work already used; it may not overlap the dev slice.
    """

    benchmark: str = "gsm8k"
    limit: int | None = None
    seed: int | None = None
    dev: str = "gsm8k_train:20"
    val: int = 0
    data_dir: str | None = None
    val_offset: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"`limit={self.limit!r}` must be positive (or omitted for all problems).")
        pool, _, count = self.dev.partition(":")
        if not pool or not count.isdigit() or int(count) <= 0:
            raise ConfigError(f"`dev={self.dev!r}` must look like POOL:N, e.g. 'gsm8k_train:20'.")
        if self.val < 0:
            raise ConfigError(f"`val={self.val!r}` must be non-negative.")
        if self.val_offset is not None and self.val_offset < int(count):
            raise ConfigError(f"`val_offset={self.val_offset!r}` would overlap the dev slice (its first {count} "
                              f"problems): use {count} or more, or leave it out (held-out right after dev).")


@dataclass(frozen=True)
class SearchConfig:
    """The Optuna study. ``space`` maps a parameter to a fixed value, ``[low, high]`` or ``{choices: [...]}``.

    Parameters: threshold, system1_max_tokens, system2_thinking_budget, num_waits, num_candidates.
    ``token_objective``: the tokens minimised: ``completion`` (response tokens, thinking included:
    the papers' "Tok") or ``total`` (prompt + completion: what an API bills).

    Issue 26 (``optimize.search.families``, ``optimize.search.curve``): ``space.methods`` searches
    several methods; ``tau``: ``curve`` (each score-routed trial computes its exact curve over tau,
    at most ``curve_cap`` routings per problem) or ``sample``. ``budget``: mean tokens per problem;
    set, the study maximises accuracy subject to it (one objective, Optuna's constraints) and
    ``pruner`` (``halving``, ``hyperband``, ``wilcoxon``, ``none``) stops losing trials, reading
    running accuracy every ``chunk`` problems. Afterwards the chosen configuration (budget) or up to
    ``confirm`` Pareto configurations are re-measured on ``heldout`` held-out train problems (0: no
    confirmation), none of them a dev id or an id recorded under ``recorded``
    (``optimize.search.confirm``).

    ``enqueue``: settings to run first, in order, each once per study (Optuna's ``enqueue_trial``),
    e.g. ``[{method: bf, system2_thinking_budget: 512}]``; a knob left out takes the base config's
    value, a knob named must lie in the space (``MethodSpace.setting``). With ``enqueue_paper``
    (each method at the base config, and the paper's taus where tau is sampled) they come after.
    """

    trials: int = 16
    study: str = "scale-search"
    storage: str | None = None
    sampler: str = "nsga2"
    seed: int = 0
    space: dict[str, Any] = field(default_factory=lambda: {
        "threshold": [0.0, 1.0],
        "system1_max_tokens": [128, 512],
        "system2_thinking_budget": [64, 512],
        "num_waits": 0,
        "num_candidates": 1,
    })
    enqueue_paper: bool = True
    enqueue: list[dict[str, Any]] = field(default_factory=list)
    token_objective: str = "completion"
    tau: str = "curve"
    curve_cap: int = 16
    budget: float | None = None
    pruner: str = "none"
    chunk: int = 5
    confirm: int = 3
    heldout: int = 100
    recorded: str | None = "experiments/results"

    def __post_init__(self) -> None:
        if self.tau not in ("curve", "sample"):
            raise ConfigError(f"`tau={self.tau!r}` must be 'curve' (exact curve over tau) or 'sample'.")
        if self.pruner not in ("halving", "hyperband", "wilcoxon", "none"):
            raise ConfigError(f"`pruner={self.pruner!r}` must be halving, hyperband, wilcoxon or none.")
        if self.pruner != "none" and self.budget is None:
            raise ConfigError(f"`pruner={self.pruner!r}` needs `budget` (--budget TOKENS): Optuna prunes "
                              "single-objective studies only, and the front form has two objectives.")
        if self.budget is not None and not (isinstance(self.budget, (int, float)) and self.budget > 0):
            raise ConfigError(f"`budget={self.budget!r}` must be a positive number of tokens per problem.")
        for name in ("curve_cap", "chunk", "confirm", "heldout"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (2 if name == "curve_cap" else 0):
                raise ConfigError(f"`{name}={value!r}` must be an integer >= {2 if name == 'curve_cap' else 0}.")
        if self.chunk < 1:
            raise ConfigError(f"`chunk={self.chunk!r}` must be at least 1 problem.")
        if self.token_objective not in ("completion", "total"):
            raise ConfigError(f"`token_objective={self.token_objective!r}` must be 'completion' or 'total'.")
        if self.trials <= 0:
            raise ConfigError(f"`trials={self.trials!r}` must be positive.")
        if not isinstance(self.enqueue, list) or not all(isinstance(s, dict) for s in self.enqueue):
            raise ConfigError(f"`enqueue={self.enqueue!r}` must be a list of settings, each a mapping such as "
                              "{method: bf, system2_thinking_budget: 512}.")
        if self.sampler not in ("nsga2", "tpe", "random"):
            raise ConfigError(f"`sampler={self.sampler!r}` must be nsga2, tpe or random.")


@dataclass(frozen=True)
class CompileConfig:
    """A DSPy optimizer run. Budgets are explicit: demos, candidates/trials, metric calls.

    ``auto`` (``light``, ``medium``, ``heavy``) lets MIPROv2 and GEPA size their own budgets as
    their authors intend, in place of ``num_candidates``/``num_trials`` (MIPROv2) and
    ``max_metric_calls`` (GEPA). ``stage``: ``program`` tunes every predictor the configuration
    calls on whole dev problems; ``system1`` (System 1's step solver) and ``difficulty`` (the rating)
    tune one predictor on the steps of a ``scale calibrate`` labels file (``labels``), one call per
    candidate; ``decompose`` tunes the decomposition on dev problems, scored by its all-System-1
    solve (``optimize.compiling.stage``). ``reflection``: the LM GEPA reflects with (its authors use a strong
    model at temperature 1.0 with a long reply), e.g. ``{endpoint: {model: openai/gpt-4.1}, temperature:
    1.0, max_tokens: 8000}``; default: the stages LM (a note in the saved metadata says so).

    Gold demos (``optimize.compiling.gold``): ``gold_demos`` > 0 draws that many train problems with
    their gold worked solutions (GSM8K ``solution``) as labelled demos in the stage's own reply
    format, from the end of the dev slice's seeded shuffle, never a dev, held-out or recorded id
    (``recorded``: a folder whose saved programs' slices and calibration labels are excluded too).
    The demo optimizers (``labeled``, ``bootstrap``, ``mipro``) take their demos from it and GEPA
    reflects on it. ``shortest`` keeps only the k shortest solutions; ``max_demo_tokens`` bounds the
    demo tokens one prompt carries. ``cap_penalty`` is charged once per problem whose System 1
    attempt was cut off at its cap or gave no boxed answer (``optimize.compiling.metric``).
    ``keep_if_better``: save nothing unless the held-out accuracy rose.
    """

    optimizer: str = "bootstrap"
    max_bootstrapped_demos: int = 2
    max_labeled_demos: int = 2
    num_candidates: int = 4
    num_trials: int = 8
    max_metric_calls: int = 60
    token_penalty: float = 0.0
    seed: int = 0
    auto: str | None = None
    stage: str = "program"
    labels: str | None = None
    reflection: ModeConfig | None = None
    gold_demos: int = 0
    shortest: int | None = None
    max_demo_tokens: int | None = None
    recorded: str | None = "experiments/results"
    cap_penalty: float = 0.0
    keep_if_better: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"`optimizer={self.optimizer!r}` must be one of {', '.join(OPTIMIZERS)}.")
        if self.auto not in (None, "light", "medium", "heavy"):
            raise ConfigError(f"`auto={self.auto!r}` must be light, medium, heavy, or left out.")
        if self.stage not in COMPILE_STAGES:
            raise ConfigError(f"`stage={self.stage!r}` must be one of {', '.join(COMPILE_STAGES)}.")
        if self.stage in ("system1", "difficulty") and not self.labels:
            raise ConfigError(f"`stage={self.stage!r}` needs `labels`: the labels.jsonl written by `scale calibrate`.")
        if self.auto is not None and self.optimizer not in ("mipro", "gepa"):
            raise ConfigError(f"`auto={self.auto!r}` sizes MIPROv2 and GEPA budgets only; the optimizer is "
                              f"{self.optimizer!r}.")
        if self.token_penalty < 0:
            raise ConfigError(f"`token_penalty={self.token_penalty!r}` must be non-negative.")
        if self.cap_penalty < 0:
            raise ConfigError(f"`cap_penalty={self.cap_penalty!r}` must be non-negative.")
        for name in ("gold_demos", "shortest", "max_demo_tokens"):
            value = getattr(self, name)
            least = 0 if name == "gold_demos" else 1
            if value is not None and value < least:
                raise ConfigError(f"`{name}={value!r}` must be {'non-negative' if least == 0 else 'positive'}.")
        if self.optimizer == "labeled" and not self.gold_demos:
            raise ConfigError("`optimizer: labeled` puts gold worked solutions in the prompt: set `gold_demos: N` "
                              "(how many train problems form the demo pool).")
        if self.shortest is not None and self.shortest > self.gold_demos:
            raise ConfigError(f"`shortest={self.shortest}` keeps the k shortest of the `gold_demos={self.gold_demos}` "
                              "pool: make gold_demos at least as large.")
        if self.reflection is not None and self.optimizer != "gepa":
            raise ConfigError(f"`reflection` is GEPA's reflection LM; the optimizer is {self.optimizer!r}. "
                              "Drop `reflection` or use `optimizer: gepa`.")


@dataclass(frozen=True)
class TrackingConfig:
    """Where results go: a run directory and an MLflow tracking URI (default: sqlite in the run dir).

    ``workers`` is how many problems run at once; None (the default) follows the server: the
    embedded server's slot count when the LM is the embedded one, else 1 (set it to your server's
    batch for vLLM or SGLang). ``ExperimentConfig.workers`` resolves it.
    """

    output_dir: str = "runs"
    mlflow_uri: str | None = None
    mlflow_experiment: str = "scale-tts"
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise ConfigError(f"tracking.workers: {self.workers!r} must be a whole number of at least 1 "
                              "(or left out to follow the server's slots).")


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    program: ProgramConfig = field(default_factory=ProgramConfig)
    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    compile: CompileConfig = field(default_factory=CompileConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.tracking.output_dir) / self.name

    @property
    def workers(self) -> int:
        """Problems at once: ``tracking.workers``, else the embedded server's slots, else 1.

        The embedded server decodes ``DEFAULT_SLOTS`` requests at once (llama-server ``--parallel``);
        one problem at a time would leave most of them idle between a problem's calls. Another
        server's batch is not known before it is asked, so it gets 1 unless the config says more.

        Example:
            >>> ExperimentConfig().workers  # the embedded default
            4
            >>> ExperimentConfig(tracking=TrackingConfig(workers=2)).workers
            2
        """
        if self.tracking.workers is not None:
            return self.tracking.workers
        return DEFAULT_SLOTS if self.program.lm.embedded else 1


_PROGRAM_KEYS = ("method", "lm", "scale", "vote", "inftythink")


def lm_from_dict(data: dict[str, Any] | None, *, where: str = "lm") -> LMConfig:
    """An LMConfig from ``{preset: NAME, ...overrides}`` or a full mapping; default: the local preset."""
    data = dict(data or {"preset": "local"})
    name = data.pop("preset", None)
    if name is None:
        return from_dict(LMConfig, data, where=where)
    base = to_dict(preset(str(name)))
    if "endpoint" in data and "embedded" not in data:
        base["embedded"] = False  # the user named their own server
    return from_dict(LMConfig, _deep_merge(base, data), where=where)


def experiment_from_dict(data: dict[str, Any], *, where: str = "config") -> ExperimentConfig:
    """Validate plain data (a parsed file) into an ExperimentConfig."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level, got {type(data).__name__}.")
    known = {f.name for f in fields(ExperimentConfig)} - {"program"} | set(_PROGRAM_KEYS)
    check_known_keys(data, known, where)
    try:
        program = ProgramConfig(
            method=str(data.get("method", "scale")),
            lm=lm_from_dict(data.get("lm"), where=f"{where}: lm"),
            scale=from_dict(ScaleConfig, data.get("scale", {}), where=f"{where}: scale"),
            vote=from_dict(VoteConfig, data.get("vote", {}), where=f"{where}: vote"),
            inftythink=from_dict(InftyThinkConfig, data.get("inftythink", {}), where=f"{where}: inftythink"),
        )
    except ConfigError as exc:  # `method=` and an unknown preset do not name the file themselves
        message = str(exc)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None
    return ExperimentConfig(
        name=str(data.get("name", "experiment")),
        program=program,
        data=from_dict(DataConfig, data.get("data", {}), where=f"{where}: data"),
        search=from_dict(SearchConfig, data.get("search", {}), where=f"{where}: search"),
        compile=from_dict(CompileConfig, data.get("compile", {}), where=f"{where}: compile"),
        tracking=from_dict(TrackingConfig, data.get("tracking", {}), where=f"{where}: tracking"),
    )


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment file (YAML or JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist. Pass an existing YAML/JSON file to --config "
                          "(see experiments/ for examples).")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:  # absurd nesting too
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    return experiment_from_dict(data or {}, where=str(path))


def experiment_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """Plain data in the file layout (round-trips through ``experiment_from_dict``)."""
    program = to_dict(config.program)
    return {"name": config.name, **{k: program[k] for k in _PROGRAM_KEYS},
            "data": to_dict(config.data), "search": to_dict(config.search),
            "compile": to_dict(config.compile), "tracking": to_dict(config.tracking)}


def save_experiment(config: ExperimentConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (holds API key variable names only, never keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(experiment_to_dict(config), sort_keys=False), encoding="utf-8")
    return path


def with_program(config: ExperimentConfig, **changes: Any) -> ExperimentConfig:
    """A copy with ProgramConfig fields replaced (``method=...``, ``lm=...``, ``scale=...``)."""
    return replace(config, program=replace(config.program, **changes))


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
