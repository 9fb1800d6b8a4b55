"""GSM8K: numeric final answer.

0. A few-shot run-on is cut: from the first "Question:" that follows some text (lm-eval's GSM8K generation
   stops there too), only what comes before counts.
1. Explicit final-answer statements: every ``#### N``, "the answer is N", "final answer: N", "Answer: N"
   (up to six words may stand between, "Answer: Janet makes $18"), every ``\\boxed{N}``, and a first line
   that holds nothing but the number (the answer first, an explanation after). When the number after a
   marker starts an expression ("The answer is 16 - 3 - 4 = 9 eggs, times 2 = 18") its result counts. If
   the statements disagree, or one offers alternatives ("5 or 6", "16, 17, 18", ``\\boxed{5, 6}``), the
   response offers several answers and scores 0.
2. Otherwise the last number of the response (lm-eval's "flexible-extract", Tulu 3's rule), except numbers
   that are not the answer: those after an "Explanation:" that follows a stated number, trailing
   parenthetical asides ("(in 2023)"), trailing questions, and with ``prompt=`` numbers quoted from the
   question ("... if the size of the flock is 20 chickens") and a question's quantity restated after the
   answer ("$70,000 on his $80,000 house"). A last number that closes a list of alternatives ("16, 17 or
   18") scores 0.

Numbers (``tulu.verifiers.numbers``) lose ``$`` and thousands separators (``1,234``, ``1 000``) only where
they really are separators (``1,2,3`` stays three numbers; lm-eval's regex glues it into 123); ``18k`` and
"eighteen" are 18000 and 18 (number words count in the fallback only where an answer is stated, "makes
eighteen dollars", not in "the two baskets"). The comparison is numeric and exact (``Fraction``): ``18.00``
equals ``18`` (open-instruct compares strings). With ``prompt=``, a response that only copies the prompt
scores 0. ``gsm8k_ref`` is the reference-compatible score (lm-eval's flexible-extract rule).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from tulu.verifiers.base import VerifyResult, copies_prompt, register
from tulu.verifiers.math_normalize import all_boxed, cut_run_on
from tulu.verifiers.numbers import Num, find_numbers, parse_digits, word_number

__all__ = ["extract_answer", "gold_number", "numbers", "to_number", "verify_gsm8k", "word_number"]

NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)|(?<![\w.\d])-?\.\d+")
# "the" / "final" before "answer" change nothing about where the answer starts, so they are not matched
_MARKER_RE = re.compile(r"####|\banswer\s*\**\s*(?:is|:|=)\s*(?:equal\s+to\s+)?", re.IGNORECASE)
_EXPLANATION_RE = re.compile(r"\b(?:Explanation|Reasoning|Justification|Here's why|Here is why|Here's how|"
                             r"Here is how)\s*[:\-]", re.IGNORECASE)
_FIRST_LINE_RE = re.compile(r"\s*[*_]*[ \t]*(?:\\\$|\$)?[ \t]*(?P<num>-?\d[\d,. ]*\d|\d)[ \t]*"
                            r"(?:[A-Za-z]+[ \t]*){0,2}[*_.]*[ \t]*\n")
_OP_AFTER_RE = re.compile(r"\s*(?:[a-zA-Z%]+\s+)?(?:[-+*/\u00d7\u00f7x]|\\times|\\cdot|times|multiplied\s+by|"
                          r"divided\s+by|plus|minus)\s*\(?\s*\$?\d")
# between two numbers of a list of alternatives: "17 or 18", "$17 or $18", "16, 17, or 18", "5 dollars, 6"
_ALT_GAP_RE = re.compile(r"\s*(?:[a-zA-Z%]+\.?\s*){0,2}(?:,|;|/|\bor\b|\band\b|,\s*or\b|,\s*and\b)"
                         r"\s*\\?\$?\s*")
_OR_GAP_RE = re.compile(r"\s*(?:[a-zA-Z%]+\s*)?,?\s*\bor\s*\\?\$?\s*")
_LIST_END_RE = re.compile(r"\s*(?:[a-zA-Z%]+\.?\s*)?(?:[.!\n)]|$)")
_PREPOSITION_RE = re.compile(r"\b(?:of|from|on|for|with|in|at|by|per|over|after|than|out\s+of)\s+"
                             r"(?:(?:his|her|their|its|the|a|all|each|every|those|these|that|this|our|my)"
                             r"\s+)?"
                             r"(?:[a-z]+\s+)?\\?\$?\s*$", re.IGNORECASE)
_RESULT_WORD_RE = re.compile(r"(?:=|\b(?:total|sum|altogether|is|are|was|were|be|makes|made|earns|pays|"
                             r"gets|has))\s*(?:of\s+)?\\?\$?\s*$", re.IGNORECASE)


def to_number(token: str) -> Fraction | None:
    """``"1,234.50"`` -> Fraction(246900, 200); None when ``token`` is not a plain decimal number."""
    return parse_digits(token.replace(" ", "") if re.fullmatch(r"[-\d,.$ ]*", token.strip()) else token)


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
    out: list[Fraction | str] = []
    for box in all_boxed(text):
        inner = re.sub(r"\\(?:text|mbox|mathrm)\{[^{}]*\}", " ", box).replace("\\$", "").replace("\\%", "")
        inner = inner.split("=")[-1]
        vals = {n.value for n in find_numbers(inner)}
        if len(vals) == 1:
            out.append(vals.pop())
        elif len(vals) > 1:
            out.append("several")
    return out


_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)|\n|[!?]")


def _sentence_end(text: str, i: int) -> int:
    m = _SENTENCE_END_RE.search(text, i)
    return m.start() if m else len(text)


def _offers_alternatives(text: str, nums: list[Num], k: int, end: int) -> bool:
    """``nums[k]`` starts a list of numbers joined by commas / "or" / "and" that runs to the end of its
    sentence (``end``): "18, 19, 20", "5 or 6", "$17 or $18."."""
    j = k
    while j + 1 < len(nums) and _ALT_GAP_RE.fullmatch(text[nums[j].end:nums[j + 1].start]):
        j += 1
    return j > k and bool(_LIST_END_RE.match(text[nums[j].end:end + 1]))


def _marker_values(text: str) -> list[Fraction | str]:
    found: list[Fraction | str] = []
    if "####" not in text and "answer" not in text.lower():
        return found
    for m in _MARKER_RE.finditer(text):
        end = _sentence_end(text, m.end())
        seg = text[m.end():end]
        nums = find_numbers(seg)
        if not nums or len(re.findall(r"[A-Za-z']+", seg[:nums[0].start])) > 6:  # no number close to it
            continue
        first = nums[0]
        rest = seg[first.end:]
        if _OP_AFTER_RE.match(rest) and "=" in rest:  # an expression: its result
            tail = find_numbers(rest.rsplit("=", 1)[1])
            found.append(tail[0].value if tail else "several")
        elif _offers_alternatives(seg, nums, 0, len(seg)):
            found.append("several")
        else:
            found.append(first.value)
    return found


def _first_line_value(text: str) -> Fraction | None:
    """The answer first: a first line holding only a number (``**$18**``), with more text after it."""
    m = _FIRST_LINE_RE.match(text)
    if m is None or not text[m.end():].strip():
        return None
    return to_number(m.group("num"))


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in re.finditer(r"(?<=[.!?])\s+|\n+", text):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    return spans


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z]+|\d+(?:\.\d+)?", text.lower().replace(",", ""))


def _quoted(text: str, n: Num, prompt_trigrams: set[tuple[str, ...]]) -> bool:
    """The number with the words before it is a phrase of the question ("flock is 20", "is 20 chickens").
    Only words count as context: "30 + 60 = 90 liters" is a computation even if "90 liters" is quoted."""
    before = _words(text[max(0, n.start - 60):n.start])[-2:]
    after = _words(text[n.end:n.end + 60])[:1]
    val = _value_word(n.value)
    windows = []
    if len(before) == 2 and all(w.isalpha() for w in before):
        windows.append((*before, val))
    if before and before[-1].isalpha() and after and after[0].isalpha():
        windows.append((before[-1], val, after[0]))
    return any(w in prompt_trigrams for w in windows)


def _value_word(v: Fraction) -> str:
    return str(v.numerator) if v.denominator == 1 else str(float(v))


def _restated(text: str, n: Num, prompt_words: list[str]) -> bool:
    """The number and the noun after it stand together in the question ("$80,000 house": "a house for
    $80,000"; "3 sprints": "run 3 sprints"), so the number restates one of its quantities."""
    after = [w for w in _words(text[n.end:n.end + 40]) if w.isalpha()][:1]
    if not after:
        return False
    val = _value_word(n.value)
    return any(w == val and after[0] in prompt_words[max(0, i - 3):i + 4] for i, w in enumerate(prompt_words))


_ANSWER_CUE_RE = re.compile(r"(?:=|\b(?:is|are|was|were|be|makes?|made|earns?|earned|pays?|paid|gets?|got|"
                            r"has|have|had|needs?|needed|costs?|spends?|spent|saves?|saved|sells?|sold|"
                            r"equals?|total\s+of|sum\s+of|answer\s*:?))\s*\\?\$?\s*$", re.IGNORECASE)


def _last_number(text: str, prompt: str | None) -> tuple[Fraction | None, str]:
    nums = find_numbers(text)
    if not nums:
        return None, "no number"
    if not all(n.words for n in nums):  # number words count where an answer is stated ("makes eighteen")
        nums = [n for n in nums if not n.words or _ANSWER_CUE_RE.search(text[max(0, n.start - 30):n.start])]
    m = _EXPLANATION_RE.search(text)
    if m and len({n.value for n in nums if n.end <= m.start()}) == 1:  # the answer, then its explanation
        text = text[:m.start()]
        nums = [n for n in nums if n.end <= m.start()]
    spans = _sentence_spans(text)

    def sentence(n: Num) -> tuple[int, int]:
        return next((s for s in spans if s[0] <= n.start < max(s[1], s[0] + 1)), spans[-1])

    def in_parens(n: Num) -> bool:
        return text[:n.start].count("(") > text[:n.start].count(")")

    def in_question(n: Num) -> bool:
        a, b = sentence(n)
        return text[a:b].rstrip().endswith("?")

    keep = list(nums)
    # trailing asides after the answer: parentheticals ("(in 2023)") and questions
    while len(keep) > 1 and (in_parens(keep[-1]) or in_question(keep[-1])):
        keep.pop()
    if len(keep) == 1 and in_question(keep[0]):
        return None, "only a question"
    if prompt:
        pw = _words(prompt)
        trigrams = {tuple(pw[i:i + 3]) for i in range(len(pw) - 2)}
        prompt_values = {n.value for n in find_numbers(prompt)}
        keep = [n for n in keep if not (n.value in prompt_values and _quoted(text, n, trigrams))]
        if not keep:
            return None, "restates the question"
        # a quantity of the question restated after the answer, in the same sentence ("on his $80,000 house")
        last_sentence = sentence(keep[-1])
        while len(keep) > 1 and sentence(keep[-2]) == last_sentence and keep[-1].value in prompt_values:
            head = text[last_sentence[0]:keep[-1].start]
            if (not _PREPOSITION_RE.search(head) or _RESULT_WORD_RE.search(head)
                    or not _restated(text, keep[-1], pw)):
                break
            keep.pop()
    last = keep[-1]
    i = nums.index(last)
    if i > 0 and _OR_GAP_RE.fullmatch(text[nums[i - 1].end:last.start]):  # "16, 17 or 18"
        return None, "several answers"
    return last.value, "last number"


def extract_answer(response: str, prompt: str | None = None) -> tuple[Fraction | None, str]:
    """(value, how): how is "marker", "last number", "several answers", "no number" or another reason."""
    text = cut_run_on(response.replace("\u2212", "-"), "Question")
    found = _marker_values(text) + _boxed_values(text)
    first = _first_line_value(text)
    if first is not None:
        found.append(first)
    if found:
        if "several" in found or len(set(found)) > 1:
            return None, "several answers"
        return found[0], "marker"  # type: ignore[return-value]
    return _last_number(text, prompt)


@register("gsm8k")
def verify_gsm8k(response: str, ground_truth: Any, prompt: str | None = None, **_: Any) -> VerifyResult:
    gold = gold_number(ground_truth)
    if prompt and copies_prompt(response, prompt):
        return VerifyResult(0.0, "response copies the prompt")
    value, how = extract_answer(response, prompt)
    if value is None:
        return VerifyResult(0.0, how)
    shown = str(value.numerator) if value.denominator == 1 else str(float(value))
    if value == gold:
        return VerifyResult(1.0, f"correct ({how})", shown)
    return VerifyResult(0.0, f"wrong answer ({how})", shown)


# ------------------------------------------------------------------------------ reference-compatible score

_REF_FLEX_RE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_REF_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def _ref_normalise(s: str) -> str:
    for pat in _REF_IGNORE:
        s = pat.sub("", s)
    return s.lower()


@register("gsm8k_ref")
def verify_gsm8k_reference(response: str, ground_truth: Any, **_: Any) -> VerifyResult:
    """The reference-compatible GSM8K score: lm-eval's ``gsm8k-cot`` "flexible-extract" rule as its task
    config states it. The last match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)`` is the answer; answer and gold lose
    commas, ``$``, everything up to ``#### `` and one final period, are lowercased and compared as strings.
    The eval reports it next to ``gsm8k`` so that scores stay comparable with published lm-eval numbers."""
    found = _REF_FLEX_RE.findall(response)
    pred = "[invalid]"
    if found:
        groups = [g for g in found[-1] if g]
        pred = groups[0].strip() if groups else pred
    gold = _ref_normalise(str(ground_truth))
    ok = _ref_normalise(pred) == gold
    return VerifyResult(float(ok), f"{'correct' if ok else 'wrong'} (lm-eval flexible-extract)", pred)
