"""Numbers in free text, as a grader reads them: digits with thousands separators (``1,234``, ``1 000``),
decimals, a ``k`` suffix (``18k``), a scale word (``70 thousand``) and numbers in words ("eighteen",
"five hundred forty"). Pure functions over strings; values are exact ``Fraction``s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_UNITS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"])}
_TENS = {w: 10 * (i + 2) for i, w in enumerate(
    ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])}
_SCALES = {"thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
_WORD = r"(?:" + "|".join(sorted([*_UNITS, *_TENS, "hundred", *_SCALES], key=len, reverse=True)) + r")"
_AND = r"(?:(?<=hundred)|(?<=thousand)|(?<=million)|(?<=billion))\s+and\s+"  # "one hundred and five"
WORDS_RE = re.compile(rf"\b{_WORD}(?:(?:{_AND}|[\s-]+){_WORD})*\b", re.IGNORECASE)

# digits: "1,234.5", "1 000" (a space, no-break or thin space before each group of exactly three), ".5";
# then an optional "k" / scale word
_DIGITS = (r"(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?:[ \u00a0\u202f\u2009]\d{3})+(?![\d,.]\d)|\d+)(?:\.\d+)?(?!\d)"
           r"|\.\d+")
DIGITS_RE = re.compile(rf"(?<![\w.])(?P<sign>-)?\$?(?P<num>{_DIGITS})"
                       r"(?:(?P<k>[kK])\b|\s+(?P<scale>thousand|million|billion)\b)?")


def word_number(text: str) -> int | None:
    """ "five hundred forty" -> 540, "twenty-one" -> 21, "two million three hundred thousand" -> 2300000."""
    total, current, seen = 0, 0, False
    for w in re.split(r"[\s-]+", text.lower().strip()):
        if not w or w == "and":
            continue
        low = current % 100
        if w in _UNITS:
            if low and (low < 20 or low % 10):  # "three four": two numbers, not one
                return None
            current += _UNITS[w]
        elif w in _TENS:
            if low:
                return None
            current += _TENS[w]
        elif w == "hundred":
            current = (current or 1) * 100
        elif w in _SCALES:
            total += (current or 1) * _SCALES[w]
            current = 0
        else:
            return None
        seen = True
    return total + current if seen else None


@dataclass(frozen=True)
class Num:
    start: int
    end: int
    value: Fraction
    words: bool  # written in words


_SPACE_SEP_RE = re.compile(r"(?<=\d)[ \u00a0\u202f\u2009](?=\d{3}(?!\d))")
_COMMAS_RE = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")
_PLAIN_RE = re.compile(r"-?(\d+(\.\d*)?|\.\d+)")


def parse_digits(token: str) -> Fraction | None:
    """``"1,234.50"`` / ``"1 000"`` / ``"$18"`` / ``"-3"`` -> exact value; None when not a plain decimal."""
    t = token.strip()
    if t.isdigit():
        return Fraction(int(t))
    t = t.replace("\u2212", "-").replace("$", "")
    if not t.isascii() or " " in t:
        t = _SPACE_SEP_RE.sub("", t)
    if "," in t and _COMMAS_RE.fullmatch(t):
        t = t.replace(",", "")
    if not _PLAIN_RE.fullmatch(t):
        return None
    return Fraction(t)


def find_numbers(text: str, words: bool = True) -> list[Num]:
    """Every number in ``text`` in order: digit forms, and (``words=True``) numbers in words. A lone "one"
    is left out: it is far more often an article ("one day", "one of them") than an answer."""
    out: list[Num] = []
    for m in DIGITS_RE.finditer(text):
        v = parse_digits(m.group("num"))
        if v is None:
            continue
        if m.group("k"):
            v *= 1000
        elif m.group("scale"):
            v *= _SCALES[m.group("scale").lower()]
        out.append(Num(m.start(), m.end(), -v if m.group("sign") else v, False))
    if words:
        for m in WORDS_RE.finditer(text):
            phrase = m.group(0)
            if phrase.lower() in ("one", "and"):
                continue
            v = word_number(phrase)
            if v is not None and not any(n.start <= m.start() < n.end for n in out):
                out.append(Num(m.start(), m.end(), Fraction(v), True))
    return sorted(out, key=lambda n: n.start)
