"""The 25 IFEval instruction checks (Zhou et al. 2023), one pure function each.

Each check is ``fn(response, args) -> bool`` where ``args`` is the instruction's resolved kwargs.
``SPECS`` maps an instruction id to its check and to a ``resolve`` function that validates the raw
kwargs from the data and fills defaults. Where Google's reference (shipped in lm-eval) would draw a
*random* value for a missing kwarg, we raise :class:`InstructionArgError` instead: a reward must not
depend on a dice roll.

The checks reproduce the reference's behaviour, quirks included, because the published IFEval numbers
are defined by it. Notable quirks kept on purpose (each is exercised by the parity test):

* keywords, forbidden words, the section splitter and a custom postscript marker are used as regular
  expressions, not literal strings (a keyword that is not a valid pattern is matched literally; the
  reference crashes there);
* ``capital_word_frequency`` counts upper-case tokens of ``nltk.word_tokenize`` (``DON'T`` is two);
* ``english_capital``/``english_lowercase``/``response_language`` count as *followed* when language
  detection fails (e.g. a response with no letters);
* ``nth_paragraph_first_word`` indexes the raw ``\\n\\n``-split list, empty pieces included.

Deliberate differences (listed in docs/verifiers_ifeval.md): a ``letter`` that is not an ASCII letter
is counted as given (the reference silently checks a random letter instead); a kwarg that is 0 is used
(the reference drops falsy kwargs and draws a random value); JSON nested too deep to parse is "not JSON"
(the reference raises ``RecursionError``); an invalid regex keyword is matched literally (the reference
raises ``re.error``).
"""

from __future__ import annotations

import collections
import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from tulu.verifiers.punkt import count_sentences
from tulu.verifiers.treebank import word_tokenize

Args = dict[str, Any]


class InstructionArgError(ValueError):
    """An instruction's kwargs are missing or invalid (the message names the field)."""


RELATIONS = ("less than", "at least")
CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


# --------------------------------------------------------------------------------------------- helpers
def _compare(count: int, threshold: int, relation: str) -> bool:
    return count < threshold if relation == "less than" else count >= threshold


@functools.lru_cache(maxsize=4096)
def _pattern(text: str, flags: int) -> re.Pattern[str]:
    """``text`` as a regex (the reference's behaviour); literal text when it is not a valid pattern."""
    try:
        return re.compile(text, flags)
    except re.error:
        return re.compile(re.escape(text), flags)


@functools.lru_cache(maxsize=1)
def _lang_factory() -> Any:
    # A private factory (not langdetect's global one) so nothing outside this module is reconfigured.
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    return factory


