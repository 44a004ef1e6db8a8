"""What a compile's held-out change says, and the rule that a worse program never looks better.

``judge`` reads the held-out paired difference (after - before): ``worse`` when it is negative,
``better`` when positive. A worse program's metadata carries the verdict, and ``scale compile``
says so first. With ``keep_if_better`` a compile that is not better saves nothing: ``reject``
removes the program files and leaves ``rejected.json`` (the verdict and why), beside the
per-problem evaluation files that show it, so ``load_program`` refuses the directory by name.

Example:
    >>> judge({"heldout_change": {"difference": -6.0, "low": -16.0, "high": 4.0, "n": 50}})["worse"]
    True
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from optimize.compiling.saved import CONFIG_FILE, METADATA_FILE, PROGRAM_FILE, REJECTED_FILE

__all__ = ["judge", "reject"]


def judge(scores: Mapping[str, Any]) -> dict[str, Any]:
    """``{worse, better, difference, low, high, n, note}`` from the held-out change (None values without one).

    Example:
        >>> judge({})["note"]
        'no held-out problems: the change is unknown (pass --val N)'
    """
    change = scores.get("heldout_change")
    if not change:
        return {"worse": None, "better": None, "difference": None, "low": None, "high": None, "n": 0,
                "note": "no held-out problems: the change is unknown (pass --val N)"}
    difference = float(change["difference"])
    interval = f"paired 95 % interval [{change['low']:+.1f}, {change['high']:+.1f}]"
    if difference < 0:
        note = (f"WORSE than the untuned program: held-out accuracy {difference:+.1f} points on {change['n']} "
                f"problems ({interval}).")
    elif difference > 0:
        note = f"held-out accuracy {difference:+.1f} points on {change['n']} problems ({interval})."
    else:
        note = f"no held-out change on {change['n']} problems ({interval})."
    return {"worse": difference < 0, "better": difference > 0, "difference": difference, "low": change["low"],
            "high": change["high"], "n": change["n"], "note": note}


def reject(directory: str | Path, verdict: Mapping[str, Any]) -> Path:
    """Remove the program files of ``directory`` and write ``rejected.json``; returns its path."""
    directory = Path(directory)
    for name in (PROGRAM_FILE, CONFIG_FILE, METADATA_FILE):
        (directory / name).unlink(missing_ok=True)
    path = directory / REJECTED_FILE
    record = {**verdict, "kept": False,
              "why": "--keep-if-better: the compiled program was not better on the held-out problems, so no "
                     "program was saved; eval/ holds the per-problem results that show it."}
    path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return path
