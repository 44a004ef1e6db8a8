"""Load benchmarks as ``dspy.Example`` lists: local JSONL first, the Hugging Face Hub otherwise.

Where a benchmark's file is looked for, in order: an explicit ``data_dir``, ``$SCALE_DATA_DIR``,
a ``shared/data`` directory beside the project (``<repo>/../shared/data``, where CI has it), and
last the Hub. Local rows are validated line by line before ``datasets`` reads the file, so a bad
file gives a DataError naming the file, line and field instead of an arrow traceback.

Slices are deterministic: ``limit`` takes the first N rows in file order, or, with ``seed``, the
first N of a seeded shuffle (so a larger limit with the same seed extends a smaller one).
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.errors import DataError
from data.registry import BENCHMARKS, Benchmark, benchmark_names, get_benchmark

if TYPE_CHECKING:  # dspy and datasets are slow to import: only the loaders need them
    import dspy

ENV_DATA_DIR = "SCALE_DATA_DIR"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_ANSWER_FORM = 'a non-empty string such as "204" or "\\frac{1}{2}" (a JSON number is accepted)'
_EXPECTED = {
    "id": 'a non-empty string or an integer, e.g. "aime2024-I-01"',
    "problem": "a non-empty string with the problem statement",
    "answer": _ANSWER_FORM,
}


@dataclass(frozen=True)
class _Row:
    id: str
    problem: str
    answer: str


_cache: dict[tuple[str, int, int], tuple[_Row, ...]] = {}


def _shared_dirs() -> list[Path]:
    return [_PROJECT_ROOT.parent / "shared" / "data", _PROJECT_ROOT / "shared" / "data"]


def find_local_file(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local JSONL file of benchmark ``name``, or None when only the Hub can provide it.

    An explicit ``data_dir`` or ``$SCALE_DATA_DIR`` that lacks the file is an error, not a
    silent fall-back to the network.
    """
    bench = get_benchmark(name)
    for given, source in ((data_dir, "--data-dir"), (os.environ.get(ENV_DATA_DIR), ENV_DATA_DIR)):
        if given:
            directory = Path(given).expanduser()
            if not directory.is_dir():
                raise DataError(f"{source} {directory}: not a directory; expected the folder holding {bench.file}")
            path = directory / bench.file
            if not path.is_file():
                raise DataError(f"{path} not found ({source}); "
                                f"expected {bench.file} for benchmark {name!r} in that folder")
            return path
    for directory in _shared_dirs():
        if (directory / bench.file).is_file():
            return directory / bench.file
    return None


