"""The names a config may choose from: each set of names written once, as a ``Literal`` and its tuple.

The config types its fields with the ``Literal``s and checks values against the tuples; the
registries that map a name to its class (``program.scale.sources.SOURCES``,
``program.methods.METHOD_REGISTRY``) and the search space's options use the same tuples, and
tests/unit/test_registries.py checks that each registry holds exactly these names. This module
imports nothing of the project, so the config can use it without importing the sources (that
would be a circle: the sources read the config).

Example:
    >>> DIFFICULTY_SOURCES
    ('rating', 'rating_logprobs', 'attempt', 'learned')
    >>> "cascade" in METHODS
    True
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["Method", "METHODS", "DifficultySourceName", "DIFFICULTY_SOURCES", "AttemptConfidence",
           "ATTEMPT_CONFIDENCES", "System2Kind", "SYSTEM2_KINDS", "DifficultyMode", "DIFFICULTY_MODES",
           "ContextKind", "CONTEXTS", "StepLayout", "STEP_LAYOUTS", "ROUTED_METHODS", "ForcingTransport",
           "FORCING_TRANSPORTS"]

Method = Literal["scale", "cot", "vote", "inftythink", "bf", "system1", "system2", "cascade"]
METHODS: tuple[str, ...] = get_args(Method)
ROUTED_METHODS: tuple[str, ...] = ("scale", "cascade")  # the methods that score steps with a difficulty source

DifficultySourceName = Literal["rating", "rating_logprobs", "attempt", "learned"]
DIFFICULTY_SOURCES: tuple[str, ...] = get_args(DifficultySourceName)

AttemptConfidence = Literal["length", "deepconf", "mean_logprob", "agreement"]
ATTEMPT_CONFIDENCES: tuple[str, ...] = get_args(AttemptConfidence)

System2Kind = Literal["think", "vote"]
SYSTEM2_KINDS: tuple[str, ...] = get_args(System2Kind)

DifficultyMode = Literal["upfront", "solved_context"]
DIFFICULTY_MODES: tuple[str, ...] = get_args(DifficultyMode)

ContextKind = Literal["full", "final_value"]
CONTEXTS: tuple[str, ...] = get_args(ContextKind)

StepLayout = Literal["conditions", "problem"]
STEP_LAYOUTS: tuple[str, ...] = get_args(StepLayout)

ForcingTransport = Literal["completions", "prefill"]
FORCING_TRANSPORTS: tuple[str, ...] = get_args(ForcingTransport)
