"""``run_compare``: every entry on the same problems, K samples each, through ``scale eval``'s executor.

Results live in ``<output>/<entry>/sample-<k>/results.jsonl`` (one line per finished problem), so
an interrupted comparison, run again, finishes without re-asking finished problems; sample k > 0
draws with shifted seeds and its own cache keys (``program.clients.transport.sample``), and a rerun of the
same sample is a cache hit. A greedy entry (``is_greedy``) runs one sample: the others would be
identical. Accuracy is reported in percent: one sample with a Wilson 95 % interval, K samples as
the mean over samples with a t interval.

Example:
    >>> report = run_compare(load_compare("experiments/local/compare-gsm8k.yaml"), examples,  # doctest: +SKIP
    ...                      output="runs/compare")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import dspy

from optimize.compare.entries import CompareConfig, Entry, family, is_greedy
from optimize.compare.stats import frontier, mean_interval, versus_frontier, wilson_interval
from optimize.compare.votes import vote_usage
from optimize.evaluation.evaluate import build_program, evaluate
from optimize.experiment import save_experiment
from program.config import ProgramConfig

__all__ = ["EntryResult", "CompareReport", "run_compare", "format_table", "REFERENCE_FAMILIES"]

REFERENCE_FAMILIES = ("cot", "bf")  # the frontier SCALE is held to: CoT and s1 budget forcing


@dataclass
class EntryResult:
    """One entry's numbers (accuracy in percent; tokens are means per problem)."""

    name: str
    method: str
    family: str
    samples: int
    greedy: bool
    accuracies: list[float]
    accuracy: float
    low: float
    high: float
    completion_tokens: float
    thinking_tokens: float
    prompt_tokens: float
    system2_share: float | None
    wall_seconds: float
    n: int
    n_failed: int
    on_frontier: bool = False
    results: list[str] = field(default_factory=list)
    votes_per_problem: float | None = None  # votes taken (None: the entry never votes)
    samples_per_vote: float | None = None   # samples drawn per vote ...
    samples_saved: float | None = None      # ... and the share of a fixed vote's samples adaptive stopping saved
    # Mean per problem of the server's own prompt-evaluation + generation seconds over every call, cache
    # hits included (a hit keeps the timings of the call that filled it): unlike wall seconds, the same
    # whether or not the cache was warm. None where the server reports no timings (most APIs).
    server_seconds: float | None = None
    # Against the frontier of the reference entries (CoT and budget forcing: the baselines SCALE must
    # beat): accuracy points ahead of the best of them at no more tokens, and the fewest tokens one of
    # them needs to be as accurate (None where none is). Both None for the reference entries.
    ahead_of_reference: float | None = None
    reference_tokens_to_match: float | None = None


@dataclass
class CompareReport:
    """Every entry, the frontier marks, and where the outputs went."""

    entries: list[EntryResult]
    n_problems: int
    samples: int
    wall_seconds: float
    json_path: Path | None = None
    plot_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["json_path"], data["plot_path"] = str(self.json_path), str(self.plot_path)
        return data


def run_compare(config: CompareConfig, examples: Sequence[dspy.Example], *, output: Path | str,
                samples: int | None = None, workers: int = 1, progress: bool = True,
                program_factory: Callable[[ProgramConfig], Any] | None = None) -> CompareReport:
    """Run every entry (``samples`` overrides the file's), write ``compare.json`` and ``compare.png``."""
    started = time.monotonic()
    output = Path(output)
    save_experiment(config.experiment, output / "config.yaml")
    k = samples or config.samples
    make = program_factory or build_program
    results = [_run_entry(entry, examples, output, k, workers, progress, make) for entry in config.entries]
    marks = frontier([(r.completion_tokens, r.accuracy) for r in results])
    for result, mark in zip(results, marks, strict=True):
        result.on_frontier = mark
    reference = [(r.completion_tokens, r.accuracy) for r in results if r.family in REFERENCE_FAMILIES]
    for result in results:
        if reference and result.family not in REFERENCE_FAMILIES:
            result.ahead_of_reference, result.reference_tokens_to_match = versus_frontier(
                reference, (result.completion_tokens, result.accuracy))
    report = CompareReport(results, len(examples), k, round(time.monotonic() - started, 1))
    report.json_path = output / "compare.json"
    report.json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    from optimize.compare.plot import plot_compare

    report.plot_path = plot_compare(report, output / "compare.png")
    report.json_path.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _run_entry(entry: Entry, examples: Sequence[dspy.Example], output: Path, samples: int, workers: int,
               progress: bool, make: Callable[[ProgramConfig], Any]) -> EntryResult:
    greedy = is_greedy(entry.program)
    runs = 1 if greedy else samples
    factory, fingerprint, older = _program_source(entry, make)
    summaries, paths, traces, calls = [], [], [], []
    for k in range(runs):
        path = output / entry.name / f"sample-{k}" / "results.jsonl"
        report = evaluate(factory, examples, results_path=path, config=entry.program, fingerprint=fingerprint,
                          accept=older, workers=workers, progress=progress, sample=k,
                          description=f"{entry.name} (sample {k + 1}/{runs})")
        summaries.append(report.summary)
        paths.append(str(path))
        traces += [r.trace for r in report.results]
        calls += [r.calls for r in report.results]
    accuracies = [s.accuracy for s in summaries]
    if runs == 1:
        low, high = (100 * v for v in wilson_interval(summaries[0].n_correct, summaries[0].n))
        mean = accuracies[0]
    else:
        mean, low, high = mean_interval(accuracies)
    kinds = [s.mean_tokens_by_kind for s in summaries]
    shares = [s.system2_share for s in summaries if s.system2_share is not None]
    result = EntryResult(
        name=entry.name, method=entry.program.method, family=family(entry.program), samples=runs, greedy=greedy,
        accuracies=accuracies, accuracy=mean, low=max(0.0, low), high=min(100.0, high),
        completion_tokens=_mean([k["completion_tokens"] for k in kinds]),
        thinking_tokens=_mean([k["thinking_tokens"] for k in kinds]),
        prompt_tokens=_mean([k["prompt_tokens"] for k in kinds]),
        system2_share=_mean(shares) if shares else None, wall_seconds=round(sum(s.wall_seconds for s in summaries), 1),
        n=summaries[0].n, n_failed=sum(s.n_failed for s in summaries), results=paths)
    result.server_seconds = server_seconds(calls)
    usage = vote_usage(traces)
    if usage.votes:
        result.votes_per_problem = round(usage.votes / max(1, len(traces)), 3)
        result.samples_per_vote, result.samples_saved = round(usage.mean_used, 3), round(usage.saved, 3)
    return result


