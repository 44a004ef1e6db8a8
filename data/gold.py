r"""Gold worked solutions: a benchmark row's ``solution``, and GSM8K's turned into a plain boxed reply.

GSM8K ships a worked solution for every problem: lines of reasoning with calculator marks
(``48/2 = <<48/2=24>>24``) and a last line ``#### 72``. ``gold_reply`` turns one into the reply a
solver prompt asks for (reasoning, then the answer in ``\boxed{}``): the marks go, the ``####`` line
becomes ``The answer is \boxed{72}.`` (the row's normalised answer, without thousands commas).

The solutions are read from the benchmark's local JSONL file (``data.loading.find_local_file``);
only local copies carry them as this project stores them.

Example:
    >>> print(gold_reply("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 24", "24"))
    Natalia sold 48/2 = 24 clips in May.
    The answer is \boxed{24}.
"""

from __future__ import annotations

import json
import os
import re

from data.errors import DataError
from data.loading import find_local_file

__all__ = ["gold_reply", "gold_solutions"]

_CALCULATOR = re.compile(r"<<[^<>]*>>")
_FINAL = re.compile(r"^\s*####.*$", re.M)


def gold_reply(solution: str, answer: str) -> str:
    r"""A GSM8K gold solution as a solver's reply: no calculator marks, the answer boxed.

    Raises:
        DataError: the solution has no ``####`` answer line (not a GSM8K worked solution).

    Example:
        >>> gold_reply("2 + 3 = <<2+3=5>>5\n#### 5", "5")
        '2 + 3 = 5\nThe answer is \\boxed{5}.'
    """
    if not _FINAL.search(solution):
        raise DataError(f"not a GSM8K worked solution (no '#### answer' line): {solution[:80]!r}")
    reasoning = _FINAL.sub("", _CALCULATOR.sub("", solution)).strip()
    lines = [line.rstrip() for line in reasoning.splitlines() if line.strip()]
    return "\n".join([*lines, f"The answer is \\boxed{{{answer}}}."])


def gold_solutions(name: str, *, data_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """The ``solution`` of every row of benchmark ``name``'s local file, by id (rows without one left out).

    Raises:
        DataError: no local file (the Hub copy is not read here), or no row has a solution.

    Example:
        >>> len(gold_solutions("gsm8k_train"))  # doctest: +SKIP
        7473
    """
    path = find_local_file(name, data_dir)
    if path is None:
        raise DataError(f"benchmark {name!r}: gold solutions are read from its local file, and none was found; "
                        "pass --data-dir DIR or set SCALE_DATA_DIR to the folder holding it.")
    solutions: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {lineno}: malformed JSON ({exc.msg})") from None
        solution = row.get("solution") if isinstance(row, dict) else None
        if isinstance(solution, str) and solution.strip():
            solutions[str(row["id"]).strip()] = solution
    if not solutions:
        raise DataError(f"{path}: no row has a `solution` field, so there are no gold worked solutions to use as "
                        "demos; use a file that keeps them (GSM8K train does) or leave `gold_demos` at 0.")
    return solutions
