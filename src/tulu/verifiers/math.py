"""MATH answers: the "flex" verifier of Tulu 3 (``math``) and the Minerva-phrase-only variant (``math_strict``).

Candidates (flex), after a few-shot continuation ("Problem: ...") is cut: every ``\\boxed{}`` and every
Minerva phrase "Final Answer: The final answer is X. I hope it is correct."; if there is none, every "the
answer is X" / "final answer: X" statement; only when there is none of these, the text between the last
pair of ``$``.
A response scores 1 when **every** candidate is equivalent to the gold answer: several different final
answers never earn a reward (Tulu 3 looks at the last box only; math-verify on a whole response reads
two boxes as a set). Equivalence (``math_equal``): residues (``\\pmod{n}``), letter choices, word answers
(compared as text), matrices and tuples / intervals (entry by entry), lists (``\\{...\\}`` sets, ``\\pm``
roots; order-free unless the problem asks for an order), then one answer: equal after Hendrycks
normalisation, exactly equal as numbers (a decimal equals a fraction only when exactly equal, unless the
problem asks for rounding), or equal under math-verify, with these corrections of its known failure modes:

* lists of solutions are compared element by element with equal counts ("70,110" is a list when the prompt
  asks for several solutions, a number otherwise; "3 or 5" is a list of two);
* percent signs are dropped on both sides, so ``10\\%`` matches ``10`` but never ``0.1``;
* ``i`` is the imaginary unit when the gold is complex (math-verify keeps it a symbol);
* repeating decimals ``0.\\overline{3}`` are exact fractions (math-verify reads them as 0);
* float rounding: math-verify accepts ``0.3333333`` for 1/3; here exact values need exact answers.

Optional keyword ``prompt`` (the problem text): when given, a candidate that merely repeats a ``$...$``
expression of the prompt (an unevaluated "\\dbinom{8}{4}") does not count, nor does a response that copies the
prompt; it also tells whether an order, rounding or a rationalised denominator is asked for. The answer-form
rules are in ``math_forms``. ``math_ref`` is the reference-compatible score (lm-eval's math-verify metric).
Every math-verify call runs with its own timeouts off; the caller's ``time_limit`` (``verify()``) bounds it.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

from tulu.verifiers.base import VerifyResult, copies_prompt, register
from tulu.verifiers.math_forms import (
    asks_order,
    asks_rationalised,
    decimals,
    exact_value,
    expand_pm,
    is_decimal,
    letter_choices,
    parse_matrix,
    prompt_moduli,
    radical_in_denominator,
    rounding_place,
    rounds_to,
    split_list,
    strip_residue,
    text_answer,
    tuple_parts,
)
from tulu.verifiers.math_normalize import (
    THOUSANDS_RE,
    all_boxed,
    answer_statements,
    cut_run_on,
    hendrycks_normalize,
    last_boxed,
    last_dollar_pair,
    minerva_answers,
    rewrite_repeating_decimals,
    strip_dollars,
)

MAX_CANDIDATES = 16  # more distinct final answers than this is a shotgun, not an answer
MAX_SYMBOLIC_LEN = 400  # longer strings are compared as strings only (sympy on them can take minutes)
_LIST_PROMPT_RE = re.compile(r"separated by commas|separate(d)? (them|your answers) (with|by) commas|"
                             r"enter all|all (the )?(possible )?(solutions|roots|values)", re.IGNORECASE)
_IMAG_RE = re.compile(r"(?<![a-zA-Z\\])i(?![a-zA-Z])")


# math-verify warns once per process that its own timeouts are off: deliberate here (see the docstring)
for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).setLevel(logging.ERROR)


@lru_cache(maxsize=8192)
def _mv_parse(s: str) -> tuple:
    from math_verify import parse

    return tuple(parse(f"${s}$", parsing_timeout=None))


def _mv_equal(cand: str, gold: str) -> bool:
    from math_verify import verify as mv_verify

    g, c = _mv_parse(gold), _mv_parse(cand)
    if not g or not c:
        return False
    return bool(mv_verify(list(g), list(c), timeout_seconds=None))


def _complex_equal(cand: str, gold: str) -> bool:
    import sympy

    g, c = _mv_parse(gold), _mv_parse(cand)
    if not g or not c or not isinstance(g[0], sympy.Expr) or not isinstance(c[0], sympy.Expr):
        return False

    def with_i(e: Any) -> Any:
        return e.subs({s: sympy.I for s in e.free_symbols if s.name == "i"})

    try:
        return sympy.simplify(sympy.expand(with_i(g[0]) - with_i(c[0]))) == 0
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return False


def _prep(s: str) -> str:
    s = strip_dollars(s)
    s = rewrite_repeating_decimals(s)
    s = re.sub(r"\\[,;: ]", " ", s)  # thin/medium/thick spaces
    return s.replace("\\%", "").replace("%", "").strip()


def _sympy_rational(s: str) -> Fraction | None:
    """The exact value of ``s`` when math-verify reads it as a rational constant (``2^{-1}``), else None."""
    import sympy

    parsed = _mv_parse(s)
    if not parsed or not isinstance(parsed[0], sympy.Basic):
        return None
    e = parsed[0]
    return Fraction(int(e.p), int(e.q)) if isinstance(e, sympy.Rational) else None


def _is_constant(s: str) -> bool:
    import sympy

    parsed = _mv_parse(s)
    return bool(parsed) and isinstance(parsed[0], sympy.Expr) and not parsed[0].free_symbols


def atom_equal(cand: str, gold: str, prompt: str | None = None) -> bool:
    """One answer against one gold answer (no list handling). ``prompt`` tells whether rounding was asked
    for and whether a rationalised form is demanded."""
    if not cand.strip():
        return False
    key = hendrycks_normalize(gold)
    if key and hendrycks_normalize(cand) == key:  # (a bare "\\text{word}" normalises to "": no shortcut)
        return True
    c, g = _prep(cand), _prep(gold)
    if not c or not g:
        return False
    key = hendrycks_normalize(g)
    if key and hendrycks_normalize(c) == key:
        return True
    if len(c) > MAX_SYMBOLIC_LEN or len(g) > MAX_SYMBOLIC_LEN:
        return False
    # Exact answers need exact values: a decimal equals a number only when it is exactly equal, unless the
    # problem asks for rounding (then it must be the gold rounded to the place asked for).
    cv = exact_value(c)
    if cv is not None:
        gv = exact_value(g)
        if gv is None and is_decimal(c):
            gv = _sympy_rational(g)
            if gv is None and _is_constant(g) and rounding_place(prompt) is None:
                return False  # a decimal for an irrational exact answer (sqrt(2)/2, pi)
        if gv is not None:
            if cv == gv:
                return True
            place = rounding_place(prompt)
            return (place is not None and is_decimal(c) and decimals(c) >= decimals(g)
                    and rounds_to(c, gv, place))
    if asks_rationalised(prompt) and radical_in_denominator(c.rsplit("=", 1)[-1]):  # the result of a chain
        return False
    if _mv_equal(c, g):
        return True
    return bool(_IMAG_RE.search(g)) and _complex_equal(c, g)


_MONEY_FLAT_RE = re.compile(r"\\\$|\$|\\(?:text|mbox|mathrm)\{[^{}]*\}$")


def _elements(s: str, allow_thousands: bool) -> list[str]:
    s = strip_dollars(s)
    s = re.sub(r"\\(?:text|mbox)\{\s*(?:or|and)\s*\}", ",", s)
    s = re.sub(r"\s(?:or|and)\s", ",", s)
    s = re.sub(r",\s*(?:or|and)\b", ",", s)
    flat = _MONEY_FLAT_RE.sub("", s.replace(" ", "").replace("\\!", "").replace("{,}", ","))
    if allow_thousands and THOUSANDS_RE.fullmatch(flat):
        return [s]
    return [x for p in split_list(s) for x in expand_pm(p)]


def _matrix_equal(cm: list[list[str]], gm: list[list[str]], prompt: str | None) -> bool:
    if [len(r) for r in cm] != [len(r) for r in gm]:
        return False
    return all(atom_equal(c, g, prompt) for cr, gr in zip(cm, gm) for c, g in zip(cr, gr))


def math_equal(cand: str, gold: str, prompt: str | None = None) -> bool:
    """Candidate answer against gold answer: residues, letter choices, word answers, matrices, then lists of
    solutions (order-free with equal counts, in order when the problem asks for an order), then one
    answer (``atom_equal``)."""
    cand, gold = strip_dollars(cand), strip_dollars(gold)
    key = hendrycks_normalize(gold)
    if key and hendrycks_normalize(cand) == key:  # the same answer written the same way
        return True
    gold, g_mod = strip_residue(gold)
    cand, c_mod = strip_residue(cand)
    if c_mod is not None:
        allowed = ({g_mod} if g_mod else set()) | prompt_moduli(prompt)
        if allowed and c_mod not in allowed:
            return False  # the residue of another modulus
    ordered = asks_order(prompt)
    g_letters = letter_choices(gold)
    if g_letters is not None:
        c_letters = letter_choices(cand)
        if c_letters is None:
            return False
        return c_letters == g_letters if ordered else sorted(c_letters) == sorted(g_letters)
    g_text = text_answer(gold)
    if g_text is not None:
        return text_answer(cand) == g_text
    g_matrix = parse_matrix(gold)
    if g_matrix is not None:
        c_matrix = parse_matrix(cand)
        if c_matrix is None:
            return atom_equal(cand, gold, prompt)
        return _matrix_equal(c_matrix, g_matrix, prompt)
    g_tuple = tuple_parts(gold)
    if g_tuple is not None:
        c_tuple = tuple_parts(cand)
        if c_tuple is not None:  # a tuple or interval: its brackets, then element by element (exact values)
            return (c_tuple[:2] == g_tuple[:2] and len(c_tuple[2]) == len(g_tuple[2])
                    and all(atom_equal(c, g, prompt) for c, g in zip(c_tuple[2], g_tuple[2])))
    gold_is_list = bool(prompt and _LIST_PROMPT_RE.search(prompt))
    g_el = _elements(gold, allow_thousands=not gold_is_list)
    c_el = _elements(cand, allow_thousands=len(g_el) == 1)
    if len(g_el) == 1 and len(c_el) == 1:
        return atom_equal(c_el[0], g_el[0], prompt)
    if len(g_el) != len(c_el):
        return False
    if ordered:
        return all(atom_equal(c, g, prompt) for c, g in zip(c_el, g_el))
    left = list(c_el)
    for g in g_el:
        hit = next((k for k, c in enumerate(left) if atom_equal(c, g, prompt)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _prompt_spans(prompt: str) -> set[str]:
    spans = re.findall(r"(?<!\\)\$\$?(.+?)(?<!\\)\$\$?", prompt, re.DOTALL)
    return {hendrycks_normalize(s) for s in spans if s.strip()}


def gold_answer(ground_truth: Any) -> list[str]:
    """Gold answers from a string (an answer, or a solution with a ``\\boxed{}``) or a list of them."""
    golds = ground_truth if isinstance(ground_truth, (list, tuple)) else [ground_truth]
    out = []
    for g in golds:
        if not isinstance(g, (str, int, float)):
            raise ValueError(f"math ground_truth must be a string or a list of strings, got {type(g).__name__}")
        g = str(g)
        boxed = last_boxed(g) if "\\boxed" in g or "\\fbox" in g else None
        out.append(strip_dollars(boxed if boxed is not None else g))
    return out


def flex_candidates(response: str) -> tuple[list[str], str]:
    """(candidates, where they came from): all boxes and Minerva phrases; else every "the answer is X" /
    "final answer: X"; else the last ``$...$`` pair. A few-shot continuation ("Problem: ...") is cut first."""
    response = cut_run_on(response, "Problem")
    explicit = [strip_dollars(c) for c in all_boxed(response) + minerva_answers(response)]
    if explicit:
        return explicit, "explicit"
    stated = [strip_dollars(c) for c in answer_statements(response)]
    if stated:
        return stated, "statement"
    last = last_dollar_pair(response)
    return ([last] if last else []), "dollars"


def score_candidates(cands: list[str], golds: list[str], prompt: str | None, source: str) -> VerifyResult:
    if not cands:
        return VerifyResult(0.0, "no answer found", [])
    distinct: list[str] = []
    seen: set[str] = set()
    for c in cands:
        key = hendrycks_normalize(c)
        if key not in seen:
            seen.add(key)
            distinct.append(c)
    if len(distinct) > MAX_CANDIDATES:
        return VerifyResult(0.0, f"{len(distinct)} different answers offered", distinct)
    spans = _prompt_spans(prompt) if prompt else set()
    gold_keys = {hendrycks_normalize(g) for g in golds}
    ok = []
    for c in distinct:
        if spans and hendrycks_normalize(c) in spans and hendrycks_normalize(c) not in gold_keys:
            ok.append(False)  # an expression copied from the question is not an answer
            continue
        ok.append(any(math_equal(c, g, prompt) for g in golds))
    if all(ok):
        return VerifyResult(1.0, f"correct ({source})", distinct)
    if any(ok):
        return VerifyResult(0.0, "several different final answers", distinct)
    return VerifyResult(0.0, "wrong answer", distinct)


@register("math")
def verify_math(response: str, ground_truth: Any, prompt: str | None = None, **_: Any) -> VerifyResult:
    """Tulu 3 "flex" MATH verifier (see module docstring)."""
    golds = gold_answer(ground_truth)
    if prompt and copies_prompt(response, prompt):
        return VerifyResult(0.0, "response copies the prompt")
    cands, source = flex_candidates(response)
    return score_candidates(cands, golds, prompt, source)


@register("math_strict")
def verify_math_strict(response: str, ground_truth: Any, prompt: str | None = None, **_: Any) -> VerifyResult:
    """Only the Minerva phrase "Final Answer: The final answer is X. I hope it is correct." counts."""
    golds = gold_answer(ground_truth)
    if prompt and copies_prompt(response, prompt):
        return VerifyResult(0.0, "response copies the prompt")
    cands = [strip_dollars(c) for c in minerva_answers(cut_run_on(response, "Problem"))]
    return score_candidates(cands, golds, prompt, "minerva")


@register("math_ref")
def verify_math_reference(response: str, ground_truth: Any, **_: Any) -> VerifyResult:
    """The reference-compatible MATH score: lm-eval ``minerva_math``'s "math_verify" metric, math-verify's
    ``verify(parse(gold solution), parse(whole response))``. ``ground_truth`` is the gold solution (its last
    ``\\boxed{}`` is the answer) or a bare answer, which is boxed first. It accepts what our ``math`` verifier
    refuses on purpose (several different boxes read as a set, truncated decimals, a different word); the
    eval reports it next to ``math`` so that scores stay comparable with published numbers."""
    from math_verify import parse
    from math_verify import verify as mv_verify

    gold = str(ground_truth)
    if "\\boxed" not in gold and "\\fbox" not in gold:
        gold = f"$\\boxed{{{gold}}}$"
    g = parse(gold, parsing_timeout=None)
    c = parse(response, parsing_timeout=None)
    ok = bool(g) and bool(c) and bool(mv_verify(g, c, timeout_seconds=None))
    return VerifyResult(float(ok), "correct (math-verify)" if ok else "wrong (math-verify)")
