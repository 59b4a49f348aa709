"""The judge's comparison rule (core/envelope.py `same_output`), case by case."""

from __future__ import annotations

import pytest

from monaco.core.envelope import first_difference, judged, same_output
from monaco.core.models import Outcome, Verdict


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        ("144\n", "144"),
        ("144", "144\n"),
        ("1 2 3   \n4\t\n", "1 2 3\n4\n"),
        ("a\r\nb\r\n", "a\nb\n"),
        ("a\n\n\n", "a"),
        ("a\n  \n\t\n", "a\n"),
        ("", ""),
        ("\n\n", ""),
    ],
)
def test_equal_up_to_trailing_whitespace(actual: str, expected: str) -> None:
    assert same_output(actual, expected) and same_output(expected, actual)


@pytest.mark.parametrize(
    ("actual", "expected", "line"),
    [
        ("145\n", "144\n", 1),
        (" 144\n", "144\n", 1),  # leading whitespace counts
        ("a\n\nb\n", "a\nb\n", 2),  # a blank line between others counts
        ("a\nb\n", "a\n", 2),
        ("a b\n", "a  b\n", 1),  # whitespace inside a line counts
        ("", "0", 1),
    ],
)
def test_different(actual: str, expected: str, line: int) -> None:
    assert not same_output(actual, expected)
    assert first_difference(actual, expected) == line


def test_only_an_ok_run_becomes_wrong_answer() -> None:
    ok = Outcome(verdict=Verdict.OK, output="1\n")
    assert judged(ok, None) is ok and judged(ok, "1") is ok
    wrong = judged(ok, "2")
    assert wrong.verdict is Verdict.WRONG_ANSWER and wrong.status.value == "failed" and "line 1" in wrong.message
    crashed = Outcome(verdict=Verdict.RUNTIME_ERROR, output="1\n")
    assert judged(crashed, "2") is crashed