def _field_value(record: dict[str, Any], field: str, where: str) -> str:
    if field not in record or record[field] is None:
        raise DataError(f"{where}: field {field!r} is missing; expected {_EXPECTED[field]}")
    value = record[field]
    ok_types: tuple[type, ...] = (str,) if field == "problem" else (str, int) if field == "id" else (str, int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise DataError(f"{where}: field {field!r} has type {type(value).__name__}; expected {_EXPECTED[field]}")
    text = str(value).strip()  # str() also for numbers: answers are compared as strings
    if not text:
        raise DataError(f"{where}: field {field!r} is empty; expected {_EXPECTED[field]}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a JSON escape such as \ud800: no prompt or file can carry it
        raise DataError(f"{where}: field {field!r} holds invalid Unicode (a lone surrogate escape such as "
                        f"\\ud800); expected {_EXPECTED[field]}") from None
    return text


def validate_jsonl(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Check every line of a benchmark file; return its id/problem/answer as strings.

    Raises DataError naming the file, the line, the field and the expected form.
    """
    path = Path(path)
    rows: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    lines = path.read_bytes().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()  # trailing blank lines are harmless
    if not lines:
        raise DataError(f"{path}: the file is empty; expected one JSON object per line with id, problem and answer")
    for lineno, raw in enumerate(lines, start=1):
        where = f"{path}, line {lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not valid UTF-8 ({exc.reason}); expected UTF-8 JSONL") from None
        if not line.strip():  # datasets' JSON reader fails on blank lines: say where, here
            raise DataError(f"{where}: empty line; expected one JSON object per line, no blank lines")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: malformed JSON ({exc.msg}, column {exc.colno}); expected one JSON object per "
                            'line, e.g. {"id": "x-1", "problem": "...", "answer": "42"}') from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: a JSON {type(record).__name__}, "
                            "expected a JSON object with id, problem and answer")
        row = {field: _field_value(record, field, where) for field in ("id", "problem", "answer")}
        if row["id"] in seen:
            raise DataError(f"{where}: field 'id' value {row['id']!r} repeats line {seen[row['id']]}; "
                            "expected unique ids")
        seen[row["id"]] = lineno
        rows.append(row)
    return rows


def _read_local(path: Path) -> tuple[_Row, ...]:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key in _cache:
        return _cache[key]
    validate_jsonl(path)
    import datasets

    quiet = not datasets.utils.are_progress_bars_disabled()
    if quiet:  # a bar for reading a local file is noise in CLI output
        datasets.utils.disable_progress_bars()
    try:
        table = datasets.load_dataset("json", data_files=str(path), split="train")
        table = table.select_columns(["id", "problem", "answer"])
    except Exception as exc:  # rows passed our checks; what is left is a file datasets cannot read
        raise DataError(f"{path}: datasets could not read the file ({type(exc).__name__}: {exc}); "
                        "expected plain JSONL, one object per line") from exc
    finally:
        if quiet:
            datasets.utils.enable_progress_bars()
    # str() after loading: casting a mixed-type column to string would JSON-quote LaTeX.
    rows = tuple(_Row(str(r["id"]).strip(), str(r["problem"]).strip(), str(r["answer"]).strip())
                 for r in table.to_list())
    _cache[key] = rows
    return rows


def _offline() -> bool:
    flags = (os.environ.get("HF_DATASETS_OFFLINE", ""), os.environ.get("HF_HUB_OFFLINE", ""))
    return any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags)


def _no_copy_message(bench: Benchmark, reason: str) -> str:
    looked = ", ".join(str(d) for d in _shared_dirs())
    return (f"benchmark {bench.name!r}: no local {bench.file} (looked in {looked}) and the Hub is not usable "
            f"({reason}). Either pass --data-dir DIR or set {ENV_DATA_DIR}=DIR to a folder holding {bench.file}, "
            f"or allow network access to the Hugging Face Hub dataset {bench.hub_id}")


def _read_hub(bench: Benchmark) -> tuple[_Row, ...]:
    if _offline():
        raise DataError(_no_copy_message(bench, "offline mode: HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set"))
    import datasets

    try:
        table = datasets.load_dataset(bench.hub_id, bench.hub_config, split=bench.hub_split)
    except Exception as exc:  # network, auth, a renamed dataset: all mean "use a local copy"
        raise DataError(_no_copy_message(bench, f"{type(exc).__name__}: {exc}")) from exc
    rows = []
    for index, record in enumerate(table):
        answer, problem = bench.hub_answer(record), str(record.get(bench.problem_field) or "").strip()
        if answer and problem:  # MATH has a few solutions without a box: they cannot be graded
            rows.append(_Row(bench.hub_id_of(record, index), problem, answer))
    if not rows:
        raise DataError(f"Hub dataset {bench.hub_id} gave no rows with fields {bench.problem_field!r} and "
                        f"{bench.answer_field!r} (its layout may have changed); use a local copy via --data-dir")
    return tuple(rows)


def _rows(name: str, data_dir: str | os.PathLike[str] | None) -> tuple[_Row, ...]:
    path = find_local_file(name, data_dir)
    return _read_local(path) if path is not None else _read_hub(get_benchmark(name))


def _order(size: int, seed: int | None) -> list[int]:
    order = list(range(size))
    if seed is not None:
        random.Random(seed).shuffle(order)
    return order


def _examples(name: str, rows: tuple[_Row, ...], indices: list[int]) -> list[dspy.Example]:
    import dspy

    return [dspy.Example(id=rows[i].id, problem=rows[i].problem, answer=rows[i].answer,
                         benchmark=name).with_inputs("problem") for i in indices]


def _check_count(value: object, label: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DataError(f"`{label}={value!r}` must be an integer >= {minimum}")
    return value


def load_benchmark(name: str, *, data_dir: str | os.PathLike[str] | None = None,
                   limit: int | None = None, seed: int | None = None) -> list[dspy.Example]:
    """Examples of benchmark ``name`` with inputs ``problem`` and label ``answer``.

    >>> exs = load_benchmark("aime24", limit=2)  # doctest: +SKIP
    >>> exs[0].id, exs[0].answer, exs[0].benchmark  # doctest: +SKIP
    ('aime2024-I-01', '204', 'aime24')
    """
    rows = _rows(name, data_dir)
    order = _order(len(rows), seed)
    if limit is not None:
        order = order[:_check_count(limit, "limit", 1)]
    return _examples(name, rows, order)


def dev_split(pool_name: str, n: int, *, seed: int = 0, offset: int = 0,
              data_dir: str | os.PathLike[str] | None = None) -> list[dspy.Example]:
    """``n`` examples of a seeded shuffle of pool ``pool_name``, starting at ``offset``.

    Splits with the same seed and non-overlapping ``[offset, offset + n)`` ranges are disjoint,
    so a train and a dev set can be carved from one pool. Test sets are refused.

    >>> dev = dev_split("gsm8k_train", 20, seed=0)  # doctest: +SKIP
    """
    bench = get_benchmark(pool_name)
    if bench.role != "pool":
        raise DataError(f"{pool_name!r} is a test set; dev splits come from the pools only: "
                        f"{', '.join(benchmark_names('pool'))}")
    _check_count(n, "n", 1)
    _check_count(offset, "offset", 0)
    rows = _rows(pool_name, data_dir)
    if offset + n > len(rows):
        raise DataError(f"dev split {pool_name}: offset {offset} + n {n} exceeds the pool's {len(rows)} rows")
    return _examples(pool_name, rows, _order(len(rows), seed)[offset:offset + n])


def parse_slice(text: str) -> tuple[str, int]:
    """Split ``NAME:N`` (as in ``--dev gsm8k_train:20``) into a known name and a count.

    >>> parse_slice("gsm8k_train:20")
    ('gsm8k_train', 20)
    """
    name, sep, count = str(text).strip().partition(":")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise DataError(f"{text!r}: expected NAME:N with N a positive integer, e.g. gsm8k_train:20 "
                        f"(names: {', '.join(BENCHMARKS)})")
    get_benchmark(name.strip())
    return name.strip(), int(count)
