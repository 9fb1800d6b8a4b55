"""The hard answer classes of MATH (issue 16), on real MATH test problems from the offline data.

Every case is (problem id, the boxed answer of a response, expected score) with the reason in a comment.
The problem's text is passed as ``prompt=``, as the eval task and RLVR do: some rules read it (an order asked
for, rounding asked for, a form demanded).
"""

from __future__ import annotations

from functools import lru_cache

import pytest

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.verifiers.base import verify


@lru_cache(maxsize=1)
def _items() -> dict[str, BenchmarkItem]:
    return {it.id: it for it in load_benchmark("math")}


def _score(pid: str, answer: str, *, with_prompt: bool = True, wrap: str = "box") -> float:
    item = _items()[pid]
    if wrap == "box":
        resp = f"Working omitted. Therefore the answer is $\\boxed{{{answer}}}$."
    else:
        resp = f"Working omitted.\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
    res = verify("math", resp, item.answer, prompt=item.prompt if with_prompt else None, timeout_s=2)
    assert not res.reason.startswith("timeout"), (pid, answer)  # a 0 must be a verdict, not a time-out
    return res.score


def _check(cases: list[tuple[str, str, int]], **kw: object) -> None:
    for pid, ans, want in cases:
        got = _score(pid, ans, **kw)  # type: ignore[arg-type]
        assert got == want, (pid, _items()[pid].answer, ans, got)


# ---------------------------------------------------------------------------------- accepted although wrong

WORDS = [
    ("Number Theory/44", "\\text{Saturday}", 0),  # gold Friday: a different day is a different answer
    ("Number Theory/44", "Thursday", 0),  # plain word, still a different day
    ("Number Theory/44", "\\text{Friday}", 1),
    ("Number Theory/44", "Friday", 1),  # \text{} wrapper dropped, then text equality
    ("Number Theory/44", "\\textbf{friday}", 1),  # case and \textbf do not change a word
    ("Algebra/168", "\\text{Debra}", 0),  # gold Evelyn: another name from the same figure
    ("Algebra/168", "\\text{Evelyn}", 1),
    ("Prealgebra/457", "\\text{Irene}", 0),  # gold Devon: another player of the game
    ("Prealgebra/457", "Devon", 1),
    ("Intermediate Algebra/1", "\\text{even}", 0),  # gold "neither": even/odd/neither are three answers
    ("Intermediate Algebra/1", "\\text{odd}", 0),
    ("Intermediate Algebra/1", "neither", 1),
    ("Intermediate Algebra/597", "\\text{ellipse}", 0),  # gold circle: a different conic
    ("Intermediate Algebra/597", "\\text{circle}", 1),
    ("Intermediate Algebra/597", "\\text{(C)}", 0),  # a letter is not the word
]

TRUNCATED = [
    ("Algebra/458", "0.3333333", 0),  # gold 1/3: seven digits are not one third (math-verify rounds to 6)
    ("Algebra/458", "0.333333", 0),
    ("Algebra/458", "0.\\overline{3}", 1),  # the repeating decimal is exactly 1/3
    ("Algebra/458", "1/3", 1),
    ("Algebra/150", "1.7142857", 0),  # gold 12/7, "as an improper fraction": truncated decimal
    ("Algebra/150", "\\frac{24}{14}", 1),  # an unreduced fraction has the exact value
    ("Algebra/559", "2.7272727", 0),  # gold 30/11
    ("Algebra/559", "2.\\overline{72}", 1),
    ("Geometry/7", "0.7071068", 0),  # gold sqrt(2)/2, irrational: no decimal is exact
    ("Geometry/7", "0.70710678118654752440", 0),
    ("Algebra/78", "0.43", 1),  # "rounded to the nearest hundredth": the gold itself is a decimal
    ("Algebra/78", "0.430", 1),  # the same decimal value
    ("Algebra/78", "0.44", 0),
    ("Algebra/552", "2.67", 0),  # gold 8/3 "as a common fraction": the problem asks for no rounding
    ("Algebra/552", "2\\frac{2}{3}", 1),  # a mixed number is the exact value
]

