r"""The benchmarks this project knows: where each lives locally and on the Hugging Face Hub.

Local files (``../shared/data`` beside the project, or ``--data-dir``) already hold normalised
``id`` / ``problem`` / ``answer`` fields. Hub rows do not, so each entry says which columns to
read and how to turn a row into the same answer string (``Benchmark.hub_answer``).

>>> get_benchmark("gsm8k").hub_answer({"answer": "Sum: 1,200 + 34\n#### 1,234"})
'1234'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from data.errors import DataError
from data.grading import last_boxed

AnswerType = Literal["integer", "latex"]
Role = Literal["test", "pool"]
AnswerRule = Literal["field", "integer", "gsm8k", "boxed"]


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: a local JSONL file name and the Hub dataset it can also come from.

    ``answer_rule`` says how to get the answer from a Hub row's ``answer_field``:
    "field" as is; "integer" as an integer ("025" -> "25", "27.0" -> "27");
    "gsm8k" the number after ``####`` without thousands commas; "boxed" the last ``\boxed{}``.
    ``id_field`` None means the Hub rows have no id: "<name>-<row index>" is used.
    ``role`` "test" sets are for reporting only; "pool" sets are for tuning and dev splits.
    """

    name: str
    file: str
    hub_id: str
    hub_config: str | None
    hub_split: str
    problem_field: str
    answer_field: str
    id_field: str | None
    answer_rule: AnswerRule
    answer_type: AnswerType
    role: Role
    description: str = ""

    def hub_answer(self, row: dict[str, Any]) -> str:
        """The normalised answer string of one Hub row ("" when the row has none)."""
        raw = row.get(self.answer_field)
        text = "" if raw is None else str(raw).strip()
        if self.answer_rule == "gsm8k":
            text = text.rsplit("####", 1)[1].strip().replace(",", "") if "####" in text else ""
        elif self.answer_rule == "boxed":
            text = last_boxed(text) or ""
        elif self.answer_rule == "integer":
            try:
                number = float(text)
            except ValueError:
                return text
            text = str(int(number)) if number.is_integer() else text
        return text

    def hub_id_of(self, row: dict[str, Any], index: int) -> str:
        """The example id of one Hub row."""
        value = row.get(self.id_field) if self.id_field else None
        return f"{self.name}-{index:04d}" if value is None or str(value) == "" else str(value)


BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in (
    Benchmark("aime24", "aime2024.jsonl", "HuggingFaceH4/aime_2024", None, "train",
              "problem", "answer", "id", "integer", "integer", "test", "AIME 2024 I+II (30)"),
    Benchmark("aime25", "aime2025.jsonl", "math-ai/aime25", None, "test",
              "problem", "answer", "id", "integer", "integer", "test", "AIME 2025 I+II (30)"),
    Benchmark("amc23", "amc2023.jsonl", "math-ai/amc23", None, "test",
              "question", "answer", "id", "integer", "integer", "test", "AMC 12 2023 subset (40)"),
    Benchmark("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", None, "test",
              "problem", "answer", "unique_id", "field", "latex", "test", "MATH-500 (500)"),
    Benchmark("gsm8k", "gsm8k_test.jsonl", "openai/gsm8k", "main", "test",
              "question", "answer", None, "gsm8k", "integer", "test", "GSM8K test (1319)"),
    Benchmark("gsm8k_train", "gsm8k_train.jsonl", "openai/gsm8k", "main", "train",
              "question", "answer", None, "gsm8k", "integer", "pool", "GSM8K train pool (7473)"),
    Benchmark("math_train", "math_train.jsonl", "DigitalLearningGmbH/MATH-lighteval", "default", "train",
              "problem", "solution", None, "boxed", "latex", "pool", "MATH train pool (~7500)"),
)}


def benchmark_names(role: Role | None = None) -> list[str]:
    """Known benchmark names, optionally only those with ``role``.

    >>> benchmark_names("pool")
    ['gsm8k_train', 'math_train']
    """
    return [name for name, b in BENCHMARKS.items() if role is None or b.role == role]


def get_benchmark(name: str) -> Benchmark:
    """The registry entry called ``name``; DataError listing the known names otherwise.

    >>> get_benchmark("math500").answer_type
    'latex'
    """
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise DataError(f"unknown benchmark {name!r}; known benchmarks: {', '.join(BENCHMARKS)}") from None
