"""GSM8K: numeric final answer.

Extraction, in order:
1. explicit answer markers: every ``#### N``, every "the answer is N" (also "final answer: N"), every
   ``\\boxed{N}``. If they disagree, or one offers alternatives ("5 or 6", ``\\boxed{5, 6}``), the response
   offers several answers and scores 0.
2. otherwise the last number in the response (lm-eval's "flexible-extract", Tulu 3's rule).

Numbers lose ``$``, units and **thousands separators only where they really are thousands separators**
(``1,234`` -> 1234, but ``1,2,3`` stays three numbers; lm-eval's regex would glue it into 123). The
comparison is numeric and exact (``Fraction``): ``18.00`` equals ``18``; open-instruct compares strings,
where ``18.00`` != ``18``.

Optional keyword ``prompt``: a response that only copies the prompt scores 0 even when the prompt's last
number happens to be the answer.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from tulu.verifiers.base import VerifyResult, copies_prompt, register

NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?<![\w.\d])-?\.\d+")
_MARKER_RE = re.compile(
    r"(?:####|\b(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=)\s*(?:equal\s+to\s+)?)[\s:$*(\\]*"
    r"(?:\\boxed\{)?\s*\\?\$?\s*(?P<num>-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|-?\.\d+)",
    re.I,
)
_ALTERNATIVE_RE = re.compile(r"^\s*(?:[a-zA-Z%]+\.?\s*){0,2}(?:,|;|/|\bor\b|\band\b)\s*\\?\$?\s*-?\.?\d")


def to_number(token: str) -> Fraction | None:
    """``"1,234.50"`` -> Fraction(246900, 200); None when ``token`` is not a plain decimal number."""
    t = token.strip().replace("\u2212", "-").replace("$", "").replace(" ", "")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", t):
        return None
    return Fraction(t)


def numbers(text: str) -> list[str]:
    return NUMBER_RE.findall(text.replace("\u2212", "-"))


def gold_number(ground_truth: Any) -> Fraction:
    """The gold value from ``"#### 18"``, a full GSM8K solution, ``"18"`` or a number."""
    if isinstance(ground_truth, (int, float)) and not isinstance(ground_truth, bool):
        return Fraction(str(ground_truth))
    if not isinstance(ground_truth, str):
        raise ValueError(f"gsm8k ground_truth must be a string or number, got {type(ground_truth).__name__}")
    text = ground_truth.rsplit("####", 1)[-1] if "####" in ground_truth else ground_truth
    value = to_number(text)
    if value is None:
        nums = numbers(text)
        value = to_number(nums[-1]) if len(nums) == 1 else None
    if value is None:
        raise ValueError(f"gsm8k ground_truth {ground_truth[-60:]!r}: no single number after '####'")
    return value


def _boxed_values(text: str) -> list[Fraction | str]:
    """Each ``\\boxed{...}``: its number, or the marker ``"several"`` when the box holds more than one."""
    from tulu.verifiers.math_normalize import all_boxed

    out: list[Fraction | str] = []
    for box in all_boxed(text):
        inner = re.sub(r"\\(?:text|mbox|mathrm)\{[^{}]*\}", " ", box).replace("\\$", "").replace("\\%", "")
        inner = inner.split("=")[-1]
        vals = {to_number(n) for n in numbers(inner)} - {None}
        if len(vals) == 1:
            out.append(vals.pop())  # type: ignore[arg-type]
        elif len(vals) > 1:
            out.append("several")
    return out


def extract_answer(response: str) -> tuple[Fraction | None, str]:
    """(value, how): how is "marker", "last number", "several answers" or "no number"."""
    text = response.replace("\u2212", "-")
    found: list[Fraction | str] = []
    for m in _MARKER_RE.finditer(text):
        value = to_number(m.group("num"))
        if value is None:
            continue
        found.append("several" if _ALTERNATIVE_RE.match(text[m.end():m.end() + 40]) else value)
    found += _boxed_values(text)
    if found:
        if "several" in found or len(set(found)) > 1:
            return None, "several answers"
        return found[0], "marker"  # type: ignore[return-value]
    nums = numbers(text)
    if not nums:
        return None, "no number"
    return to_number(nums[-1]), "last number"


@register("gsm8k")
def verify_gsm8k(response: str, ground_truth: Any, prompt: str | None = None, **_: Any) -> VerifyResult:
    gold = gold_number(ground_truth)
    if prompt and copies_prompt(response, prompt):
        return VerifyResult(0.0, "response copies the prompt")
    value, how = extract_answer(response)
    if value is None:
        return VerifyResult(0.0, how)
    shown = str(value.numerator) if value.denominator == 1 else str(float(value))
    if value == gold:
        return VerifyResult(1.0, f"correct ({how})", shown)
    return VerifyResult(0.0, f"wrong answer ({how})", shown)