ORDERED = [
    ("Algebra/27", "12, 10, 6", 1),  # "Express them in decreasing order"
    ("Algebra/27", "6, 10, 12", 0),  # right values, wrong order
    ("Algebra/27", "10, 12, 6", 0),
    ("Algebra/8", "4, 6, 14, 15", 1),  # "the four integers in increasing order"
    ("Algebra/8", "15, 14, 6, 4", 0),
    ("Algebra/569", "-4, 4", 1),  # "list them from least to greatest"
    ("Algebra/569", "4, -4", 0),
    ("Intermediate Algebra/25", "-2, 1", 1),  # "Enter all the solutions": no order asked, any order is right
]


def test_word_answers_compare_as_text() -> None:
    _check(WORDS)
    _check(WORDS, with_prompt=False)  # the text rule does not need the problem


def test_exact_answers_need_exact_values() -> None:
    _check(TRUNCATED)


def test_truncated_decimal_without_the_prompt_is_still_not_exact() -> None:
    # Without the problem no rounding can have been asked for: a decimal must equal the gold exactly.
    assert _score("Algebra/458", "0.3333333", with_prompt=False) == 0
    assert _score("Algebra/458", "0.\\overline{3}", with_prompt=False) == 1
    assert _score("Algebra/78", "0.43", with_prompt=False) == 1


def test_order_matters_when_asked() -> None:
    _check(ORDERED)
    _check(ORDERED[-1:], wrap="minerva")


# -------------------------------------------------------------------------------- rejected although right

MATRICES = [
    # gold \begin{pmatrix} 1/5 & 4/5 \\ 0 & 1 \end{pmatrix}
    ("Precalculus/23", "\\begin{bmatrix} 1/5 & 4/5 \\\\ 0 & 1 \\end{bmatrix}", 1),  # bmatrix for pmatrix
    ("Precalculus/23", "\\begin{bmatrix}1/5&4/5\\\\0&1\\end{bmatrix}", 1),  # ... without spaces
    # \frac entries
    ("Precalculus/23", "\\begin{pmatrix} \\frac{1}{5} & \\frac{4}{5} \\\\ 0 & 1 \\end{pmatrix}", 1),
    ("Precalculus/23", "\\begin{pmatrix} \\dfrac15 & \\frac45 \\\\ 0 & 1 \\end{pmatrix}", 1),
    ("Precalculus/23", "\\begin{pmatrix} 0.2 & 0.8 \\\\ 0 & 1 \\end{pmatrix}", 1),  # equal decimal entries
    ("Precalculus/23", "\\begin{bmatrix} 0.2 & 0.8 \\\\ 0.0 & 1.0 \\end{bmatrix}", 1),
    ("Precalculus/23", "\\begin{pmatrix} 0.2 & 0.8 \\\\ 0 & 1.1 \\end{pmatrix}", 0),  # one entry wrong
    ("Precalculus/23", "\\begin{pmatrix} 4/5 & 1/5 \\\\ 0 & 1 \\end{pmatrix}", 0),  # entries swapped
    ("Precalculus/23", "\\begin{pmatrix} 1/5 & 0 \\\\ 4/5 & 1 \\end{pmatrix}", 0),  # transposed
    # a determinant, not a matrix
    ("Precalculus/23", "\\begin{vmatrix} 1/5 & 4/5 \\\\ 0 & 1 \\end{vmatrix}", 0),
    # gold \begin{pmatrix} 48/65 \\ 6/65 \end{pmatrix} (a vector)
    ("Precalculus/22", "\\begin{bmatrix} \\frac{48}{65} \\\\ \\frac{6}{65} \\end{bmatrix}", 1),
    ("Precalculus/22", "\\begin{pmatrix} 48/65 \\\\ 0.0923076 \\end{pmatrix}", 0),  # truncated entry
    ("Precalculus/22", "\\begin{pmatrix} 48/65 \\\\ 6/65 \\\\ 0 \\end{pmatrix}", 0),  # wrong shape
    # gold \begin{pmatrix} 1/2 \\ 1/2 \\ 1/2 \end{pmatrix}
    ("Precalculus/133", "\\begin{pmatrix} 0.5 \\\\ 0.5 \\\\ 0.5 \\end{pmatrix}", 1),
    ("Precalculus/133", "\\left[\\begin{matrix} 0.5 \\\\ \\tfrac12 \\\\ 1/2 \\end{matrix}\\right]", 1),
]

