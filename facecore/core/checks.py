"""The value checks every entry point shares: a number's range, a name among choices, a cosine threshold.

``Limits`` describes what a value may be; ``Limits.problem(value)`` says what is wrong with one (None
when it is fine), so each caller can name the file, argument or setting in its own one-line error.
Non-finite numbers (NaN, +-inf) are never in range. Base layer: imports nothing from facecore.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What a value may be. ``low``/``high``: inclusive bounds (``low_open``: ``low`` itself excluded);
    ``zero_ok``: 0 is also allowed (it means "default" or "off"); ``choices``: the names allowed;
    ``pattern``: a regular expression the whole string must match; ``nonempty``: a string must not be ""."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    zero_ok: bool = False
    choices: tuple[str, ...] = ()
    pattern: str = ""
    nonempty: bool = False

    def problem(self, value: object) -> str | None:
        """What is wrong with ``value`` ("must be ..."), or None when it is allowed."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.zero_ok and value == 0:
                return None
            return number_problem(value, self.low, self.high, self.low_open, self.zero_ok)
        if isinstance(value, str):
            if self.choices and value not in self.choices:
                return f"must be one of {', '.join(self.choices)}"
            if self.pattern and not re.fullmatch(self.pattern, value):
                return f"must match {self.pattern}"
            if self.nonempty and not value:
                return "must not be empty"
        return None

    def describe(self) -> str:
        """The range in words (for help texts): '>= 1', 'in [0, 1]', 'one of a, b', ''."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.low is None and self.high is None:
            return ""
        lo = "(" if self.low_open else "["
        text = (f"{'>' if self.low_open else '>='} {self.low:g}" if self.high is None
                else f"<= {self.high:g}" if self.low is None else f"in {lo}{self.low:g}, {self.high:g}]")
        return text + (" or 0" if self.zero_ok else "")


def number_problem(value: float, low: float | None = None, high: float | None = None, low_open: bool = False,
                   zero_ok: bool = False) -> str | None:
    """What is wrong with a number: not finite, or outside ``low``..``high`` (None when it is fine)."""
    if not math.isfinite(value):
        return "must be a finite number"
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        return "must be " + Limits(low, high, low_open, zero_ok).describe()
    return None


COSINE = Limits(-1.0, 1.0)


def check_cosine(value: object, what: str) -> float:
    """``value`` as a float when it is a cosine-similarity threshold (a finite number in [-1, 1]);
    otherwise ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or COSINE.problem(value):
        raise ValueError(f"{what} {value!r}: must be a cosine similarity, a finite number in [-1, 1]")
    return float(value)
