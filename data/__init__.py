"""What a benchmark is and how an answer is judged.

Importing this package is cheap (no dspy, datasets or math-verify at import time), which matters
because the grading worker processes import it too.
"""

from __future__ import annotations

from data.errors import DataError
from data.grading import (
    Grade,
    extract_answer,
    grade,
    grade_answer,
    grader_version,
    last_boxed,
    metric,
    shutdown_grader,
    strip_thinking,
)
from data.loading import dev_split, find_local_file, load_benchmark, parse_slice, validate_jsonl
from data.metrics import accuracy, control, performance, scaling
from data.registry import BENCHMARKS, Benchmark, benchmark_names, get_benchmark

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "DataError",
    "Grade",
    "accuracy",
    "benchmark_names",
    "control",
    "dev_split",
    "extract_answer",
    "find_local_file",
    "get_benchmark",
    "grade",
    "grade_answer",
    "grader_version",
    "last_boxed",
    "load_benchmark",
    "metric",
    "parse_slice",
    "performance",
    "scaling",
    "shutdown_grader",
    "strip_thinking",
    "validate_jsonl",
]
