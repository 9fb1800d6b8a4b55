from __future__ import annotations

from fractions import Fraction

import pytest

from tulu.verifiers.base import verify
from tulu.verifiers.math import math_equal
from tulu.verifiers.math_normalize import (
    all_boxed,
    hendrycks_normalize,
    last_dollar_pair,
    minerva_answers,
    repeating_decimal,
    rewrite_repeating_decimals,
    split_top_level,
)


def test_extraction_helpers() -> None:
    assert all_boxed("a \\boxed{1} b \\boxed{\\frac{1}{2}} c \\fbox{x} \\boxed 7$") == ["1", "\\frac{1}{2}", "x", "7"]
    assert minerva_answers("Final Answer: The final answer is $24$. I hope it is correct.") == ["$24$"]
    assert minerva_answers("Final Answer: The final answer is 5") == ["5"]  # cut-off phrase still counts
    assert last_dollar_pair("we get $x=2$ and so $y = 3$.") == "y = 3"
    assert last_dollar_pair("price \\$5 only") is None
    assert split_top_level("1, (2,3), \\{4,5\\}") == ["1", "(2,3)", "\\{4,5\\}"]


@pytest.mark.parametrize("raw,norm", [("\\dfrac{1}{2}", "\\frac{1}{2}"), ("\\frac12", "\\frac{1}{2}"), ("0.5", "\\frac{1}{2}"),
                                      ("x = 5", "5"), ("30^\\circ", "30"), ("10\\%", "10"), ("\\$5", "5"),
                                      ("5 \\text{ cm}", "5"), ("\\sqrt3", "\\sqrt{3}"), ("3/4", "\\frac{3}{4}"),
                                      ("\\left( 1,2 \\right)", "(1,2)"), (".5", "\\frac{1}{2}")])
def test_hendrycks_normalize(raw: str, norm: str) -> None:
    assert hendrycks_normalize(raw) == norm


def test_repeating_decimals() -> None:
    assert repeating_decimal("0", "", "3") == Fraction(1, 3)
    assert repeating_decimal("0", "1", "6") == Fraction(1, 6)
    assert repeating_decimal("1", "", "142857") == Fraction(8, 7)
    assert rewrite_repeating_decimals("0.\\overline{27}") == "\\frac{3}{11}"
    assert rewrite_repeating_decimals("-0.\\overline{3}") == "-\\frac{1}{3}"


# formatting variants that must be accepted, and perturbations that must not
VARIANTS = [
    ("\\frac{2}{3}", ["2/3", "\\dfrac{2}{3}", "\\tfrac23", "\\frac{4}{6}", "$\\frac{2}{3}$"], ["3/2", "0.67", "\\frac{2}{5}"]),
    ("5", ["5 \\text{ cm}", "5\\text{ units}", "x = 5", "5.0"], ["6", "-5", "\\frac{1}{5}"]),
    ("30^\\circ", ["30", "30^{\\circ}", "30 degrees"], ["60^\\circ", "31"]),
    ("25\\%", ["25", "25\\%", "25%"], ["0.25", "26\\%"]),
    ("10,000", ["10000", "10{,}000", "10,\\!000"], ["1000", "100000"]),
    ("\\text{(C)}", ["C", "(C)", "\\text{C}"], ["D", "(B)"]),
    ("\\frac{\\sqrt{3}}{2}", ["\\sqrt{3}/2", "\\frac{1}{2}\\sqrt{3}"], ["\\sqrt{3}", "\\frac{\\sqrt{2}}{2}"]),
    ("[2,5)", ["[2, 5)"], ["[2,5]", "(2,5)", "(2,5]"]),
    ("-3 + 6i", ["6i - 3", "-3+6 i", "3(2i-1)"], ["-3 - 6i", "-3", "6i"]),
    ("i", ["i"], ["-1", "1"]),
    ("\\frac{1}{3}", ["0.\\overline{3}"], ["0.333", "0"]),
    ("0.\\overline{3}", ["\\frac13", "1/3"], ["0", "0.3"]),
    ("\\{1, 2\\}", ["\\{2,1\\}"], ["1", "\\{1\\}"]),
    ("(3, 4)", ["(3,4)"], ["(4,3)", "3"]),
]


@pytest.mark.parametrize("gold,good,bad", VARIANTS)
def test_format_variants(gold: str, good: list[str], bad: list[str]) -> None:
    for g in good:
        assert verify("math", f"Thus the answer is $\\boxed{{{g}}}$.", gold).score == 1, (gold, g)
    for b in bad:
        assert verify("math", f"Thus the answer is $\\boxed{{{b}}}$.", gold).score == 0, (gold, b)


def test_lists_of_solutions() -> None:
    prompt = "Find all x. Enter all the solutions, separated by commas."
    assert math_equal("70, 110", "70,110", prompt)
    assert math_equal("110,70", "70,110", prompt)
    assert not math_equal("70", "70,110", prompt)  # math-verify compares 70 with 70110 here: also 0, but by luck
    assert not math_equal("70,110,250", "70,110", prompt)
    assert not math_equal("70110", "70,110", prompt)
    assert math_equal("70110", "70,110")  # without the prompt, "70,110" reads as a number
    assert math_equal("2 or -3", "-3, 2")
    assert not math_equal("2", "-3, 2")  # Tulu 3's checker accepts lists with elements missing
    assert not math_equal("2, -3, 5", "-3, 2")


def test_candidate_sources() -> None:
    gold = "\\frac{1}{2}"
    assert verify("math", "so it is $\\frac{1}{2}$", gold).score == 1  # last $...$ pair
    assert verify("math", "Final Answer: The final answer is $\\frac12$. I hope it is correct.", gold).score == 1
    assert verify("math", "one half", gold).score == 0
    strict = "math_strict"
    assert verify(strict, "\\boxed{\\frac12}", gold).score == 0  # strict: Minerva phrase only
    assert verify(strict, "Final Answer: The final answer is $0.5$. I hope it is correct.", gold).score == 1
    assert verify("math", "The solution is $\\boxed{0.5}$", ["1/2", "\\frac{1}{2}"]).score == 1
    assert verify("math", "\\boxed{24}", "We get \\boxed{24}.").score == 1  # gold given as a solution
