"""How many samples the votes of an entry drew: what adaptive stopping saved.

A vote records ``samples_used`` and ``samples_max`` in the trace: the ``vote`` baseline once per
problem, SCALE and the cascade once per step escalated to a System 2 vote (``steps[i].vote``).

Example:
    >>> vote_usage([{"method": "vote", "samples_used": 3, "samples_max": 5},
    ...             {"steps": [{"vote": {"samples_used": 5, "samples_max": 5}}, {"vote": None}]}])
    VoteUsage(votes=2, used=8, possible=10)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["VoteUsage", "vote_usage"]


@dataclass(frozen=True)
class VoteUsage:
    """Votes taken, samples drawn, and samples a fixed vote would have drawn."""

    votes: int
    used: int
    possible: int

    @property
    def mean_used(self) -> float:
        """Samples drawn per vote."""
        return self.used / self.votes if self.votes else 0.0

    @property
    def saved(self) -> float:
        """Share of a fixed vote's samples that were not drawn (0 without votes)."""
        return 1 - self.used / self.possible if self.possible else 0.0


def vote_usage(traces: Iterable[Mapping[str, Any] | None]) -> VoteUsage:
    """Sum the votes found in ``traces`` (one per problem; traces without votes add nothing)."""
    votes = used = possible = 0
    for trace in traces:
        for record in _votes(trace or {}):
            votes += 1
            used += int(record["samples_used"])
            possible += int(record["samples_max"])
    return VoteUsage(votes, used, possible)


def _votes(trace: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "samples_used" in trace:  # the vote baseline: the whole problem is one vote
        return [trace]
    return [step["vote"] for step in trace.get("steps") or [] if isinstance(step, Mapping) and step.get("vote")]