def detect_language(text: str) -> str | None:
    """ISO 639-1 code from langdetect, seeded (seed 0) so the answer is deterministic; None if undetectable."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _lang_factory().create()
    detector.seed = 0  # langdetect samples n-grams at random; a fixed seed makes it a pure function
    try:
        detector.append(text)
        return detector.detect()
    except LangDetectException:
        return None


def count_words(text: str) -> int:
    return len(re.findall(r"\w+", text))


# ---------------------------------------------------------------------------------------------- checks
def keywords_existence(response: str, a: Args) -> bool:
    return all(_pattern(k, re.IGNORECASE).search(response) for k in a["keywords"])


def keywords_frequency(response: str, a: Args) -> bool:
    n = len(_pattern(a["keyword"], re.IGNORECASE).findall(response))
    return _compare(n, a["frequency"], a["relation"])


def keywords_forbidden_words(response: str, a: Args) -> bool:
    return not any(_pattern(rf"\b{w}\b", re.IGNORECASE).search(response) for w in a["forbidden_words"])


def keywords_letter_frequency(response: str, a: Args) -> bool:
    n = collections.Counter(response.lower())[a["letter"]]
    return _compare(n, a["let_frequency"], a["let_relation"])


def response_language(response: str, a: Args) -> bool:
    lang = detect_language(response)
    return True if lang is None else lang == a["language"]


def number_sentences(response: str, a: Args) -> bool:
    return _compare(count_sentences(response), a["num_sentences"], a["relation"])


def number_paragraphs(response: str, a: Args) -> bool:
    parts = re.split(r"\s?\*\*\*\s?", response)
    n = len(parts)
    for i, part in enumerate(parts):
        if not part.strip():
            if 0 < i < len(parts) - 1:
                return False  # an empty paragraph between two dividers
            n -= 1
    return n == a["num_paragraphs"]


def number_words(response: str, a: Args) -> bool:
    return _compare(count_words(response), a["num_words"], a["relation"])


def _first_word(paragraph: str) -> str:
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    out = []
    for ch in word:
        if ch in ".,?!'\"":
            break
        out.append(ch.lower())
    return "".join(out)


def nth_paragraph_first_word(response: str, a: Args) -> bool:
    parts = response.split("\n\n")
    n = sum(1 for p in parts if p.strip())
    nth = a["nth_paragraph"]
    if nth > n:
        return False
    paragraph = parts[nth - 1].strip()
    if not paragraph:
        return False
    return n == a["num_paragraphs"] and _first_word(paragraph) == a["first_word"]


def number_placeholders(response: str, a: Args) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= a["num_placeholders"]


def postscript(response: str, a: Args) -> bool:
    marker = a["postscript_marker"]
    if marker == "P.P.S":
        pat = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pat = r"\s*p\.\s?s\..*$"
    else:
        pat = r"\s*" + marker.lower() + r".*$"
    return bool(_pattern(pat, re.MULTILINE).findall(response.lower()))


def number_bullet_lists(response: str, a: Args) -> bool:
    stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == a["num_bullets"]


def constrained_response(response: str, a: Args) -> bool:
    text = response.strip()
    return any(option in text for option in CONSTRAINED_OPTIONS)


def number_highlighted_sections(response: str, a: Args) -> bool:
    single = [h for h in re.findall(r"\*[^\n\*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n\*]*\*\*", response) if h[2:-2].strip()]
    return len(single) + len(double) >= a["num_highlights"]


def multiple_sections(response: str, a: Args) -> bool:
    splitter = _pattern(r"\s?" + a["section_spliter"] + r"\s?\d+\s?", 0)
    return len(splitter.split(response)) - 1 >= a["num_sections"]


def json_format(response: str, a: Args) -> bool:
    text = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        text = text.removeprefix(fence)
    text = text.removesuffix("```").strip()
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def title(response: str, a: Args) -> bool:
    return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", response))


def two_responses(response: str, a: Args) -> bool:
    parts = response.split("******")
    kept = []
    for i, part in enumerate(parts):
        if part.strip():
            kept.append(part)
        elif 0 < i < len(parts) - 1:
            return False
    return len(kept) == 2 and kept[0].strip() != kept[1].strip()


def repeat_prompt(response: str, a: Args) -> bool:
    return response.strip().lower().startswith(a["prompt_to_repeat"].strip().lower())


def end_checker(response: str, a: Args) -> bool:
    return response.strip().strip('"').lower().endswith(a["end_phrase"].strip().lower())


def capital_word_frequency(response: str, a: Args) -> bool:
    n = sum(1 for w in word_tokenize(response) if w.isupper())
    return _compare(n, a["capital_frequency"], a["capital_relation"])


def english_capital(response: str, a: Args) -> bool:
    if not response.isupper():
        return False
    lang = detect_language(response)
    return lang is None or lang == "en"


def english_lowercase(response: str, a: Args) -> bool:
    if not response.islower():
        return False
    lang = detect_language(response)
    return lang is None or lang == "en"


def no_comma(response: str, a: Args) -> bool:
    return "," not in response


def quotation(response: str, a: Args) -> bool:
    text = response.strip()
    return len(text) > 1 and text[0] == '"' and text[-1] == '"'


# ------------------------------------------------------------------------------------ kwargs resolution
def _int(raw: Args, key: str, *, minimum: int = 0) -> int:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v or v < minimum:
        raise InstructionArgError(f"{key}: expected an integer >= {minimum}, got {v!r}")
    return int(v)


def _str(raw: Args, key: str) -> str:
    v = raw.get(key)
    if not isinstance(v, str) or not v.strip():
        raise InstructionArgError(f"{key}: expected a non-empty string, got {v!r}")
    return v.strip()


def _relation(raw: Args, key: str) -> str:
    v = raw.get(key)
    if v not in RELATIONS:
        raise InstructionArgError(f"{key}: expected one of {RELATIONS}, got {v!r}")
    return v


def _words(raw: Args, key: str) -> list[str]:
    v = raw.get(key)
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(w, str) and w for w in v):
        raise InstructionArgError(f"{key}: expected a non-empty list of strings, got {v!r}")
    return sorted(set(v))


def _letter(raw: Args) -> str:
    # The reference draws a *random* letter when this is not an ASCII letter (IFEval has two such rows:
    # "#" for hashtags and "!" for exclamation marks). We count the character the prompt asks for.
    v = raw.get("letter")
    if not isinstance(v, str) or len(v.strip()) != 1:
        raise InstructionArgError(f"letter: expected one character, got {v!r}")
    return v.strip().lower()


def _nth_paragraph(raw: Args) -> Args:
    num = _int(raw, "num_paragraphs", minimum=1)
    nth = _int(raw, "nth_paragraph", minimum=1)
    if nth > num:
        raise InstructionArgError(f"nth_paragraph: {nth} is more than num_paragraphs {num}")
    return {"num_paragraphs": num, "nth_paragraph": nth, "first_word": _str(raw, "first_word").lower()}


def _no_args(raw: Args) -> Args:
    return {}


@dataclass(frozen=True)
class Spec:
    check: Callable[[str, Args], bool]
    resolve: Callable[[Args], Args]


SPECS: dict[str, Spec] = {
    "keywords:existence": Spec(keywords_existence, lambda r: {"keywords": _words(r, "keywords")}),
    "keywords:frequency": Spec(
        keywords_frequency,
        lambda r: {"keyword": _str(r, "keyword"), "frequency": _int(r, "frequency"),
                   "relation": _relation(r, "relation")},
    ),
    "keywords:forbidden_words": Spec(
        keywords_forbidden_words, lambda r: {"forbidden_words": _words(r, "forbidden_words")}
    ),
    "keywords:letter_frequency": Spec(
        keywords_letter_frequency,
        lambda r: {"letter": _letter(r), "let_frequency": _int(r, "let_frequency"),
                   "let_relation": _relation(r, "let_relation")},
    ),
    "language:response_language": Spec(response_language, lambda r: {"language": _str(r, "language")}),
    "length_constraints:number_sentences": Spec(
        number_sentences,
        lambda r: {"num_sentences": _int(r, "num_sentences"), "relation": _relation(r, "relation")},
    ),
    "length_constraints:number_paragraphs": Spec(
        number_paragraphs, lambda r: {"num_paragraphs": _int(r, "num_paragraphs")}
    ),
    "length_constraints:number_words": Spec(
        number_words, lambda r: {"num_words": _int(r, "num_words"), "relation": _relation(r, "relation")}
    ),
    "length_constraints:nth_paragraph_first_word": Spec(nth_paragraph_first_word, _nth_paragraph),
    "detectable_content:number_placeholders": Spec(
        number_placeholders, lambda r: {"num_placeholders": _int(r, "num_placeholders")}
    ),
    "detectable_content:postscript": Spec(
        postscript, lambda r: {"postscript_marker": _str(r, "postscript_marker")}
    ),
    "detectable_format:number_bullet_lists": Spec(
        number_bullet_lists, lambda r: {"num_bullets": _int(r, "num_bullets")}
    ),
    "detectable_format:constrained_response": Spec(constrained_response, _no_args),
    "detectable_format:number_highlighted_sections": Spec(
        number_highlighted_sections, lambda r: {"num_highlights": _int(r, "num_highlights")}
    ),
    "detectable_format:multiple_sections": Spec(
        multiple_sections,
        lambda r: {"section_spliter": _str(r, "section_spliter"), "num_sections": _int(r, "num_sections")},
    ),
    "detectable_format:json_format": Spec(json_format, _no_args),
    "detectable_format:title": Spec(title, _no_args),
    "combination:two_responses": Spec(two_responses, _no_args),
    "combination:repeat_prompt": Spec(
        repeat_prompt, lambda r: {"prompt_to_repeat": _str(r, "prompt_to_repeat")}
    ),
    "startend:end_checker": Spec(end_checker, lambda r: {"end_phrase": _str(r, "end_phrase")}),
    "change_case:capital_word_frequency": Spec(
        capital_word_frequency,
        lambda r: {"capital_frequency": _int(r, "capital_frequency"),
                   "capital_relation": _relation(r, "capital_relation")},
    ),
    "change_case:english_capital": Spec(english_capital, _no_args),
    "change_case:english_lowercase": Spec(english_lowercase, _no_args),
    "punctuation:no_comma": Spec(no_comma, _no_args),
    "startend:quotation": Spec(quotation, _no_args),
}
