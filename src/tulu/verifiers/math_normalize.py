"""Pure string helpers for math answers: extraction of candidate answers and normalisation.

Extraction follows the candidates Tulu 3's "flex" MATH scorer uses (``\\boxed{}``, the Minerva phrase, the
last ``$...$`` pair), except that here every ``\\boxed{}`` and every Minerva phrase is returned, so the
verifier can refuse responses that offer several different answers. ``hendrycks_normalize`` implements
the string normalisation described with the MATH dataset (Hendrycks et al. 2021); it is written from
that description, and tested case by case.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOX_CMDS = ("\\boxed", "\\fbox")
MINERVA_RE = re.compile(r"Final Answer: The final answer is(.*?)\. I hope it is correct\.", re.S)


def _braced(text: str, k: int) -> tuple[str, int] | None:
    """Content of the balanced ``{...}`` group opening at ``text[k]``, and the index after it."""
    if not text.startswith("{", k):
        return None
    depth = 0
    for j in range(k, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[k + 1:j], j + 1
    return None


def all_boxed(text: str) -> list[str]:
    """Contents of every ``\\boxed{...}`` / ``\\fbox{...}`` (and the ``\\boxed 5`` space form), in order."""
    out: list[tuple[int, str]] = []
    for cmd in _BOX_CMDS:
        start = 0
        while (i := text.find(cmd, start)) >= 0:
            k = i + len(cmd)
            start = k
            if text.startswith(" ", k):
                tok = text[k + 1:].split("$")[0].split()
                if tok:
                    out.append((i, tok[0]))
                continue
            got = _braced(text, k)
            if got is not None:
                out.append((i, got[0]))
                start = got[1]
    return [s for _, s in sorted(out)]


def last_boxed(text: str) -> str | None:
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None


def minerva_answers(text: str) -> list[str]:
    """Every "Final Answer: The final answer is X. I hope it is correct." answer X, in order.

    Like lm-eval, a final phrase cut off before "I hope it is correct." still counts."""
    found = [m.group(1).strip() for m in MINERVA_RE.finditer(text + ". I hope it is correct.")]
    return [f.rstrip(".").strip() for f in found if f.rstrip(".").strip()]


def cut_run_on(text: str, marker: str = "Problem") -> str:
    """Drop a few-shot continuation: everything from the first ``marker:`` that follows some text (the
    model writing the next "Problem:" / "Question:" of the few-shot format itself; lm-eval stops generating
    there)."""
    if marker not in text:
        return text
    for m in re.finditer(rf"\b{marker}\s*:", text):
        if text[:m.start()].strip():
            return text[:m.start()]
    return text


_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_STATEMENT_RE = re.compile(r"\bfinal\s+answer\s*(?:is\b|:)|\bthe\s+answer\s+is\b", re.IGNORECASE)


def answer_statements(text: str) -> list[str]:
    """Answers stated in words: "The answer is $X$", "Final answer: X" (X a ``$...$`` / ``\\(...\\)`` span, or
    a short plain answer up to the end of the sentence, see ``_looks_like_answer``)."""
    out = []
    for m in _STATEMENT_RE.finditer(text):
        rest = text[m.end():m.end() + 400].lstrip(" :*\t")
        math = _MATH_SPAN_RE.match(rest)
        if math:
            # "The answer is $3$ or $5$": every span of the statement is a candidate (several values score 0)
            while math:
                out.append(next(g for g in math.groups() if g is not None).strip())
                rest = rest[math.end():]
                joint = re.match(r"\s*(?:,|;|\bor\b|\band\b)\s*", rest)
                math = _MATH_SPAN_RE.match(rest[joint.end():]) if joint else None
                if joint and math:
                    rest = rest[joint.end():]
            continue
        plain = re.match(r"([^\n$]{1,80}?)\s*(?:\.\s|\.$|\n|$)", rest)
        if plain and _looks_like_answer(plain.group(1)):
            out.append(plain.group(1).strip().rstrip("."))
    return out


_PROSE_START = {"the", "a", "an", "not", "to", "that", "this", "in", "when", "because", "found", "given",
                "obtained", "then", "therefore", "thus", "so", "as", "what", "how", "which", "we", "it"}


def _looks_like_answer(text: str) -> bool:
    """A plain-text statement is an answer when it is short: a number with at most a few words ("12
    dollars"), or one or two words that do not start prose ("Friday"; not "the sum of the roots")."""
    words = text.split()
    if not words or words[0].lower().strip(",:") in _PROSE_START:
        return False
    return len(words) <= (4 if any(ch.isdigit() for ch in text) else 2)


def last_dollar_pair(text: str) -> str | None:
    """Text between the last pair of ``$`` signs (``$$`` counts as one delimiter), or None."""
    parts = re.split(r"(?<!\\)\$\$?", text)
    if len(parts) < 3:
        return None
    # parts alternate outside/inside; with an odd count of delimiters the last one is unmatched.
    n_delims = len(parts) - 1
    idx = n_delims - 1 if n_delims % 2 == 0 else n_delims - 2
    inside = parts[idx]
    return inside.strip() or None


def strip_dollars(s: str) -> str:
    s = s.strip()
    while len(s) >= 2 and s[0] == "$" and s[-1] == "$":
        s = s[1:-1].strip()
    return s


def split_top_level(s: str, seps: str = ",;") -> list[str]:
    """Split at separators that are outside every bracket pair: "1, (2,3)" -> ["1", "(2,3)"]."""
    out, depth, cur = [], 0, []
    i = 0
    while i < len(s):
        ch = s[i]
        if s.startswith("\\{", i) or s.startswith("\\left", i):
            depth += 1
        elif s.startswith("\\}", i) or s.startswith("\\right", i):
            depth -= 1
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        glued = s.startswith(",\\!", i) or s.startswith("{,}", i - 1) or (i > 0 and s[i - 1] == "\\")
        if ch in seps and depth == 0 and not glued:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    out.append("".join(cur))
    return [p.strip() for p in out]


THOUSANDS_RE = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")
_REPEAT_RE = re.compile(r"(-?)(\d*)\.(\d*)\\overline\{(\d+)\}")


def repeating_decimal(int_part: str, fixed: str, period: str, negative: bool = False) -> Fraction:
    """Exact value of ``int_part.fixed(period)(period)...``: 0.1(6) -> 1/6."""
    base = Fraction(int(int_part or "0")) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
    rep = Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    val = base + rep
    return -val if negative else val


def rewrite_repeating_decimals(s: str) -> str:
    """``0.\\overline{3}`` -> ``\\frac{1}{3}`` (math-verify reads the former as 0)."""

    def sub(m: re.Match[str]) -> str:
        v = repeating_decimal(m.group(2), m.group(3), m.group(4), m.group(1) == "-")
        sign = "-" if v < 0 else ""
        v = abs(v)
        return f"{sign}{v.numerator}" if v.denominator == 1 else f"{sign}\\frac{{{v.numerator}}}{{{v.denominator}}}"

    return _REPEAT_RE.sub(sub, s)


_UNIT_TEXT_RE = re.compile(r"\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z .^0-9{}]*\}\s*$")


def _fix_fracs(s: str) -> str:
    r"""\frac12 -> \frac{1}{2}; \frac1{23} -> \frac{1}{23}."""
    pieces = s.split("\\frac")
    out = pieces[0]
    for p in pieces[1:]:
        out += "\\frac"
        if p.startswith("{") or len(p) < 2:
            out += p
            continue
        a, rest = p[0], p[1:]
        if rest.startswith("{"):
            out += "{" + a + "}" + rest
        else:
            out += "{" + a + "}{" + rest[0] + "}" + rest[1:]
    return out


def _fix_sqrt(s: str) -> str:
    r"""\sqrt3 -> \sqrt{3}."""
    return re.sub(r"\\sqrt(?![\[{])\s*(\w)", r"\\sqrt{\1}", s)


def _slash_to_frac(s: str) -> str:
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    return f"\\frac{{{m.group(1)}}}{{{m.group(2)}}}" if m else s


def hendrycks_normalize(s: str) -> str:
    """String normalisation of MATH answers (the MATH paper's ``is_equiv`` rules, rewritten here)."""
    s = s.replace("\n", "").replace("\\!", "")
    s = s.replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    s = _UNIT_TEXT_RE.sub("", s)
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    eq = s.split("=")
    if len(eq) == 2 and len(eq[0].strip()) <= 2:
        s = eq[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _slash_to_frac(s)
