"""Constraint prompts for RLVR (Tulu 3's RLVR-IF data): a base instruction plus 1-3 verifiable constraints.

The constraints cover all 25 instruction types of IFEval's taxonomy
(:data:`tulu.verifiers.ifeval_instructions.SPECS`); the ground truth is the dict the ``ifeval`` verifier
reads (``instruction_id_list``, ``kwargs``, ``prompt``). The base instructions, topics and the wording of
every constraint are our own (none is taken from IFEval's test prompts), so a policy trained here is
scored on IFEval's phrasing without having seen it.

How one example is made (:func:`constraint_example`):

1. draw 1-3 instruction ids that do not conflict (:data:`CONFLICTS`: one layout, one case rule, no
   English-only content in a foreign-language answer, ...) and their structural kwargs;
2. compose a response that follows every constraint (:func:`_compose`);
3. set the count thresholds (words, sentences, letters, capital words, "fewer than" keyword counts)
   from that response, rounded to the numbers a person would write (:func:`_thresholds`);
4. check the response with the ``ifeval`` verifier itself, and a violating response against it; a draw
   for which either check disagrees is thrown away and drawn again.

So every emitted prompt is satisfiable (its ``good`` response scores 1) and non-trivial (its ``bad``
response scores 0); tests check both for thousands of draws. Deterministic under the seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tulu.data.ifeval_vocab import (
    ALL_TOPICS,
    BASES,
    CAPS,
    END_PHRASES,
    FORBIDDEN,
    FOREIGN,
    HIGHLIGHTS,
    KEYWORDS,
    OPENERS,
    PLACEHOLDERS,
    SENTENCES,
    SPLITTERS,
    YES_NO_BASES,
)

# ------------------------------------------------------------------------------------------- taxonomy
LAYOUTS = {
    "length_constraints:number_paragraphs",
    "length_constraints:nth_paragraph_first_word",
    "detectable_format:multiple_sections",
    "detectable_format:number_bullet_lists",
    "combination:two_responses",
    "detectable_format:json_format",
}
CASES = {"change_case:english_capital", "change_case:english_lowercase", "change_case:capital_word_frequency"}
# What a foreign-language or JSON answer can be combined with.
LANGUAGE_OK = {
    "punctuation:no_comma",
    "startend:quotation",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:number_sentences",
    "detectable_format:number_highlighted_sections",
    "detectable_content:number_placeholders",
    "detectable_format:number_bullet_lists",
    "combination:two_responses",
}
JSON_OK = {
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "length_constraints:number_words",
    "punctuation:no_comma",
}
PAIRS = {
    frozenset({"combination:repeat_prompt", "startend:quotation"}),
    frozenset({"combination:repeat_prompt", "length_constraints:nth_paragraph_first_word"}),
    frozenset({"combination:repeat_prompt", "combination:two_responses"}),
    frozenset({"detectable_format:constrained_response", "change_case:english_capital"}),
    frozenset({"detectable_format:constrained_response", "change_case:english_lowercase"}),
    frozenset({"detectable_format:multiple_sections", "change_case:english_capital"}),
    frozenset({"detectable_format:multiple_sections", "change_case:english_lowercase"}),
    frozenset({"startend:quotation", "detectable_format:number_bullet_lists"}),
    frozenset({"keywords:existence", "keywords:forbidden_words"}),
    frozenset({"keywords:frequency", "keywords:forbidden_words"}),
}


def conflicts(a: str, b: str) -> bool:
    """True when instructions ``a`` and ``b`` cannot be asked together (or are the same type)."""
    if a == b or frozenset({a, b}) in PAIRS:
        return True
    if a in LAYOUTS and b in LAYOUTS or a in CASES and b in CASES:
        return True
    for solo, ok in (("language:response_language", LANGUAGE_OK), ("detectable_format:json_format", JSON_OK)):
        if a == solo and b not in ok or b == solo and a not in ok:
            return True
    return False


@dataclass(frozen=True)
class ConstraintExample:
    prompt: str  # the user turn: base instruction, then the constraints
    base: str  # the base instruction alone
    topic: str
    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict, ...]
    good: str  # follows every constraint (checked with the ifeval verifier)
    bad: str  # breaks at least one (checked)

    @property
    def ground_truth(self) -> dict[str, Any]:
        return {
            "instruction_id_list": list(self.instruction_ids),
            "kwargs": [dict(k) for k in self.kwargs],
            "prompt": self.prompt,
        }


# ------------------------------------------------------------------------------------------- sampling
def _draw_ids(rng: random.Random, ids: list[str], max_constraints: int) -> list[str]:
    k = rng.choices([1, 2, 3], weights=[4, 3, 2])[0]
    k = min(k, max_constraints)
    chosen: list[str] = []
    for iid in rng.sample(ids, len(ids)):
        if len(chosen) == k:
            break
        if not any(conflicts(iid, c) for c in chosen):
            chosen.append(iid)
    return chosen


def _structural_kwargs(rng: random.Random, iid: str, base: str) -> dict[str, Any]:
    """The kwargs decided before the response is written (counts the response is built to meet)."""
    rel = rng.choice(["less than", "at least"])
    return {
        "keywords:existence": lambda: {"keywords": rng.sample(KEYWORDS, rng.randint(1, 2))},
        "keywords:frequency": lambda: {
            "keyword": rng.choice(KEYWORDS),
            "relation": rel,
            "frequency": rng.randint(1, 3) if rel == "at least" else rng.randint(2, 4),
        },
        "keywords:forbidden_words": lambda: {"forbidden_words": rng.sample(FORBIDDEN, rng.randint(1, 3))},
        "keywords:letter_frequency": lambda: {
            "letter": rng.choice("abcdefghiklmnoprstuwy"),
            "let_relation": rel,
        },
        "language:response_language": lambda: {"language": rng.choice(sorted(FOREIGN))},
        "length_constraints:number_sentences": lambda: {"relation": rel},
        "length_constraints:number_paragraphs": lambda: {"num_paragraphs": rng.randint(2, 4)},
        "length_constraints:number_words": lambda: {"relation": rel},
        "length_constraints:nth_paragraph_first_word": lambda: _nth(rng),
        "detectable_content:number_placeholders": lambda: {"num_placeholders": rng.randint(1, 3)},
        "detectable_content:postscript": lambda: {"postscript_marker": rng.choice(["P.S.", "P.P.S"])},
        "detectable_format:number_bullet_lists": lambda: {"num_bullets": rng.randint(2, 5)},
        "detectable_format:constrained_response": dict,
        "detectable_format:number_highlighted_sections": lambda: {"num_highlights": rng.randint(1, 3)},
        "detectable_format:multiple_sections": lambda: {
            "section_spliter": rng.choice(SPLITTERS),
            "num_sections": rng.randint(2, 4),
        },
        "detectable_format:json_format": dict,
        "detectable_format:title": dict,
        "combination:two_responses": dict,
        "combination:repeat_prompt": lambda: {"prompt_to_repeat": base},
        "startend:end_checker": lambda: {"end_phrase": rng.choice(END_PHRASES)},
        "change_case:capital_word_frequency": lambda: {"capital_relation": rel},
        "change_case:english_capital": dict,
        "change_case:english_lowercase": dict,
        "punctuation:no_comma": dict,
        "startend:quotation": dict,
    }[iid]()


def _nth(rng: random.Random) -> dict[str, Any]:
    n = rng.randint(2, 4)
    return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(OPENERS)}


# ------------------------------------------------------------------------------------ the response
def _fill(rng: random.Random, topic: str, k: int, lang: str) -> list[str]:
    if lang != "en":
        return rng.sample(FOREIGN[lang][1], k)
    return [s.format(t=topic, T=topic[0].upper() + topic[1:]) for s in rng.sample(SENTENCES, k)]


def _compose(rng: random.Random, topic: str, base: str, spec: dict[str, dict]) -> str:
    """A response that follows every instruction in ``spec`` (id -> structural kwargs)."""
    has = spec.__contains__
    lang = spec.get("language:response_language", {}).get("language", "en")
    # 1. layout: a list of parts, each a list of sentences
    if has("length_constraints:number_paragraphs"):
        n_parts = spec["length_constraints:number_paragraphs"]["num_paragraphs"]
    elif has("length_constraints:nth_paragraph_first_word"):
        n_parts = spec["length_constraints:nth_paragraph_first_word"]["num_paragraphs"]
    elif has("detectable_format:multiple_sections"):
        n_parts = spec["detectable_format:multiple_sections"]["num_sections"]
    elif has("detectable_format:number_bullet_lists"):
        n_parts = spec["detectable_format:number_bullet_lists"]["num_bullets"]
    elif has("combination:two_responses"):
        n_parts = 2
    else:
        n_parts = 1
    per = (
        1
        if has("detectable_format:number_bullet_lists")
        else rng.randint(1, 3)
        if n_parts > 1
        else rng.randint(2, 4)
    )
    pool = _fill(rng, topic, min(len(SENTENCES) if lang == "en" else 5, n_parts * per), lang)
    parts = [pool[i * per : (i + 1) * per] or [pool[i % len(pool)]] for i in range(n_parts)]
    if has("combination:two_responses") and parts[0] == parts[1]:
        parts[1] = parts[1][::-1] + ["That is another way to see it."]
    # 2. content woven into the parts (never at the start of a line)
    extra: list[str] = []
    if has("detectable_format:constrained_response"):
        parts[0].append(rng.choice(["My answer is yes.", "My answer is no.", "My answer is maybe."]))
    if has("keywords:existence"):
        words = spec["keywords:existence"]["keywords"]
        extra.append(f"It also makes me think of {' and '.join(words)}.")
    kf = spec.get("keywords:frequency")
    if kf and kf["relation"] == "at least":
        extra += [f"The word {kf['keyword']} fits here too." for _ in range(kf["frequency"])]
    if has("detectable_format:number_highlighted_sections"):
        n = spec["detectable_format:number_highlighted_sections"]["num_highlights"]
        extra += [f"This is *{h}* to remember." for h in rng.sample(HIGHLIGHTS, n)]
    if has("detectable_content:number_placeholders"):
        n = spec["detectable_content:number_placeholders"]["num_placeholders"]
        extra.append(f"Please write to {' and '.join(rng.sample(PLACEHOLDERS, n))} for details.")
    if spec.get("change_case:capital_word_frequency", {}).get("capital_relation") == "at least":
        extra.append("Remember these words: " + " ".join(rng.sample(CAPS, rng.randint(2, 5))) + ".")
    for j, s in enumerate(extra):
        parts[j % n_parts].append(s)
    # 3. render the layout
    if has("length_constraints:nth_paragraph_first_word"):
        a = spec["length_constraints:nth_paragraph_first_word"]
        k = a["nth_paragraph"] - 1
        first = parts[k][0]
        parts[k][0] = f"{a['first_word'].capitalize()} {first[0].lower()}{first[1:]}"
    texts = [" ".join(p) for p in parts]
    if has("detectable_format:number_bullet_lists"):
        body = "\n".join(f"* {t}" for t in texts)
    elif has("detectable_format:multiple_sections"):
        sp = spec["detectable_format:multiple_sections"]["section_spliter"]
        body = "\n\n".join(f"{sp} {i}\n{t}" for i, t in enumerate(texts, 1))
    elif has("length_constraints:number_paragraphs"):
        body = "\n***\n".join(texts)
    elif has("combination:two_responses"):
        body = "\n******\n".join(texts)
    else:
        body = "\n\n".join(texts)
    # 4. before and after the body
    if has("detectable_format:title"):
        body = f"<<{topic[0].upper() + topic[1:]}>>\n{body}"
    if has("combination:repeat_prompt"):
        body = f"{base}\n{body}"
    if has("detectable_content:postscript"):
        marker = spec["detectable_content:postscript"]["postscript_marker"]
        gap = "\n" if has("length_constraints:nth_paragraph_first_word") else "\n\n"  # not a new paragraph
        body = f"{body}{gap}{marker} {_fill(rng, topic, 1, lang)[0]}"
    if has("startend:end_checker"):
        body = f"{body}\n{spec['startend:end_checker']['end_phrase']}"
    if has("change_case:english_lowercase"):
        body = body.lower()
    if has("change_case:english_capital"):
        body = body.upper()
    if has("detectable_format:json_format"):
        key = "ANSWER" if has("change_case:english_capital") else "answer"
        obj = {key: body} if has("punctuation:no_comma") else {"topic": topic, key: body}
        if has("change_case:english_capital"):
            obj = {k.upper(): v.upper() for k, v in obj.items()}
        body = json.dumps(obj, ensure_ascii=False)
    if has("punctuation:no_comma"):
        body = body.replace(",", "")
    if has("startend:quotation"):
        body = f'"{body}"'
    return body


# ------------------------------------------------------------------------------------ thresholds
def _round_above(x: int) -> int:
    step = 5 if x < 50 else 10
    return (x // step + 1) * step


def _round_below(x: int) -> int:
    step = 5 if x < 50 else 10
    return max(1, (x // step) * step)


def _thresholds(rng: random.Random, spec: dict[str, dict], response: str) -> dict[str, dict]:
    """Final kwargs: the count thresholds are set from the composed response (always satisfiable)."""
    import re

    from tulu.verifiers.ifeval_instructions import count_words
    from tulu.verifiers.punkt import count_sentences
    from tulu.verifiers.treebank import word_tokenize

    out = {k: dict(v) for k, v in spec.items()}
    for iid, a in out.items():
        if iid == "length_constraints:number_words":
            n = count_words(response)
            if n < 10:
                a["relation"] = "less than"
            a["num_words"] = _round_above(n) if a["relation"] == "less than" else max(5, _round_below(n))
        elif iid == "length_constraints:number_sentences":
            n = count_sentences(response)
            if n < 3:
                a["relation"] = "less than"
            a["num_sentences"] = (
                n + rng.randint(1, 3) if a["relation"] == "less than" else max(2, n - rng.randint(0, 2))
            )
        elif iid == "keywords:letter_frequency":
            n = response.lower().count(a["letter"])
            if a["let_relation"] == "at least" and n < 3:
                a["let_relation"] = "less than"
            a["let_frequency"] = (
                n + rng.randint(1, 5)
                if a["let_relation"] == "less than"
                else max(2, n - rng.randint(0, n // 2))
            )
        elif iid == "change_case:capital_word_frequency":
            n = sum(1 for w in word_tokenize(response) if w.isupper())
            if n < 2:
                a["capital_relation"] = "less than"
            a["capital_frequency"] = (
                n + rng.randint(1, 4)
                if a["capital_relation"] == "less than"
                else max(2, n - rng.randint(0, 1))
            )
        elif iid == "keywords:frequency" and a["relation"] == "less than":
            n = len(re.findall(a["keyword"], response, re.IGNORECASE))
            a["frequency"] = max(a["frequency"], n + 1)
    return out


# ------------------------------------------------------------------------------------ prompt text
def _listing(words: list[str]) -> str:
    quoted = [f'"{w}"' for w in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def describe(iid: str, a: dict[str, Any], rng: random.Random) -> str:
    """Our own wording of one instruction with its kwargs."""
    fewer = {"less than": "fewer than", "at least": "at least"}
    if iid == "keywords:existence":
        return rng.choice(
            ["Make sure your answer uses the word{s} {w}.", "Include the keyword{s} {w}."]
        ).format(s="s" if len(a["keywords"]) > 1 else "", w=_listing(a["keywords"]))
    if iid == "keywords:frequency":
        return f'The word "{a["keyword"]}" should appear {fewer[a["relation"]]} {a["frequency"]} times.'
    if iid == "keywords:forbidden_words":
        return rng.choice(
            ["Do not use the word{s} {w} anywhere.", "Avoid the word{s} {w} in your reply."]
        ).format(s="s" if len(a["forbidden_words"]) > 1 else "", w=_listing(a["forbidden_words"]))
    if iid == "keywords:letter_frequency":
        return (
            f'The letter "{a["letter"]}" should appear {fewer[a["let_relation"]]} {a["let_frequency"]} times.'
        )
    if iid == "language:response_language":
        name = FOREIGN[a["language"]][0]
        return rng.choice(
            [f"Write your whole answer in {name}; no other language is allowed.", f"Respond only in {name}."]
        )
    if iid == "length_constraints:number_sentences":
        return f"Use {fewer[a['relation']]} {a['num_sentences']} sentences."
    if iid == "length_constraints:number_paragraphs":
        return (
            f"Write exactly {a['num_paragraphs']} paragraphs and put the markdown divider *** "
            "between one paragraph and the next."
        )
    if iid == "length_constraints:number_words":
        return (
            f"Keep your answer under {a['num_words']} words."
            if a["relation"] == "less than"
            else f"Write at least {a['num_words']} words."
        )
    if iid == "length_constraints:nth_paragraph_first_word":
        return (
            f"Write {a['num_paragraphs']} paragraphs separated by blank lines (two newlines); "
            f'paragraph number {a["nth_paragraph"]} has to begin with the word "{a["first_word"]}".'
        )
    if iid == "detectable_content:number_placeholders":
        return (
            f"Leave at least {a['num_placeholders']} placeholder{'s' if a['num_placeholders'] > 1 else ''} "
            "in square brackets for the reader to fill in (like [name])."
        )
    if iid == "detectable_content:postscript":
        return f"Add a postscript at the end that starts with {a['postscript_marker']}"
    if iid == "detectable_format:number_bullet_lists":
        return (
            f'Give exactly {a["num_bullets"]} markdown bullet points (lines that start with "* ") '
            "and no other list items."
        )
    if iid == "detectable_format:constrained_response":
        return 'Reply with one of: "My answer is yes.", "My answer is no.", "My answer is maybe."'
    if iid == "detectable_format:number_highlighted_sections":
        return (
            f"Highlight at least {a['num_highlights']} part{'s' if a['num_highlights'] > 1 else ''} of your "
            "answer in markdown, like *this part*."
        )
    if iid == "detectable_format:multiple_sections":
        sp = a["section_spliter"]
        return (
            f"Organize your answer in {a['num_sections']} sections; start each one with a line "
            f'"{sp} X" where X is its number ({sp} 1 first).'
        )
    if iid == "detectable_format:json_format":
        return "The whole output must be valid JSON (a markdown code fence around it is fine)."
    if iid == "detectable_format:title":
        return "Start with a title inside double angle brackets, for example <<a good title>>."
    if iid == "combination:two_responses":
        return "Give two different answers separated by a line of six asterisks (******)."
    if iid == "combination:repeat_prompt":
        return (
            "Before you answer, repeat the request above word for word; say nothing before it and "
            "leave out this sentence."
        )
    if iid == "startend:end_checker":
        return f'Close with the exact phrase "{a["end_phrase"]}" and write nothing after it.'
    if iid == "change_case:capital_word_frequency":
        return f"Use {fewer[a['capital_relation']]} {a['capital_frequency']} words written in ALL CAPITALS."
    if iid == "change_case:english_capital":
        return "Your whole answer must be in English and in capital letters only."
    if iid == "change_case:english_lowercase":
        return "Write your whole answer in English using lowercase letters only; no capital letters."
    if iid == "punctuation:no_comma":
        return rng.choice(["Do not use any commas.", "Your answer must not contain a single comma."])
    if iid == "startend:quotation":
        return "Put double quotation marks around your entire answer."
    raise KeyError(iid)


# ------------------------------------------------------------------------------------ one example
def _bad_candidates(rng: random.Random, topic: str) -> list[str]:
    """Responses that ignore the constraints, most natural first: a plain paragraph, a long rambling one that
    uses every listed word (so that "fewer than" and "do not use" constraints fail too), a one-word reply."""
    plain = " ".join(_fill(rng, topic, 3, "en"))
    plain = plain[:-1] + ", and that is all."
    sink = f"{plain} Some words: {' '.join(KEYWORDS * 5)} {' '.join(FORBIDDEN)} {' '.join(CAPS * 3)}."
    return [plain, "\n".join([sink] * 12), "Sure"]


def constraint_example(
    rng: random.Random,
    *,
    max_constraints: int = 3,
    keep: Callable[[str], bool] | None = None,
    attempts: int = 2000,
) -> ConstraintExample:
    """One verified constraint prompt (see the module docstring for the steps). ``keep(prompt)``, when
    given, rejects a drawn prompt before the (costlier) verification, e.g. one of the other split."""
    from tulu.verifiers.ifeval import follow_instructions
    from tulu.verifiers.ifeval_instructions import SPECS

    ids = sorted(SPECS)
    for _ in range(attempts):
        topic = rng.choice(ALL_TOPICS)
        chosen = _draw_ids(rng, ids, max_constraints)
        yes_no = "detectable_format:constrained_response" in chosen
        base = rng.choice(YES_NO_BASES if yes_no else BASES).format(t=topic)
        spec = {iid: _structural_kwargs(rng, iid, base) for iid in chosen}
        good = _compose(rng, topic, base, spec)
        final = _thresholds(rng, spec, good)
        lines = [describe(iid, final[iid], rng) for iid in chosen]
        prompt = base + " " + " ".join(lines)
        if keep is not None and not keep(prompt):
            continue
        gt = {"instruction_id_list": chosen, "kwargs": [final[i] for i in chosen], "prompt": prompt}
        if not follow_instructions(good, gt).prompt_strict:
            continue
        bad = next(
            (b for b in _bad_candidates(rng, topic) if not follow_instructions(b, gt).prompt_strict), None
        )
        if bad is None:
            continue
        return ConstraintExample(
            prompt, base, topic, tuple(chosen), tuple(final[i] for i in chosen), good, bad
        )
    raise RuntimeError(f"no satisfiable constraint prompt in {attempts} draws (a bug in the conflict table)")
