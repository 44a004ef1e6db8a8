"""Latency of one problem, its calls sent one at a time vs at once (issue 24), side by side in one sitting.

NOT RUN YET: it needs a multi-slot server (``llama-server --parallel 4``, the embedded engine
once ``scale serve`` starts it; or any vLLM / SGLang server), which this script does not start.

For each of the first ``--problems`` GSM8K test problems (default 1: the latency of *one*
problem), ``--repeats`` times, both sides back to back, their order alternating per repeat (the
side that runs second finds the server warm and its prompt cache holding the problem):

- **vote**: the entry ``vote-5-adaptive`` of experiments/local/compare-gsm8k.yaml (5 samples,
  adaptive, 768-token cap) on System 1. Goal: concurrent <= 0.55x sequential with 4 slots;
- **scale**: the entry ``scale-rating`` with ``num_candidates`` = ``--k`` (4): its planning phase
  (the k candidates, the selection, the up-front ratings), goal <= 0.5x, and then the steps; the
  whole problem's ratio (plan + steps) is reported beside it, without a goal.

``sequential`` is ``max_concurrency: 1``: exactly the calls of the engine before concurrency.
``concurrent`` leaves it out, so the limit is the server's slot count (``GET /props``
``total_slots``), or ``--slots N`` for a server that reports none. The response cache is off
(both sides pay for every call). One untimed CoT call on the problem first loads the model.

Resumable: each (problem, repeat, side) is one JSON file ``runs/<id>/r<repeat>-<side>.json``
(written whole, then renamed), holding its config, the command, the server, the wall times, the
answers, the traces and ledger totals of each part. A file already there with the same config is
kept, so an interrupted sitting goes on where it stopped; one with another config stops the script
(use another ``--out``). ``summary.json`` is rebuilt from every run file at the end, or alone with
``--summarize``.

    LITELLM_LOCAL_MODEL_COST_MAP=True SCALE_DATA_DIR=/work/shared/data .venv/bin/python \\
        experiments/results/concurrency-latency/latency.py --api-base http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

from data.loading import load_benchmark  # noqa: E402
from optimize.experiment import experiment_from_dict  # noqa: E402
from program.clients import limits, servers, transport  # noqa: E402
from program.clients.lm import build_systems  # noqa: E402
from program.config import ProgramConfig  # noqa: E402
from program.config_data import to_dict  # noqa: E402
from program.ledger import Ledger, recording  # noqa: E402
from program.methods import build_program  # noqa: E402
from program.scale import Scale  # noqa: E402

COMPARE = ROOT / "experiments/local/compare-gsm8k.yaml"
VOTE_ENTRY, SCALE_ENTRY = "vote-5-adaptive", "scale-rating"
SIDES = ("sequential", "concurrent")
GOALS = {"vote": 0.55, "plan": 0.5}  # issue 24's latency goals (concurrent / sequential wall time)


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, mapping by mapping (as compare entries override the file)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def program_config(entry_name: str, args: argparse.Namespace, max_concurrency: int | None,
                   **changes: dict[str, Any]) -> ProgramConfig:
    """The compare entry ``entry_name`` of compare-gsm8k.yaml, on ``--api-base`` with ``max_concurrency``."""
    raw = yaml.safe_load(COMPARE.read_text(encoding="utf-8"))
    entry = next(e for e in raw["compare"]["entries"] if e["name"] == entry_name)
    endpoint = {"api_base": args.api_base, "max_concurrency": max_concurrency}
    data = {"method": entry["method"],
            "lm": merged(merged(raw["lm"], entry.get("lm", {})), {"endpoint": endpoint}),
            "scale": merged(merged(raw.get("scale", {}), entry.get("scale", {})), changes.get("scale", {})),
            "vote": merged(raw.get("vote", {}), entry.get("vote", {}))}
    return experiment_from_dict(data, where=f"{COMPARE.name}: {entry_name}").program


def side_limit(side: str, args: argparse.Namespace) -> int | None:
    return 1 if side == "sequential" else args.slots


def configs(side: str, args: argparse.Namespace) -> dict[str, ProgramConfig]:
    limit = side_limit(side, args)
    return {"vote": program_config(VOTE_ENTRY, args, limit),
            "scale": program_config(SCALE_ENTRY, args, limit, scale={"num_candidates": args.k})}


def timed(run: Callable[[], Any]) -> tuple[float, Any, Ledger]:
    """Wall seconds of ``run()``, its result and the ledger of its calls."""
    book = Ledger()
    started = time.monotonic()
    with recording(book):
        out = run()
    return round(time.monotonic() - started, 3), out, book


def part(seconds: float, book: Ledger, **fields: Any) -> dict[str, Any]:
    return {"seconds": seconds, **fields, "ledger": book.totals(), "calls": book.to_records()}


def measure(problem: str, side: str, args: argparse.Namespace) -> dict[str, Any]:
    """One side on one problem: the vote, then SCALE's plan and its steps."""
    limits.forget()  # the first endpoint naming a server sets its limit: this side's must
    made = configs(side, args)
    systems = build_systems(made["vote"].lm)
    limiter = limits.limiter_for(made["vote"].lm.endpoint)
    identity = servers.identity(made["vote"].lm.endpoint)
    vote = build_program(made["vote"], systems)
    seconds, prediction, book = timed(lambda: vote(problem=problem))
    record: dict[str, Any] = {
        "limit": limiter.limit, "server": {"kind": identity.kind, "version": identity.version,
                                           "slots": identity.slots},
        "vote": part(seconds, book, answer=prediction.answer, samples_used=prediction.trace["samples_used"],
                     rounds=prediction.trace.get("rounds"), extra_samples=prediction.trace.get("extra_samples", 0),
                     trace=prediction.trace)}
    scale = build_program(made["scale"], systems)
    assert isinstance(scale, Scale)
    plan_seconds, plan, plan_book = timed(lambda: scale.plan(problem))
    steps_seconds, solved, steps_book = timed(lambda: scale.solve(problem, plan))
    record["plan"] = part(plan_seconds, plan_book, steps=plan.steps, plan=plan.to_dict())
    record["steps"] = part(steps_seconds, steps_book, answer=solved.answer, trace=solved.trace)
    record["scale"] = {"seconds": round(plan_seconds + steps_seconds, 3), "answer": solved.answer}
    return record


