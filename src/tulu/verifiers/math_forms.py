"""Answer forms of MATH that a general equivalence checker gets wrong, each with its own exact rule.

Pure string / ``Fraction`` functions, no sympy: the ``math`` verifier calls them before math-verify.

* ``text_answer`` -- word answers ("\\text{Friday}", "neither") compare as normalised text, never through a
  parser that drops the words.
* ``letter_choices`` -- multiple-choice letters, plain or inside ``\\text{(A)}``, as a list.
* ``exact_value`` -- the exact rational value of a number written as an integer, a decimal (thousands
  commas, cents, dollar sign), a fraction or a mixed number; None for anything symbolic.
* ``parse_matrix`` -- the entries of a ``pmatrix`` / ``bmatrix`` / ``Bmatrix`` / ``matrix`` (a ``vmatrix``
  is a determinant and stays a scalar).
* ``strip_residue`` -- ``x \\equiv 44 \\pmod{83}`` -> ("44", "83").
* ``expand_pm`` -- ``1 \\pm \\sqrt{5}`` -> the two roots.
* what the problem text asks for: an order, rounding (and to which place), a rationalised denominator.
"""

from __future__ import annotations

import re
from fractions import Fraction

from tulu.verifiers.math_normalize import _braced, _fix_fracs, split_top_level

# ------------------------------------------------------------------------------------------ the problem text

_ORDER_RE = re.compile(
    r"\b(?:in|by|with)\s+(?:strictly\s+)?(?:increasing|decreasing|ascending|descending|alphabetical|"
    r"numerical|"
    r"the\s+same|the\s+given|that)\s+order\b|"
    r"\bfrom\s+(?:the\s+)?(?:least|smallest|lowest|greatest|largest|highest|biggest)\s+to\s+(?:the\s+)?"
    r"(?:least|smallest|lowest|greatest|largest|highest|biggest)\b|"
    r"\b(?:order(?:ed)?|list(?:ed)?|arrange[d]?)\s+(?:them\s+|the\s+\w+\s+)?from\b|\bin\s+order\s+from\b",
    re.IGNORECASE,
)
_ROUND_RE = re.compile(r"\bround|\bto\s+the\s+nearest\b|\bapproximat|\bestimate|\bsignificant\s+figures?|"
                       r"\bdecimal\s+places?",
                       re.IGNORECASE)
_PLACES = {"whole number": 0, "integer": 0, "one": 0, "unit": 0, "tenth": 1, "hundredth": 2, "cent": 2,
           "thousandth": 3, "ten-thousandth": 4, "ten thousandth": 4, "hundred-thousandth": 5}
_PLACE_RE = re.compile(r"nearest\s+(whole number|integer|one|unit|ten[- ]thousandth|hundred-thousandth|tenth|"
                       r"hundredth|thousandth|cent)", re.IGNORECASE)
_RATIONALISE_RE = re.compile(r"rationali[sz]e|(?:integer|rational)\s+denominator", re.IGNORECASE)


def asks_order(prompt: str | None) -> bool:
    """The problem asks for its answers in an order ("in increasing order", "from least to greatest")."""
    return bool(prompt and _ORDER_RE.search(prompt))


def rounding_place(prompt: str | None) -> int | None:
    """None: no rounding asked. Otherwise the number of decimals asked for, or -1 when rounding is asked
    without a place ("express your answer as a decimal to two significant figures" counts as unknown)."""
    if not prompt or not _ROUND_RE.search(prompt):
        return None
    m = _PLACE_RE.search(prompt)
    return _PLACES[m.group(1).lower()] if m else -1


def asks_rationalised(prompt: str | None) -> bool:
    return bool(prompt and _RATIONALISE_RE.search(prompt))


