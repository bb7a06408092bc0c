"""facecore.core.checks: the range, choice and cosine checks every entry point shares, against brute-force tables."""
import itertools
import math

import pytest

from facecore.core.checks import COSINE, Limits, check_cosine, number_problem

NUMBERS = [-math.inf, -2, -1, -0.5, 0, 0.5, 1, 1.5, 2, 7.5, 1e9, math.inf, math.nan]


def _allowed(x, low, high, low_open, zero_ok):
    """The reference rule, written out: finite, and within the bounds (or 0 where 0 is allowed)."""
    if math.isnan(x) or math.isinf(x):
        return False
    if zero_ok and x == 0:
        return True
    above = low is None or (x > low if low_open else x >= low)
    return above and (high is None or x <= high)


@pytest.mark.parametrize("low, high, low_open, zero_ok", list(itertools.product(
    [None, -1, 0, 1], [None, 1, 2], [False, True], [False, True])))
def test_limits_agree_with_the_reference_rule(low, high, low_open, zero_ok):
    lim = Limits(low, high, low_open=low_open and low is not None, zero_ok=zero_ok)
    for x in NUMBERS:
        assert (lim.problem(x) is None) == _allowed(x, low, high, low_open and low is not None, zero_ok), (lim, x)


def test_non_finite_is_never_in_range():
    for x in (math.nan, math.inf, -math.inf):
        assert number_problem(x) == "must be a finite number"
        assert Limits().problem(x) == "must be a finite number"


def test_strings_choices_pattern_nonempty():
    assert Limits(choices=("a", "b")).problem("c") == "must be one of a, b"
    assert Limits(choices=("a", "b")).problem("a") is None
    assert Limits(pattern=r"cpu|cuda(:\d+)?").problem("cuda:1") is None
    assert Limits(pattern=r"cpu|cuda(:\d+)?").problem("gpu")
    assert Limits(nonempty=True).problem("") == "must not be empty"


def test_describe_names_the_range():
    assert Limits(1).describe() == ">= 1"
    assert Limits(0, 10, low_open=True).describe() == "in (0, 10]"
    assert Limits(16, 1024, zero_ok=True).describe() == "in [16, 1024] or 0"
    assert Limits(choices=("x", "y")).describe() == "one of x, y"


@pytest.mark.parametrize("value", [-1, -0.25, 0, 0.4, 1, 1.0])
def test_cosine_accepts_finite_values_in_minus_one_one(value):
    assert check_cosine(value, "threshold") == float(value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 7.5, -1.0001, 1.0001, True, "0.4", None])
def test_cosine_refuses_the_rest_naming_what(value):
    with pytest.raises(ValueError, match=r"^meta threshold .*: must be a cosine similarity, a finite number in \[-1, 1\]$"):
        check_cosine(value, "meta threshold")


def test_cosine_limits_are_minus_one_to_one():
    assert (COSINE.low, COSINE.high) == (-1.0, 1.0)
