"""One optimizer run of a compile: the student, its metric, gold demos, the reflection LM, and what it cost.

``tune`` is step 2 of ``optimize.compiling.compile``: it picks what the optimizer sees (the whole
program, or one stage, ``optimize.compiling.stage``), the metric (the stage-level System 1 metric
scores "right within its cap"), draws the gold demos when ``compile.gold_demos`` asks for them
(``optimize.compiling.gold``), runs the optimizer (``optimize.compiling.optimizers``), bounds the
demo tokens (``max_demo_tokens``) and returns the tuned program with the record of the run:
seconds, model calls and tokens, demos and their tokens, and notes (GEPA reflecting with the same
model, demos dropped to fit the bound).

Example:
    >>> tuning = tune(program, systems, config, dev, heldout, count=len)  # doctest: +SKIP
    >>> tuning.record["calls"]  # doctest: +SKIP
    412
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimize.compiling.gold import Counter, bound_demos, demo_tokens, gold_pool, recorded_ids, stage_demos
from optimize.compiling.metric import CompileMetric, system1_caps
from optimize.compiling.optimizers import optimize_program
from optimize.compiling.stage import build_stage, put_back
from optimize.experiment import ExperimentConfig
from program.config import ConfigError
from program.ledger import Ledger

if TYPE_CHECKING:
    import dspy

    from program.clients.lm import Systems

__all__ = ["Tuning", "tune", "default_counter"]


@dataclass(frozen=True)
class Tuning:
    """The tuned program and the record of its optimizer run (saved under ``optimizer`` in metadata.json)."""

    program: dspy.Module
    record: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def default_counter(config: ExperimentConfig) -> Counter:
    """An estimate of a text's tokens for System 1's model (litellm's tokenizer plus 10 %), asking no server.

    An estimate: it ranks demos by length and bounds them (``max_demo_tokens``); what the demos
    really cost is in the prompt tokens the server reports while scoring, before vs after.
    """
    from dataclasses import replace

    from program.clients.context import count_prompt_tokens

    lm = config.program.lm
    offline = replace(lm.endpoint_for(lm.system1), api_base=None, api_bases=())  # no /tokenize request
    return functools.lru_cache(maxsize=4096)(lambda text: count_prompt_tokens(offline, text))


def tune(program: dspy.Module, systems: Systems, config: ExperimentConfig, dev: Sequence[dspy.Example],
         heldout: Sequence[dspy.Example], *, count: Counter) -> Tuning:
    """Run ``config.compile``'s optimizer on ``program``; returns the tuned copy and its record."""
    c = config.compile
    notes: list[str] = []
    caps = system1_caps(systems.system1)
    reflection = _reflection(config, notes)
    stage = build_stage(c.stage, program, labels=c.labels, dev=dev) if c.stage != "program" else None
    student = stage.student if stage else program
    examples = stage.examples if stage else list(dev)
    metric = (stage.metric if stage and stage.metric is not None else
              CompileMetric(c.token_penalty, c.cap_penalty, caps, within_cap=c.stage == "system1"))
    pool: dict[str, Any] | None = None
    demos = None
    if c.gold_demos:
        signature = _solver_signature(program, student, c.stage)
        exclude = {str(e.id) for e in (*dev, *heldout)} | recorded_ids(c.recorded) | _label_ids(c.labels)
        pool_name = config.data.dev.partition(":")[0]
        drawn = gold_pool(pool_name, c.gold_demos, seed=config.data.seed or 0, exclude=exclude, count=count,
                          shortest=c.shortest, max_tokens=c.max_demo_tokens, data_dir=config.data.data_dir)
        demos = stage_demos(drawn, signature)
        pool = {"benchmark": pool_name, "drawn": c.gold_demos, "kept": len(drawn), "shortest": c.shortest,
                "excluded_ids": len(exclude), "recorded": c.recorded, "ids": [d.id for d in drawn],
                "reply_tokens": [d.tokens for d in drawn]}
    spent = Ledger()
    started = time.monotonic()
    tuned_student = optimize_program(student, examples, config=c, prompt_lm=systems.stages,
                                     workers=config.workers, metric=metric, reflection_lm=reflection,
                                     demos=demos, spent=spent)
    seconds = round(time.monotonic() - started, 1)
    tuned = put_back(program, stage, tuned_student) if stage else tuned_student
    dropped = bound_demos(tuned, c.max_demo_tokens, count) if c.max_demo_tokens else {}
    if dropped:
        notes.append(f"max_demo_tokens={c.max_demo_tokens}: dropped {dropped} demo(s) to fit the bound.")
    totals = spent.totals()
    record = {"seconds": seconds, "calls": int(totals["calls"]), "cached_calls": int(totals["cached_calls"]),
              "prompt_tokens": int(totals["prompt_tokens"]), "completion_tokens": int(totals["completion_tokens"]),
              "workers": config.workers, "gold_pool": pool, "demo_tokens": demo_tokens(tuned, count),
              "demos_dropped": dropped, "caps": caps, "notes": notes}
    return Tuning(tuned, record, notes)


def _reflection(config: ExperimentConfig, notes: list[str]) -> Any:
    c = config.compile
    if c.optimizer != "gepa":
        return None
    if c.reflection is None:
        notes.append("GEPA reflected with the stages LM, the same model it tunes (no `compile.reflection` was "
                     "given); its authors reflect with a stronger model: point `compile.reflection` at one.")
        return None
    from program.clients.lm import build_mode_lm

    endpoint = config.program.lm.endpoint_for(c.reflection)
    notes.append(f"GEPA reflected with {endpoint.model} (`compile.reflection`).")
    return build_mode_lm(config.program.lm, c.reflection, "reflection")


def _solver_signature(program: dspy.Module, student: dspy.Module, stage: str) -> Any:
    """The signature gold demos are written for: the one solver predictor the optimizer tunes."""
    method = getattr(program, "method", "?")
    if stage == "system1" and method != "cascade":
        raise ConfigError(f"gold demos are whole-problem solutions; {method}'s System 1 solves sub-steps. Use them "
                          "with the cascade's System 1 (`method: cascade`, `stage: system1`) or with `method: cot`.")
    idle = set(getattr(student, "idle_predictors", list)())
    visible = [(name, p) for name, p in student.named_predictors() if name not in idle]
    if len(visible) != 1:
        raise ConfigError(f"gold demos go to one solver predictor, and this compile tunes {len(visible)} "
                          f"({', '.join(n for n, _ in visible)}); use `stage: system1` for the cascade, or "
                          "`method: cot`.")
    return visible[0][1].signature


def _label_ids(labels: str | None) -> set[str]:
    """Problem ids of the labels file a stage compile tunes on (they are calibration problems)."""
    if not labels or not Path(labels).is_file():
        return set()
    rows = (json.loads(line) for line in Path(labels).read_text(encoding="utf-8").splitlines() if line.strip())
    return {str(row["id"]) for row in rows if isinstance(row, dict) and "id" in row}