# ------------------------------------------------------------------------------------------------- wrappers

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|textnormal|operatorname)\s*(?=\{)")


def unwrap_text(s: str) -> str:
    """``\\text{ab}`` -> ``ab`` for every text-like command (nested braces kept balanced)."""
    out, i = [], 0
    while (m := _TEXT_CMD_RE.search(s, i)) is not None:
        got = _braced(s, m.end())
        if got is None:
            break
        out.append(s[i:m.start()])
        out.append(got[0])
        i = got[1]
    out.append(s[i:])
    return "".join(out)


_WORD_ANSWER_RE = re.compile(r"[A-Za-z][A-Za-z' \-]*[A-Za-z]\.?")


def text_answer(s: str) -> str | None:
    """Normalised text of a word answer ("\\text{Friday}" -> "friday"), None when ``s`` is not one.

    A word answer has only letters, spaces, hyphens and apostrophes after its ``\\text{}`` wrappers are
    dropped, and at least one word of three letters (so ``xy`` or ``AB`` stay mathematics)."""
    t = unwrap_text(s).replace("\\ ", " ").replace("~", " ").replace("{", "").replace("}", "").strip("$ ")
    if "\\" in t or not _WORD_ANSWER_RE.fullmatch(t):
        return None
    words = re.findall(r"[A-Za-z']+", t)
    if not any(len(w) >= 3 for w in words) and not s.strip().startswith("\\text"):
        return None
    return " ".join(w.lower() for w in words)


_LETTER_RE = re.compile(r"\(?([A-Z])\)?")


def letter_choices(s: str) -> list[str] | None:
    """``\\text{(A)}, \\text{(D)}`` / ``\\text{A, D}`` / ``(A) and (D)`` -> ["A", "D"]; None otherwise."""
    t = unwrap_text(s).replace("$", "").replace("{", "").replace("}", "").strip()
    t = re.sub(r"\s*(?:,|;|\band\b)\s*", ",", t)
    parts = [p.strip() for p in t.split(",") if p.strip()]
    if not parts:
        return None
    out = []
    for p in parts:
        m = _LETTER_RE.fullmatch(p)
        if m is None:
            return None
        out.append(m.group(1))
    return out


# -------------------------------------------------------------------------------------------- exact values

_SPACES_RE = re.compile(r"\\[,;:! ]|\s+|\\left|\\right")
_NUM = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_FRAC_RE = re.compile(rf"(-?)\\frac\{{({_NUM})\}}\{{({_NUM})\}}")
_MIXED_RE = re.compile(r"(-?\d+)\\frac\{(\d+)\}\{(\d+)\}")
_SLASH_RE = re.compile(rf"({_NUM})/({_NUM})")
_UNIT_RE = re.compile(r"\\(?:text|mbox|mathrm)\{[^{}]*\}$|\^\{?\\circ\}?$")
_DECIMAL_RE = re.compile(r"-?(?:\d+\.\d*|\.\d+)")


def _clean_number(s: str) -> str:
    t = _SPACES_RE.sub("", s)
    t = t.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "")
    t = t.replace("{,}", ",").replace("dfrac", "frac").replace("tfrac", "frac").replace("\u2212", "-")
    t = _UNIT_RE.sub("", t)
    if t.startswith("{") and t.endswith("}") and _braced(t, 0) == (t[1:-1], len(t)):
        t = t[1:-1]
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    return _fix_fracs(t)


def exact_value(s: str) -> Fraction | None:
    """The exact value of a plain number (``3``, ``-0.25``, ``\\$1,234.50``, ``\\frac{3}{4}``, ``3/4``,
    ``2\\frac{1}{3}``), None for anything else. ``\\frac{1}{0}`` is None."""
    t = _clean_number(s)
    if not t or len(t) > 60:
        return None
    try:
        if re.fullmatch(_NUM, t):
            return Fraction(t)
        if m := _FRAC_RE.fullmatch(t):
            v = Fraction(m.group(2)) / Fraction(m.group(3))
            return -v if m.group(1) else v
        if m := _MIXED_RE.fullmatch(t):
            whole, frac = int(m.group(1)), Fraction(int(m.group(2)), int(m.group(3)))
            return whole - frac if m.group(1).startswith("-") else whole + frac
        if m := _SLASH_RE.fullmatch(t):
            return Fraction(m.group(1)) / Fraction(m.group(2))
    except ZeroDivisionError:
        return None
    return None


def is_decimal(s: str) -> bool:
    """A decimal literal (``0.3333``, ``\\$15.48``): its digits are what was written, not an exact form."""
    return bool(_DECIMAL_RE.fullmatch(_clean_number(s)))


def decimals(s: str) -> int:
    t = _clean_number(s)
    return len(t.split(".", 1)[1]) if "." in t else 0


def rounds_to(cand: str, gold: Fraction, place: int) -> bool:
    """``cand`` is ``gold`` rounded (half away from zero) to ``cand``'s own number of decimals, which must be
    the place asked for (``place >= 0``) or any place (``place == -1``)."""
    cv = exact_value(cand)
    if cv is None:
        return False
    d = decimals(cand)
    if place >= 0 and d != place:
        return False
    scaled = abs(gold) * 10**d
    rounded = Fraction(int(scaled + Fraction(1, 2)), 10**d)
    return cv == (rounded if gold >= 0 else -rounded)


# ------------------------------------------------------------------------------------------------ matrices

_MATRIX_RE = re.compile(r"\\begin\{([pbB]?matrix|smallmatrix)\}(.*?)\\end\{\1\}", re.DOTALL)


