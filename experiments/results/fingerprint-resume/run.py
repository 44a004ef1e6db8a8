"""Issue 25, item 5's done-when: the recorded comparison resumes under the new fingerprints and asks the model nothing.

Copies experiments/results/compare-gsm8k (recorded before fingerprints left defaults out) into a
temporary folder and runs ``scale compare`` on it through the CLI (every entry, the recorded 50
problems). The embedded server is not started (``ensure_server`` replaced by a no-op context), and
every way out to a model is made to fail AND counted: ``program.clients.transport.chat`` /
``text`` (the one door of every model call, the response cache included) and any socket connect.
It prints the calls counted, each entry's new/resumed count from ``compare.json``'s results, and
exits 1 unless nothing was asked and nothing is new.

    PYTHONPATH=. SCALE_DATA_DIR=/work/shared/data .venv/bin/python experiments/results/fingerprint-resume/run.py
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
RECORDED = ROOT / "experiments" / "results" / "compare-gsm8k"
asked: Counter[str] = Counter()


def refuse(name: str) -> Any:
    def door(*_args: Any, **_kwargs: Any) -> Any:
        asked[name] += 1
        raise RuntimeError(f"{name}: the model must not be asked (results should resume)")
    return door


def main() -> int:
    from optimize.cli import main as cli
    from program.clients import transport
    from program.serving import local

    transport.chat, transport.text = refuse("transport.chat"), refuse("transport.text")
    socket.socket.connect = refuse("socket.connect")  # type: ignore[method-assign]
    local.ensure_server = lambda *_a, **_k: contextlib.nullcontext()  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "compare-gsm8k"
        shutil.copytree(RECORDED, out)
        before = {p.relative_to(out): len(p.read_text().splitlines()) for p in out.glob("*/sample-0/results.jsonl")}
        status = cli(["compare", "--config", str(ROOT / "experiments/local/compare-gsm8k.yaml"), "--limit", "50",
                      "--output", str(out), "--no-progress", "--no-mlflow"])
        after = {p: len((out / p).read_text().splitlines()) for p in before}
        fingerprints = {p: Counter(json.loads(line)["fingerprint"] for line in (out / p).read_text().splitlines())
                        for p in before}
    print(f"exit status {status}; model calls asked: {dict(asked) or 0}")
    for path in sorted(before):
        entry = str(path.parent.parent)
        print(f"{entry:18} lines {before[path]:3} -> {after[path]:3}  fingerprints {dict(fingerprints[path])}")
    return 0 if not asked and status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