SETS_AND_ROOTS = [
    ("Intermediate Algebra/25", "\\{1, -2\\}", 1),  # gold "1,-2": the same solutions written as a set
    ("Intermediate Algebra/25", "\\left\\{-2,1\\right\\}", 1),
    ("Intermediate Algebra/25", "\\{1\\}", 0),  # a solution missing
    ("Intermediate Algebra/25", "(1, -2)", 0),  # a tuple is not a set of solutions
    ("Algebra/508", "\\{-2, 6\\}", 1),  # gold "6, -2"
    ("Intermediate Algebra/482", "1+\\sqrt{5}, 1-\\sqrt{5}, -2", 1),  # gold \{1\pm\sqrt{5},-2\}: plain list
    ("Intermediate Algebra/482", "\\{-2, 1-\\sqrt5, 1+\\sqrt5\\}", 1),
    ("Intermediate Algebra/482", "\\{1+\\sqrt{5}, -2\\}", 0),  # one root of the pair missing
    # gold 1 \pm \sqrt{19}: roots written out
    ("Intermediate Algebra/756", "1 + \\sqrt{19}, 1 - \\sqrt{19}", 1),
    ("Intermediate Algebra/756", "1 - \\sqrt{19}, 1 + \\sqrt{19}", 1),
    ("Intermediate Algebra/756", "1 + \\sqrt{19}", 0),
    ("Intermediate Algebra/756", "1 \\pm \\sqrt{19}", 1),
    ("Precalculus/442", "3+2\\sqrt{2}, 3-2\\sqrt{2}", 1),  # gold 3 \pm 2 \sqrt{2}
    ("Precalculus/442", "3\\pm2\\sqrt2", 1),
    ("Precalculus/442", "3+2\\sqrt{2}, 3+2\\sqrt{2}", 0),  # the same root twice is not both roots
]

LETTERS = [
    ("Intermediate Algebra/325", "A, D", 1),  # gold \text{A,D}
    ("Intermediate Algebra/325", "\\text{D, A}", 1),  # another order: the problem asks for no order
    ("Intermediate Algebra/325", "\\text{(A)}, \\text{(D)}", 1),  # each letter in its own \text{(..)}
    ("Intermediate Algebra/325", "(A), (D)", 1),
    ("Intermediate Algebra/325", "A", 0),  # a letter missing
    ("Intermediate Algebra/325", "A, D, E", 0),  # a letter too many
    ("Precalculus/2", "\\text{G, B, E}", 1),  # gold \text{B, E, G}
    ("Precalculus/2", "\\text{(B), (E), (G)}", 1),
    ("Precalculus/2", "B, E", 0),
    ("Number Theory/80", "C, E", 1),  # gold \text{C,E}
    ("Number Theory/80", "\\text{E, C}", 0),  # "List the letters in alphabetical order": here order matters
    ("Number Theory/80", "\\text{C, D}", 0),
    ("Number Theory/163", "{A}", 1),  # gold A (a letter of a repeating word): braces around it change nothing
    ("Number Theory/163", "{E}", 0),
]

