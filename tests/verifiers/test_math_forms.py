"""The pure answer-form helpers of ``math_forms`` and ``numbers``, against hand-computed values."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tulu.verifiers.math_forms import (
    asks_order,
    asks_rationalised,
    exact_value,
    expand_pm,
    is_decimal,
    letter_choices,
    parse_matrix,
    radical_in_denominator,
    rounding_place,
    rounds_to,
    split_list,
    strip_residue,
    text_answer,
)
from tulu.verifiers.numbers import find_numbers


@pytest.mark.parametrize("s,v", [
    ("3", 3), ("-0.25", Fraction(-1, 4)), ("\\$1,234.50", Fraction(246900, 200)),
    ("\\frac{3}{4}", Fraction(3, 4)), ("\\dfrac34", Fraction(3, 4)), ("3/4", Fraction(3, 4)),
    ("2\\frac{1}{3}", Fraction(7, 3)), ("-2\\frac{1}{3}", Fraction(-7, 3)),
    ("-\\frac{2}{3}", Fraction(-2, 3)),
    ("16{,}386.16", Fraction(1638616, 100)), ("5 \\text{ cm}", 5), ("30^\\circ", 30)])
def test_exact_value(s: str, v: Fraction) -> None:
    assert exact_value(s) == v


@pytest.mark.parametrize("s", ["\\sqrt{2}", "x", "\\frac{1}{0}", "1,2", "\\pi", "(1,2)"])
def test_exact_value_none(s: str) -> None:
    assert exact_value(s) is None


def test_decimals_and_rounding() -> None:
    assert is_decimal("0.333") and is_decimal("\\$15.48")
    assert not is_decimal("\\frac13") and not is_decimal("3")
    assert rounds_to("0.33", Fraction(1, 3), 2) and not rounds_to("0.3", Fraction(1, 3), 2)
    assert rounds_to("0.67", Fraction(2, 3), -1) and not rounds_to("0.66", Fraction(2, 3), -1)  # half up
    assert rounds_to("-1.5", Fraction(-3, 2), 1)
    assert rounding_place("Express your answer as a decimal to the nearest hundredth.") == 2
    assert rounding_place("Round your answer to the nearest whole number.") == 0
    assert rounding_place("Express your answer rounded to the nearest cent.") == 2
    assert rounding_place("Round to two decimal places.") == -1
    assert rounding_place("Express your answer as a common fraction.") is None
    assert rounding_place(None) is None


def test_prompt_requests() -> None:
    assert asks_order("Express them in decreasing order, separated by commas.")
    assert asks_order("list them from least to greatest")
    assert asks_order("List the letters in alphabetical order with commas separating the letters.")
    assert not asks_order("Enter all the solutions, separated by commas.")
    assert not asks_order("What is the least number of widgets it has to sell in order to make a profit?")
    assert not asks_order("Enter your answer as an ordered pair.")
    assert asks_rationalised("Rationalize the denominator: $\\frac1{2\\sqrt7}$.")
    assert asks_rationalised("Your answer should have an integer denominator.")
    assert not asks_rationalised("Express your answer in simplest radical form.")


def test_text_and_letters() -> None:
    assert text_answer("\\text{Friday}") == "friday" and text_answer("Friday.") == "friday"
    assert text_answer("\\textbf{no solution}") == "no solution"
    assert text_answer("xy") is None and text_answer("5 \\text{ cm}") is None
    assert text_answer("\\sin x") is None
    assert letter_choices("\\text{(A)}, \\text{(D)}") == ["A", "D"]
    assert letter_choices("\\text{B, E, G}") == ["B", "E", "G"]
    assert letter_choices("(A) and (C)") == ["A", "C"]
    assert letter_choices("A, x") is None and letter_choices("\\text{even}") is None


def test_matrices() -> None:
    grid = [["1/5", "4/5"], ["0", "1"]]
    assert parse_matrix("\\begin{pmatrix} 1/5 & 4/5 \\\\ 0 & 1 \\end{pmatrix}") == grid
    assert parse_matrix("\\left[\\begin{bmatrix}1/5&4/5\\\\0&1\\end{bmatrix}\\right]") == grid
    assert parse_matrix("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}") == [["1"], ["2"]]
    assert parse_matrix("\\begin{vmatrix} 1 & 2 \\\\ 3 & 4 \\end{vmatrix}") is None  # a determinant
    assert parse_matrix("2\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}") is None  # a scalar times a vector


def test_residues_pm_sets_radicals() -> None:
    assert strip_residue("n \\equiv 9 \\pmod{18}") == ("9", "18")
    assert strip_residue("44\\pmod {83}") == ("44", "83")
    assert strip_residue("44 \\mod 83") == ("44", "83")
    assert strip_residue("44") == ("44", None)
    assert expand_pm("1 \\pm \\sqrt{5}") == ["1 + \\sqrt{5}", "1 - \\sqrt{5}"]
    assert expand_pm("\\pm 3") == ["3", "-3"]
    assert expand_pm("\\frac{-1 \\pm \\sqrt{5}}{2}") == ["\\frac{-1 + \\sqrt{5}}{2}",
                                                    "\\frac{-1 - \\sqrt{5}}{2}"]
    assert expand_pm("3") == ["3"]
    assert split_list("\\{1, -2\\}") == ["1", "-2"]
    assert split_list("\\left\\{-2,1\\right\\}") == ["-2", "1"]
    assert split_list("(1, -2)") == ["(1, -2)"]
    assert split_list("\\{-1\\} \\cup [0,7)") == ["\\{-1\\} \\cup [0,7)"]
    assert radical_in_denominator("\\frac{2}{\\sqrt{6}}") and radical_in_denominator("1/\\sqrt2")
    assert radical_in_denominator("\\sqrt{\\frac{2}{3}}")
    assert not radical_in_denominator("\\frac{\\sqrt{6}}{3}")


def test_find_numbers() -> None:
    text = "She has 1,234 apples, 1 000 pears, 18k coins and twenty-one cats, one dog."
    vals = [n.value for n in find_numbers(text)]
    assert vals == [1234, 1000, 18000, 21]
    assert [n.value for n in find_numbers("1,2,3")] == [1, 2, 3]
    assert [n.value for n in find_numbers("three and four")] == [3, 4]  # not 7
    assert [n.value for n in find_numbers("-3.5 and $70 thousand")] == [Fraction(-7, 2), 70000]
