from __future__ import annotations

from fractions import Fraction

import pytest

from tulu.verifiers.base import verify
from tulu.verifiers.gsm8k import extract_answer, gold_number, to_number


@pytest.mark.parametrize("tok,val", [("18", 18), ("-3", -3), ("1,234", 1234), ("1,234,567.5", Fraction(2469135, 2)),
                                     ("$18.00", 18), (".5", Fraction(1, 2)), ("\u22124", -4)])
def test_to_number(tok: str, val: Fraction) -> None:
    assert to_number(tok) == val


@pytest.mark.parametrize("tok", ["1,2,3", "12,34", "abc", "", "1.2.3"])
def test_to_number_rejects_non_numbers(tok: str) -> None:
    assert to_number(tok) is None


def test_gold_forms() -> None:
    assert gold_number("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == 18
    assert gold_number("#### 1,000") == 1000
    assert gold_number(42) == 42 and gold_number("7") == 7
    with pytest.raises(ValueError, match="no single number"):
        gold_number("#### many")


@pytest.mark.parametrize("resp,score", [
    ("9 * 2 = 18 dollars.", 1),  # last number
    ("It costs $18.00 in total.", 1),  # numeric, not string compare
    ("The answer is 18.", 1),
    ("The answer is: $18", 1),
    ("Final answer: 18 apples", 1),
    ("#### 18", 1),
    ("So she makes \\boxed{18} dollars, i.e. 9 per hour over 2 hours.", 1),  # marker beats last number
    ("The answer is 18. Check: 18 / 2 = 9", 1),
    ("18 + 1 = 19", 0),
    ("The answer is 19.", 0),
    ("", 0),
    ("no numbers here", 0),
])
def test_gsm8k_scores(resp: str, score: int) -> None:
    assert verify("gsm8k", resp, "#### 18").score == score


def test_thousands_separators() -> None:
    assert verify("gsm8k", "He earns 1,234,000 dollars", "#### 1234000").score == 1
    assert verify("gsm8k", "He earns 1234000 dollars", "#### 1,234,000").score == 1
    # "1,2,3" is a list, not 123 (lm-eval's flexible regex would make it 123)
    assert verify("gsm8k", "The values are 1,2,3", "#### 123").score == 0
    assert verify("gsm8k", "The values are 1,2,3", "#### 3").score == 1


def test_several_answers_score_zero() -> None:
    assert extract_answer("The answer is 5 or 6")[1] == "several answers"
    for resp in ["The answer is 18 or 19.", "#### 18\nThe answer is 17", "\\boxed{17} \\boxed{18}",
                 "The answer is 18, 19, 20", "\\boxed{18, 19}"]:
        assert verify("gsm8k", resp, "18").score == 0, resp