def config_key(args: argparse.Namespace, side: str) -> str:
    """What a run's numbers depend on, hashed: runs made otherwise are not mixed into one summary."""
    made = {name: to_dict(c) for name, c in configs(side, args).items()}
    text = json.dumps({"programs": made, "api_base": args.api_base, "benchmark": "gsm8k"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_whole(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


def warm_up(problem: str, args: argparse.Namespace) -> float:
    """One untimed-in-the-results CoT call on the problem: the model is loaded before the first side."""
    limits.forget()
    config = program_config(VOTE_ENTRY, args, 1)
    cot = build_program(ProgramConfig(method="cot", lm=config.lm))
    started = time.monotonic()
    cot(problem=problem)
    return round(time.monotonic() - started, 3)


def check_slots(args: argparse.Namespace) -> None:
    """Stop before measuring when the concurrent side would send one call at a time (no slots known)."""
    limits.forget()
    endpoint = configs("concurrent", args)["vote"].lm.endpoint
    if limits.limiter_for(endpoint).width < 2:
        sys.exit(f"The server at {args.api_base} reports no slot count (kind {servers.identity(endpoint).kind}), "
                 "so the concurrent side would send one call at a time. Pass --slots N (its --parallel).")


def run(args: argparse.Namespace) -> None:
    transport.set_cache_enabled(False)  # both sides pay for every call
    check_slots(args)
    keys = {side: config_key(args, side) for side in SIDES}
    command = " ".join([sys.executable, *sys.argv])
    for example in load_benchmark("gsm8k", limit=args.problems):
        problem_id = str(example.id)
        warmed = False
        for repeat in range(args.repeats):
            order = SIDES if repeat % 2 == 0 else SIDES[::-1]
            for position, side in enumerate(order):
                path = args.out / "runs" / problem_id / f"r{repeat}-{side}.json"
                if path.exists():
                    found = json.loads(path.read_text(encoding="utf-8"))
                    if found.get("config_key") != keys[side]:
                        sys.exit(f"{path} was made with another config ({found.get('config_key')} != {keys[side]}); "
                                 "pass another --out, or remove that directory to measure again.")
                    continue
                if not warmed:
                    print(json.dumps({"id": problem_id, "warm_up_seconds": warm_up(example.problem, args)}), flush=True)
                    warmed = True
                record = measure(example.problem, side, args)
                write_whole(path, {
                    "id": problem_id, "repeat": repeat, "side": side, "position": position, "config_key": keys[side],
                    "config": {name: to_dict(c) for name, c in configs(side, args).items()},
                    "command": command, "commit": git_commit(), "machine": platform.platform(),
                    "finished": datetime.now(UTC).isoformat(timespec="seconds"), **record})
                print(json.dumps({"id": problem_id, "repeat": repeat, "side": side, "limit": record["limit"],
                                  **{p: record[p]["seconds"] for p in ("vote", "plan", "scale")}}), flush=True)


def summarize(out: Path) -> dict[str, Any]:
    """Ratios of concurrent to sequential wall time over every (problem, repeat) with both sides recorded."""
    runs: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for path in sorted((out / "runs").glob("*/r*-*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        runs.setdefault((record["id"], record["repeat"]), {})[record["side"]] = record
    pairs = [sides for sides in runs.values() if set(sides) == set(SIDES)]
    if not pairs:
        raise SystemExit(f"No (problem, repeat) under {out / 'runs'} has both sides recorded yet.")

    def ratio(name: str, pick: list[dict[str, dict[str, Any]]]) -> float | None:
        sequential = sum(p["sequential"][name]["seconds"] for p in pick)
        return round(sum(p["concurrent"][name]["seconds"] for p in pick) / sequential, 3) if sequential else None

    summary: dict[str, Any] = {"pairs": len(pairs), "slots": sorted({p["concurrent"]["limit"] for p in pairs}),
                               "server": pairs[0]["concurrent"]["server"], "commits": sorted(
                                   {p[s]["commit"] for p in pairs for s in SIDES}), "parts": {}}
    for name in ("vote", "plan", "scale"):
        summary["parts"][name] = {
            "ratio": ratio(name, pairs),  # total concurrent seconds / total sequential seconds
            "ratio_when_sequential_first": ratio(name, [p for p in pairs if p["sequential"]["position"] == 0]),
            "ratio_when_concurrent_first": ratio(name, [p for p in pairs if p["concurrent"]["position"] == 0]),
            "median_seconds": {s: statistics.median(p[s][name]["seconds"] for p in pairs) for s in SIDES},
            "goal": GOALS.get(name)}
        goal, got = GOALS.get(name), summary["parts"][name]["ratio"]
        summary["parts"][name]["met"] = None if goal is None or got is None else got <= goal
    summary["vote_extra_samples"] = sum(p["concurrent"]["vote"]["extra_samples"] for p in pairs)
    summary["answers_changed"] = {name: sum(p["sequential"][name]["answer"] != p["concurrent"][name]["answer"]
                                            for p in pairs) for name in ("vote", "scale")}
    summary["tokens"] = {s: {name: sum(p[s][name]["ledger"]["completion_tokens"] for p in pairs)
                             for name in ("vote", "plan", "steps")} for s in SIDES}
    write_whole(out / "summary.json", summary)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--api-base", help="the running server, e.g. http://127.0.0.1:8765/v1")
    parser.add_argument("--problems", type=int, default=1, help="first N GSM8K test problems (default 1)")
    parser.add_argument("--repeats", type=int, default=4, help="pairs per problem, order alternating (default 4)")
    parser.add_argument("--k", type=int, default=4, help="SCALE's decomposition candidates (default 4)")
    parser.add_argument("--slots", type=int, default=None,
                        help="max_concurrency of the concurrent side (default: the server's reported slots)")
    parser.add_argument("--out", type=Path, default=HERE, help="where runs/ and summary.json go (default: here)")
    parser.add_argument("--summarize", action="store_true", help="only rebuild summary.json from the run files")
    args = parser.parse_args()
    if not args.summarize:
        if not args.api_base:
            parser.error("--api-base is required (the multi-slot server to measure), unless --summarize")
        for name in ("problems", "repeats", "k", "slots"):
            value = getattr(args, name)
            if value is not None and value < 1:
                parser.error(f"--{name} must be at least 1, got {value}")
        run(args)
    print(json.dumps(summarize(args.out), indent=1))


if __name__ == "__main__":
    main()