def _program_source(entry: Entry, make: Callable[[ProgramConfig], Any],
                    ) -> tuple[Callable[[], Any], str | None, tuple[str, ...]]:
    """A factory for the entry's program and, for a saved program, a fingerprint with its tuned state
    (so results of another compile in the same folder are not taken for this one's) and its legacy one."""
    if entry.saved is None:
        return (lambda: make(entry.program)), None, ()
    from optimize.compiling.saved import load_program, program_fingerprint, read_saved_config

    config = replace(read_saved_config(entry.saved), program=entry.program)
    fingerprint, older = program_fingerprint(entry.saved, config), program_fingerprint(entry.saved, config, legacy=True)
    return ((lambda: load_program(entry.saved, config=config, builder=lambda c, _systems: make(c)).program),
            fingerprint, (older,))


def server_seconds(problems: Sequence[Sequence[dict[str, Any]]]) -> float | None:
    """Mean per problem of the server-reported prompt + generation seconds of its calls (None: no timings).

    Example:
        >>> server_seconds([[{"prompt_seconds": 1.0, "generation_seconds": 2.0, "cached": True}], []])
        1.5
    """
    timed = [c for calls in problems for c in calls if c.get("prompt_seconds") is not None
             or c.get("generation_seconds") is not None]
    if not problems or not timed:
        return None
    total = sum((c.get("prompt_seconds") or 0.0) + (c.get("generation_seconds") or 0.0) for c in timed)
    return round(total / len(problems), 2)


def format_table(report: CompareReport) -> str:
    """One line per entry; ``*`` marks the frontier."""
    lines = [f"{report.n_problems} problems, up to {report.samples} sample(s) per entry (greedy entries: one)", "",
             f"{'entry':<26}{'method':<18}{'accuracy % (95% CI)':<24}{'completion':>11}{'thinking':>10}"
             f"{'prompt':>9}{'S2 %':>7}{'server s':>10}{'wall s':>9}  frontier"]
    for r in report.entries:
        share = "" if r.system2_share is None else f"{r.system2_share:.0f}"
        server = "" if r.server_seconds is None else f"{r.server_seconds:.1f}"
        failed = f" ({r.n_failed} failed)" if r.n_failed else ""
        lines.append(f"{r.name:<26}{r.family:<18}{f'{r.accuracy:.1f} [{r.low:.1f}, {r.high:.1f}]':<24}"
                     f"{r.completion_tokens:>11.0f}{r.thinking_tokens:>10.0f}{r.prompt_tokens:>9.0f}{share:>7}"
                     f"{server:>10}{r.wall_seconds:>9.0f}  {'*' if r.on_frontier else ''}{failed}")
    lines += ["", "completion, thinking, prompt: mean tokens per problem; server s: the server's own prompt-evaluation",
              "+ generation seconds per problem, cache hits included (the same whether or not the cache was warm);",
              "wall s: the problems' wall time when they ran (near 0 where the response cache answered)"]
    others = [r for r in report.entries if r.family not in REFERENCE_FAMILIES]
    if others and len(others) < len(report.entries):
        lines += ["", "against the CoT / budget-forcing frontier: accuracy points ahead of its best entry at no more "
                  "tokens; the tokens it needs to match"]
        for r in others:
            ahead = "none costs as little" if r.ahead_of_reference is None else f"{r.ahead_of_reference:+.1f} points"
            match = "none matches it" if r.reference_tokens_to_match is None else \
                f"{r.reference_tokens_to_match:.0f} tokens ({r.reference_tokens_to_match - r.completion_tokens:+.0f})"
            lines.append(f"  {r.name:<24}{ahead}; {match}")
    voting = [r for r in report.entries if r.samples_per_vote is not None]
    if voting:
        lines += ["", "votes: samples drawn per vote (share of a fixed vote's samples not drawn), votes per problem"]
        lines += [f"  {r.name:<24}{r.samples_per_vote:.2f} ({100 * (r.samples_saved or 0):.0f} % saved), "
                  f"{r.votes_per_problem:.2f} votes / problem" for r in voting]
    return "\n".join(lines)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