MONEY = [
    ("Algebra/345", "16,386.16", 1),  # gold \$16,\!386.16: commas with cents, no dollar sign
    ("Algebra/345", "\\$16,386.16", 1),  # ... with a dollar sign
    ("Algebra/345", "\\$16386.16", 1),
    ("Algebra/345", "16{,}386.16", 1),
    ("Algebra/345", "\\$16,386.17", 0),  # a cent off
    ("Algebra/345", "16,386", 0),  # the cents dropped
    ("Algebra/710", "\\$115,000", 1),  # gold \$115,000
    ("Algebra/710", "115,000.00", 1),
    ("Algebra/710", "115,000 \\text{ dollars}", 1),
    ("Algebra/782", "\\$32,348.00", 1),  # gold \$32,\!348
    ("Algebra/782", "32,\\!348", 1),
    ("Counting & Probability/61", "\\$15.48", 1),  # gold \$15.48
    ("Counting & Probability/61", "15.48", 1),
]

RESIDUES = [
    ("Number Theory/3", "44 \\pmod{83}", 1),  # gold 44: the residue written with its modulus
    ("Number Theory/3", "44\\pmod {83}", 1),
    ("Number Theory/3", "17^{-1} \\equiv 44 \\pmod{83}", 1),
    ("Number Theory/3", "44 \\mod 83", 1),
    ("Number Theory/3", "45 \\pmod{83}", 0),
    ("Number Theory/31", "n \\equiv 9 \\pmod{18}", 1),  # gold 9
    ("Number Theory/31", "9 \\pmod{18}", 1),
    ("Number Theory/31", "9 \\pmod{17}", 0),  # the residue is right but the modulus is not the problem's
    ("Number Theory/20", "52 \\pmod{101}", 1),
]

RADICALS = [
    ("Geometry/7", "\\frac{1}{\\sqrt{2}}", 1),  # gold sqrt(2)/2: not rationalised, no form demanded
    ("Geometry/7", "1/\\sqrt2", 1),
    ("Geometry/7", "\\sqrt{\\frac{1}{2}}", 1),
    ("Geometry/7", "\\frac{1}{\\sqrt{3}}", 0),
    ("Geometry/10", "-\\frac{1}{\\sqrt{10}}", 1),  # gold -sqrt(10)/10
    ("Geometry/10", "\\frac{1}{\\sqrt{10}}", 0),  # sign
    ("Algebra/243", "\\frac{1}{\\sqrt{3}}", 1),  # "Simplify": no form demanded
    ("Algebra/609", "\\frac{9}{4\\sqrt{3}}", 1),  # gold 3sqrt(3)/4
    ("Algebra/331", "\\frac{\\sqrt6}{3}", 1),  # "Rationalize the denominator": the rationalised form
    ("Algebra/331", "\\sqrt{\\frac{2}{3}}", 0),  # ... the problem's own expression is not an answer
    ("Algebra/331", "\\frac{2}{\\sqrt{6}}", 0),  # ... an unrationalised form is not what was asked
    ("Algebra/110", "\\frac{1}{2\\sqrt7}", 0),  # "Rationalize the denominator: 1/(2 sqrt 7)"
    ("Algebra/110", "\\frac{\\sqrt{7}}{14}", 1),
    # a chain of equalities is judged by its result: the unrationalised steps before it are working
    ("Algebra/133", "\\sqrt{\\frac{1}{3}}=\\frac{1}{\\sqrt{3}}={\\frac{\\sqrt{3}}{3}}", 1),
    ("Algebra/133", "\\frac{\\sqrt{3}}{3}=\\frac{1}{\\sqrt{3}}", 0),
]


def test_matrices() -> None:
    _check(MATRICES)


def test_sets_and_pm_roots() -> None:
    _check(SETS_AND_ROOTS)


def test_letter_choices() -> None:
    _check(LETTERS)


def test_money() -> None:
    _check(MONEY)
    _check(MONEY[:3], with_prompt=False)


def test_residues() -> None:
    _check(RESIDUES)


def test_unrationalised_radicals() -> None:
    _check(RADICALS)


@pytest.mark.parametrize("cases", [WORDS, TRUNCATED, ORDERED, MATRICES, SETS_AND_ROOTS, LETTERS, MONEY,
                                   RESIDUES, RADICALS])