def parse_matrix(s: str) -> list[list[str]] | None:
    """Rows of entries of a single matrix / column or row vector written with a matrix environment."""
    t = s.strip().replace("\\left", "").replace("\\right", "")
    m = _MATRIX_RE.search(t)
    if m is None:
        return None
    outside = (t[:m.start()] + t[m.end():]).strip()
    if outside not in ("", "()", "[]", "(  )", "[  ]") and re.sub(r"[\s()\[\]]", "", outside):
        return None
    rows = [r.strip() for r in re.split(r"\\\\(?:\[[^\]]*\])?", m.group(2))]
    rows = [r for r in rows if r and r != "\\hline"]
    grid = [[c.strip() for c in r.split("&")] for r in rows]
    return grid if grid and all(all(c for c in r) for r in grid) else None


# -------------------------------------------------------------------------------------------------- residues

_MOD_RE = re.compile(r"\s*(?:\\pmod\s*\{([^{}]*)\}|\\pmod\s*(\w+)|"
                     r"\(\s*\\(?:bmod|mod)\s*\{?([^{}()]*?)\}?\s*\)|"
                     r"\\(?:bmod|mod)\s*\{([^{}]*)\}|\\(?:bmod|mod)\s*(\w+)|"
                     r"\(\s*\\text\{\s*mod\s*\}\s*\{?([^{}()]*?)\}?\s*\))\s*$")


def strip_residue(s: str) -> tuple[str, str | None]:
    """``n \\equiv 9 \\pmod{18}`` -> ("9", "18"); a string without a modulus comes back as (s, None)."""
    m = _MOD_RE.search(s)
    if m is None:
        return s, None
    mod = next(g for g in m.groups() if g is not None).strip()
    rest = s[:m.start()]
    if "\\equiv" in rest:
        rest = rest.rsplit("\\equiv", 1)[1]
    return rest.strip(), mod


def prompt_moduli(prompt: str | None) -> set[str]:
    if not prompt:
        return set()
    return {g.strip() for m in re.finditer(r"\\pmod\s*\{\s*([^{}]*)\}|\\pmod\s*(\w+)", prompt)
            for g in m.groups() if g}


# --------------------------------------------------------------------------------------------- \pm, forms

def expand_pm(el: str) -> list[str]:
    """``1 \\pm \\sqrt{5}`` -> ["1 + \\sqrt{5}", "1 - \\sqrt{5}"]; an element with no (or several) ``\\pm``
    comes back alone."""
    n = el.count("\\pm") + el.count("\\mp")
    if n != 1:
        return [el]
    op = "\\pm" if "\\pm" in el else "\\mp"
    a, b = el.split(op, 1)
    first, second = ("+", "-") if op == "\\pm" else ("-", "+")
    if not a.strip():  # "\pm 3": the two signs of the same value
        b = b.strip()
        neg = f"-{b}" if re.fullmatch(r"[^+\-]*", b) else f"-({b})"
        return [b, neg]
    return [f"{a}{first}{b}", f"{a}{second}{b}"]


def radical_in_denominator(s: str) -> bool:
    """``\\frac{2}{\\sqrt{6}}``, ``1/\\sqrt2``, ``\\sqrt{\\frac{2}{3}}``: a radical left in a denominator."""
    t = s.replace("dfrac", "frac").replace("tfrac", "frac")
    i = 0
    while (k := t.find("\\frac", i)) >= 0:
        num = _braced(t, k + 5)
        if num is None:
            break
        den = _braced(t, num[1])
        if den is not None and "\\sqrt" in den[0]:
            return True
        i = k + 5
    if re.search(r"\\sqrt(?:\[[^\]]*\])?\{[^{}]*\\frac", t):
        return True
    return bool(re.search(r"/\s*\(?\s*\d*\s*\\sqrt", t))


def tuple_parts(s: str) -> tuple[str, str, list[str]] | None:
    """``(a, b)`` / ``[2, 5)`` / ``\\left(1,2\\right)`` -> (opening, closing, elements) when one bracket pair
    encloses the whole answer and holds at least two elements; None otherwise (unions, single values)."""
    t = s.strip().replace("\\left", "").replace("\\right", "").strip()
    if len(t) < 2 or t[0] not in "([" or t[-1] not in ")]":
        return None
    depth = 0
    for i, ch in enumerate(t):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if depth == 0 and i < len(t) - 1:
            return None  # the first bracket closes before the end: "(1,2) \\cup (3,4)"
    parts = split_top_level(t[1:-1])
    return (t[0], t[-1], parts) if len(parts) >= 2 and all(parts) else None


def split_list(s: str) -> list[str]:
    """Top-level elements of a list answer, with an enclosing set ``\\{...\\}`` taken as the list itself."""
    t = s.strip()
    for lo, hi in (("\\left\\{", "\\right\\}"), ("\\{", "\\}")):
        if t.startswith(lo) and t.endswith(hi):
            inner = t[len(lo):-len(hi)]
            if "\\{" not in inner and "\\}" not in inner:
                t = inner
                break
    return [p for p in split_top_level(t) if p]
