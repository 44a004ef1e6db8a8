r"""Bad model replies, on purpose: a seeded generator for fuzzing every stage that reads model text.

A small model or a broken server can send anything: nothing at all, half a JSON list, an essay
where a number belongs, a score of 7, a 100,000-character ramble, an answer without its box,
thinking that never ends, random Unicode (lone surrogates included: JSON can carry them), or the
format markers of another field. ``Garbage(seed)`` makes such replies reproducibly, by kind, so a
test can feed them to a stage and check that each one is either used as documented (a score of 7
is asked again, as unreadable) or recorded as a failure with its reason, and never crashes the run.

Kinds are listed in ``KINDS`` (name -> what it imitates). ``batch(n)`` cycles through every kind
once before drawing at random, so even a short batch covers them all. ``responder()`` is a
``program.testing`` responder (messages -> text) that serves a fresh bad reply per call and keeps
what it served in ``served``.

Example:
    >>> g = Garbage(seed=0)
    >>> g.make("empty").text
    ''
    >>> [r.kind for r in Garbage(seed=1).batch(3)] == list(KINDS)[:3]
    True
    >>> len(g.make("huge").text) >= 100_000
    True
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["BadReply", "Garbage", "KINDS", "NUMBER_FREE"]

KINDS: dict[str, str] = {
    "empty": "an empty reply",
    "whitespace": "only spaces, tabs and newlines",
    "truncated_json": "a JSON list or object cut off mid-way (a max_tokens cut)",
    "wrong_json_type": "valid JSON of the wrong shape (a string score, null steps, nested junk)",
    "prose": "prose where a number or a list belongs, with no digit in it",
    "score_out_of_range": "a score such as 7, -1, 150% or 10 out of 10",
    "nan_inf": "NaN, inf, 1e999 and friends",
    "malformed_number": "0.5.5, 0,5, --0.4, a lone dot, a fraction in words",
    "huge": "a reply of at least 100,000 characters",
    "huge_number": "a number (or a boxed answer) with thousands of digits",
    "missing_box": "a solution that never writes \\boxed{}",
    "broken_box": "an unbalanced or empty \\boxed{",
    "unterminated_think": "a <think> section that is never closed",
    "stray_think_tags": "closing or nested think tags in odd places",
    "random_unicode": "random code points: emoji, RTL marks, zero-width joiners, NUL, lone surrogates",
    "control_chars": "ANSI escapes, NUL bytes, form feeds, carriage returns",
    "other_field_markers": "DSPy [[ ## field ## ]] markers and labels of other stages",
    "markdown_noise": "empty code fences, bare headings and bold labels",
    "repetition": "a degenerate loop: the same word thousands of times",
    "injection": "template and markup injection attempts",
}

# Kinds whose text holds no ASCII digit at all: no stage can read a number from them.
NUMBER_FREE = frozenset({"empty", "whitespace", "prose", "repetition"})

_WORDS = ("the", "step", "number", "hmm", "so", "therefore", "apples", "maybe", "total", "wait", "let",
          "us", "consider", "carefully", "answer", "is", "not", "clear", "yet")
_PROSE = (
    "This sub-problem looks fairly easy for a student who knows fractions.",
    "I would rate it as moderately hard, because it needs several careful steps.",
    "Honestly it depends on the reader; some would find it trivial and others would not.",
    "Hard.",
    "Easy peasy!",
    "The difficulty is low to medium.",
    "I cannot rate this without more context about the problem.",
    "First find the eggs, then the money, then the answer.",
)


@dataclass(frozen=True)
class BadReply:
    """One bad reply and the kind it was made as."""

    kind: str
    text: str


@dataclass
class Garbage:
    """A reproducible source of bad replies (``random.Random(seed)``)."""

    seed: int = 0
    huge_chars: int = 100_000
    served: list[BadReply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._cycle = 0

    # -- public ---------------------------------------------------------------------------------
    def make(self, kind: str | None = None) -> BadReply:
        """One bad reply of ``kind`` (random kind when None)."""
        kind = kind or self.rng.choice(list(KINDS))
        if kind not in KINDS:
            raise ValueError(f"`kind={kind!r}` must be one of {', '.join(KINDS)}.")
        return BadReply(kind, getattr(self, f"_{kind}")())

    def batch(self, n: int, kinds: Iterable[str] | None = None) -> list[BadReply]:
        """``n`` bad replies: every kind of ``kinds`` (default all) once, then random ones."""
        names = list(kinds or KINDS)
        out = [self.make(names[i]) for i in range(min(n, len(names)))]
        out += [self.make(self.rng.choice(names)) for _ in range(n - len(out))]
        return out

    def next(self, kinds: Iterable[str] | None = None) -> BadReply:
        """The next reply of an endless stream that covers every kind first; recorded in ``served``."""
        names = list(kinds or KINDS)
        kind = names[self._cycle] if self._cycle < len(names) else self.rng.choice(names)
        self._cycle += 1
        reply = self.make(kind)
        self.served.append(reply)
        return reply

    def responder(self, kinds: Iterable[str] | None = None) -> Callable[[list[dict[str, str]]], str]:
        """A ``program.testing`` responder serving ``next(kinds).text`` to every request."""
        names = list(kinds or KINDS)
        return lambda messages: self.next(names).text

    # -- the kinds -----------------------------------------------------------------------------
    def _pick(self, options: tuple[str, ...] | list[str]) -> str:
        return self.rng.choice(list(options))

    def _empty(self) -> str:
        return ""

    def _whitespace(self) -> str:
        return "".join(self.rng.choice(" \t\n\r") for _ in range(self.rng.randint(1, 40)))

    def _truncated_json(self) -> str:
        whole = self._pick([
            json.dumps(["Find the number of eggs left.", "Find the money earned.", "Find the total."]),
            json.dumps({"steps": ["Find A, call it A.", "Find B.", "Find the sum of A and B."]}),
            json.dumps({"score": 0.35, "reason": "simple arithmetic"}),
            json.dumps({"step1": "Find x.", "step2": "Find y."}),
            json.dumps({"best": 2, "why": "clearest"}),
        ])
        return whole[: self.rng.randint(1, len(whole) - 2)]

    def _wrong_json_type(self) -> str:
        return self._pick([
            '{"score": "high"}', '{"score": null}', "null", "true", "[]", "{}", '{"steps": "just one string"}',
            '{"steps": [null, 3, {"x": []}]}', '[[[[[]]]]]', '{"best": "the second one"}', '"0.4"',
            '{"a": {"b": {"c": {"d": {}}}}}',
        ])

    def _prose(self) -> str:
        return self._pick(_PROSE)

    def _score_out_of_range(self) -> str:
        return self._pick(["7", "-1", "Score: 7", "-1.0", "1.5", "100", "150%", "10 out of 10", "3/2", "42",
                           "Difficulty: 9", "-0.5"])

    def _nan_inf(self) -> str:
        return self._pick(["NaN", "nan", "inf", "-inf", "Infinity", "1e999", "-1e999", "NaN%", "∞"])

    def _malformed_number(self) -> str:
        return self._pick(["0.5.5", "0,5", "--0.4", ".", "0.3e", "1..2", "½", "zero point five", "0x1F",
                           "+-0.2", "0.4.", "1/0", "0/0", "e", "—"])

    def _huge(self) -> str:
        size = self.huge_chars
        shape = self.rng.randrange(4)
        if shape == 0:  # rambling prose
            words: list[str] = []
            length = 0
            while length < size:
                word = self.rng.choice(_WORDS)
                words.append(word)
                length += len(word) + 1
            return " ".join(words)
        if shape == 1:  # a very long numbered list
            lines = [f"{i % 99 + 1}. Find quantity number {i}." for i in range(size // 25 + 1)]
            return "\n".join(lines)
        if shape == 2:  # one giant line of JSON-ish noise
            return "[" + ",".join('"x"' for _ in range(size // 4 + 1)) + "]"
        return "Let me think. " * (size // 14 + 1) + "\\boxed{7}"

    def _huge_number(self) -> str:
        digits = "".join(self.rng.choice("0123456789") for _ in range(self.rng.randint(4400, 6000)))
        digits = "9" + digits  # no leading zero
        return self._pick([digits, f"\\boxed{{{digits}}}", f"Score: 0.{digits}", f"Candidate {digits}"])

    def _missing_box(self) -> str:
        return self._pick([
            "3 + 4 = 7, so the total is 7 apples.",
            "The answer is probably 42 but I am not sure.",
            "Final Answer 12",
            "We get x = 5.",
            "boxed 7",
            "\\box{7}",
        ])

    def _broken_box(self) -> str:
        return self._pick(["\\boxed{12", "\\boxed{", "\\boxed{}", "\\boxed{\\frac{1}{2}", "\\boxed}7{",
                           "\\boxed{ }", "\\fbox{", "So \\boxed{{{{7}"])

    def _unterminated_think(self) -> str:
        return self._pick([
            "<think>Let me think about this. The answer might be \\boxed{5}",
            "<think>",
            "<think>0.4",
            "<think>1. Find A.\n2. Find B.",
            "Sure. <think>hmm, wait, wait",
        ])

    def _stray_think_tags(self) -> str:
        return self._pick(["</think>", "</think></think>", "<think><think>a</think>b", "</think>\\boxed{3}<think>",
                           "<THINK>0.2</THINK>", "<think></think>", "text</think>more</think>"])

    def _random_unicode(self) -> str:
        pools = ("\u200b\u200d\u200e\u200f\u202e\ufeff", "😀🧮🔥👍🏽", "数学问题答案", "مرحبا", "é́̃", "\x00",
                 "\ud800\udfff\udbff", "\U0010fffd")
        return "".join(self.rng.choice(self.rng.choice(pools)) for _ in range(self.rng.randint(1, 60)))

    def _control_chars(self) -> str:
        return self._pick(["\x1b[31m0.4\x1b[0m", "\x00\x00\x00", "\f\v\r", "1.\x08 Find A.\r\n2.\x07 Find B.",
                           "\x1b]0;title\x07", "\r\\boxed{7}\r"])

    def _other_field_markers(self) -> str:
        return self._pick([
            "[[ ## steps ## ]]\n1. Find A.\n\n[[ ## completed ## ]]",
            "[[ ## score ## ]]\n0.4\n\n[[ ## completed ## ]]",
            "[[ ## completed ## ]]",
            "[[ ## solution ## ]]\n",
            "Conditions: there are apples.\nQuestion: how many?",
            "Summary:\n- nothing yet",
            "Candidate 2:\n  1. Find A.",
            "[[ ## best ## ]]\nthe first\n[[ ## completed ## ]]",
            "Reasoning: Let's think step by step in order to",
        ])

    def _markdown_noise(self) -> str:
        return self._pick(["```json\n```", "```", "### Step", "**Answer:**", "---", "| a | b |\n|---|---|",
                           "* \n* \n*", "1.\n2.\n3."])

    def _repetition(self) -> str:
        return (self._pick(["Wait, ", "hmm ", "so so so ", "and then "]) * self.rng.randint(200, 3000)).strip()

    def _injection(self) -> str:
        return self._pick(["{{7*7}}", "{% for x in range(10**9) %}{% endfor %}", "<script>alert(1)</script>",
                           "${jndi:ldap://x}", "'; DROP TABLE results; --", "__import__('os').system('id')",
                           "{{ ''.__class__.__mro__[1].__subclasses__() }}"])