def test_right_answers_also_pass_in_the_minerva_phrase(cases: list[tuple[str, str, int]]) -> None:
    # The same rules whichever explicit final statement carries the answer.
    _check([c for c in cases if c[2] == 1][:4], wrap="minerva")


def test_few_shot_continuation_is_cut() -> None:
    item = _items()["Number Theory/3"]
    resp = ("$17\\cdot 5 = 85 \\equiv 2$, so $17 \\cdot (-5 \\cdot 41)\\equiv 1$ and the inverse is "
            "$\\boxed{44}$.\n\nProblem:\nCompute $3^{-1} \\pmod{7}$.\n\n"
            "Solution:\nWe have $3\\cdot 5 = 15$, so $\\boxed{5}$.")
    # The model went on with a made-up next problem (the few-shot format); only the asked problem counts.
    assert verify("math", resp, item.answer, prompt=item.prompt).score == 1
    assert verify("math", resp.replace("\\boxed{44}", "\\boxed{43}"), item.answer).score == 0


def test_answer_statements_beat_the_last_dollar_pair() -> None:
    item = _items()["Number Theory/3"]

    def score(resp: str) -> float:
        return verify("math", resp, item.answer, prompt=item.prompt).score

    # A statement names the answer; a check computed after it is not the answer.
    assert score("The answer is $44$. To double-check: $17 \\cdot 44 = 748 = 9 \\cdot 83 + 1$.") == 1
    assert score("Final answer: 44\nCheck: $17 \\cdot 44 = 748$.") == 1
    assert score("The final answer is $43$. Check: $17 \\cdot 44 = 748$.") == 0
    # A final statement offering several different values scores 0, as several boxes do.
    assert score("The answer is $43$ or $44$.") == 0
    assert score("The answer is $44$, $45$.") == 0
    assert score("The final answer is $44$ or $44$.") == 1  # the same value twice is one answer
    day = _items()["Number Theory/44"]
    assert verify("math", "Counting back 40 years... The answer is Friday.", day.answer).score == 1
    assert verify("math", "Counting back 40 years... Final answer: Saturday", day.answer).score == 0


def test_prose_after_the_answer_is_not_a_statement() -> None:
    # "the answer is the sum of ..." is prose, not an answer: the last $...$ pair still decides.
    item = _items()["Algebra/458"]
    resp = "To find the answer is not hard. The answer is the ratio of the two sums, which is $\\frac{1}{3}$."
    assert verify("math", resp, item.answer, prompt=item.prompt).score == 1
    assert verify("math", "The answer is 1/3.", item.answer, prompt=item.prompt).score == 1


def test_truncated_decimals_inside_tuples() -> None:
    # A tuple or interval is compared element by element, so the exact-value rule holds inside it too.
    item = _items()["Algebra/25"]  # gold [0,\infty), a real interval answer
    assert verify("math", "\\boxed{[0, \\infty)}", item.answer, prompt=item.prompt).score == 1
    assert verify("math", "\\boxed{(0, \\infty)}", item.answer, prompt=item.prompt).score == 0
    assert verify("math", "\\boxed{[0.0, \\infty)}", item.answer, prompt=item.prompt).score == 1
    assert verify("math", "\\boxed{(\\frac{1}{3}, 2)}", "(\\frac{1}{3}, 2)").score == 1
    assert verify("math", "\\boxed{(0.3333333, 2)}", "(\\frac{1}{3}, 2)").score == 0  # math-verify rounds: 1
    assert verify("math", "\\boxed{(0.\\overline{3}, 2)}", "(\\frac{1}{3}, 2)").score == 1
    assert verify("math", "\\boxed{[0.5, 2)}", "[\\frac{1}{2}, 2)").score == 1
    assert verify("math", "\\boxed{(0.5, 2)}", "[\\frac{1}{2}, 2)").score == 0  # open for closed
    assert verify("math", "\\boxed{(2, 0.5)}", "(\\frac{1}{2}, 2)").score == 0  # order of a tuple
