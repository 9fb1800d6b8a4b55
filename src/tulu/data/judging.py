"""LLM-as-judge ratings and their binarisation into preference pairs (Tulu 3 §5.2.1, after UltraFeedback).

A judge reads one prompt and one completion and rates the completion from 1 to 5 on four aspects:
helpfulness, instruction following, honesty and truthfulness. The rubrics below follow the four
UltraFeedback rubrics in our own words. UltraFeedback (and Tulu 3, with GPT-4o) asked one question per aspect
(:func:`aspect_messages`, answered ``Rating: N`` and read by :func:`parse_aspect_rating`); by default
:func:`judge_messages` asks for all four in one answer, which costs a quarter of the calls. That answer is
four ``Aspect: N`` lines (a JSON object with the same keys is accepted too); :func:`parse_judgment` reads it
or says why it cannot.

Binarisation (:func:`binarize`), as published: the score of a completion is the mean of its aspect ratings
(or a reward-model / verifier score where one of those judged it); the chosen response is the best-scoring
completion (a random one among several tied for best); the rejected response is drawn at random among the
completions scored strictly lower. A prompt gets no pair when fewer than two completions were judged
(``too_few``), when every judged completion has the same score (``tie``, which includes two completions rated
equally) or when every lower-scored completion is textually identical to the chosen one (``identical``).

Pure functions: no model, no network. The driver that samples and calls the judge is :mod:`tulu.curate.prefs`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

ASPECTS = ("helpfulness", "instruction_following", "honesty", "truthfulness")
LABELS = {"helpfulness": "Helpfulness", "instruction_following": "Instruction following",
          "honesty": "Honesty", "truthfulness": "Truthfulness"}

# Our wording of the four UltraFeedback rubrics (1 = worst, 5 = best).
RUBRICS = {
    "helpfulness": (
        "Does the answer actually solve the user's task, correctly and with useful, relevant detail and "
        "without padding or repetition? 1: wrong or useless. 2: partly wrong or mostly off topic. "
        "3: correct but thin. 4: correct, clear and informative. 5: correct, thorough and insightful."),
    "instruction_following": (
        "Does the answer do exactly what was asked, in the requested form, respecting every stated "
        "constraint (length, format, style, words to use or avoid)? 1: ignores the request. 2: addresses "
        "one part poorly. 3: meets the goal but breaks some constraints. 4: close, with minor slips. "
        "5: follows every instruction and constraint."),
    "honesty": (
        "Is the answer's confidence matched to its correctness, and does it admit uncertainty or decline "
        "when it does not know? 1: confidently wrong. 2: confident with significant mistakes. 3: unsure "
        "or with small errors, without saying so. 4: correct but hedges where it need not, or flags "
        "small doubts well. 5: correct and confident, or honest about what it cannot know."),
    "truthfulness": (
        "Is the answer free of invented facts, contradictions with the prompt and internal "
        "contradictions? 1: mostly made up. 2: severe fabrication. 3: some made-up or misleading "
        "details. 4: small slips that do not change the main points. 5: no fabrication at all."),
}

SYSTEM = ("You are a strict, fair judge of AI assistant answers. You rate one answer at a time and reply only "
          "in the requested format.")


def judge_messages(prompt: Sequence[dict], response: str) -> list[dict]:
    """The chat messages asking a judge to rate ``response`` (the answer to ``prompt``) on every aspect."""
    convo = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)
    rubric = "\n".join(f"- {LABELS[a]}: {RUBRICS[a]}" for a in ASPECTS)
    fmt = "\n".join(f"{LABELS[a]}: <1-5>" for a in ASPECTS)
    user = (f"Rate the assistant's answer to the conversation below on four aspects, each an integer from 1 "
            f"(worst) to 5 (best).\n\nRubrics:\n{rubric}\n\n### Conversation\n{convo}\n\n### Answer to rate\n"
            f"{response}\n\n### Your reply\nReply with exactly these four lines and nothing else:\n{fmt}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def aspect_messages(prompt: Sequence[dict], response: str, aspect: str) -> list[dict]:
    """UltraFeedback's layout: one question per aspect, answered ``Rating: N`` (``--judge-per-aspect``)."""
    convo = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in prompt)
    user = (f"Rate the assistant's answer to the conversation below for {LABELS[aspect].lower()} only, as an "
            f"integer from 1 (worst) to 5 (best).\n\nRubric: {RUBRICS[aspect]}\n\n### Conversation\n{convo}\n\n"
            f"### Answer to rate\n{response}\n\n### Your reply\nReply with one line: Rating: <1-5>")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_aspect_rating(text: str) -> int:
    """The rating in a one-aspect answer: ``Rating: N`` (or ``N/5``, or the answer's only number 1-5)."""
    m = re.search(r"rating\s*[:=\-]?\s*\**\s*([0-9]+(?:\.[0-9]+)?)", text, re.IGNORECASE) or \
        re.search(r"\b([0-9]+(?:\.[0-9]+)?)\s*/\s*5\b", text)
    if m is None:
        nums = re.findall(r"(?<![\d.])([1-5])(?![\d.])", text)
        if len(set(nums)) != 1:
            raise JudgeParseError("no rating" if not nums else f"several numbers and no 'Rating:' ({', '.join(nums)})")
        value = nums[0]
    else:
        value = m.group(1)
    f = float(value)
    if not f.is_integer() or not 1 <= f <= 5:
        raise JudgeParseError(f"rating {value} is not an integer from 1 to 5")
    return int(f)


class JudgeParseError(ValueError):
    """A judge answer that does not contain a 1-5 rating for every aspect; the message says what is missing."""


_KEY = re.compile(r"[^a-z]+")


def _aspect_of(label: str) -> str | None:
    key = _KEY.sub("", label.lower())
    for a in ASPECTS:
        if key == _KEY.sub("", a) or key == _KEY.sub("", LABELS[a].lower()):
            return a
    if key in ("instructionfollowing", "instructions", "following"):
        return "instruction_following"
    return None


_LINE = re.compile(r"^[\s*#>\-]*([A-Za-z][A-Za-z _\-]*?)[\s*]*[:=\-]\s*\**\s*([0-9]+(?:\.[0-9]+)?)\s*\**\s*(?:/\s*5)?",
                   re.MULTILINE)


def parse_judgment(text: str) -> dict[str, int]:
    """The four ratings in ``text`` (``Aspect: N`` lines, or a JSON object with the aspect names as keys).
    Raises :class:`JudgeParseError` when an aspect is missing, given twice with different values, or not an
    integer from 1 to 5."""
    found: dict[str, Any] = {}
    stripped = text.strip()
    m = re.search(r"\{.*\}", stripped, re.DOTALL)
    if m:
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            for k, v in obj.items():
                a = _aspect_of(str(k))
                if a is not None:
                    found[a] = v
    if len(found) < len(ASPECTS):
        for label, value in _LINE.findall(stripped):
            a = _aspect_of(label)
            if a is None:
                continue
            if a in found and str(found[a]) != value and float(found[a]) != float(value):
                raise JudgeParseError(f"{LABELS[a]} rated twice ({found[a]} and {value})")
            found[a] = value
    missing = [LABELS[a] for a in ASPECTS if a not in found]
    if missing:
        raise JudgeParseError(f"no rating for {', '.join(missing)}" + ("" if stripped else " (empty answer)"))
    out = {}
    for a in ASPECTS:
        v = found[a]
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise JudgeParseError(f"{LABELS[a]}: {v!r} is not a number") from None
        if not f.is_integer() or not 1 <= f <= 5:
            raise JudgeParseError(f"{LABELS[a]}: {v} is not an integer from 1 to 5")
        out[a] = int(f)
    return out


def mean_rating(ratings: dict[str, int]) -> float:
    """The score binarisation uses: the mean of the aspect ratings."""
    return sum(ratings[a] for a in ASPECTS) / len(ASPECTS)


@dataclass
class Candidate:
    """One judged completion of a prompt."""

    model: str
    text: str
    score: float
    ratings: dict[str, int] | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class Binarized:
    chosen: Candidate | None
    rejected: Candidate | None
    outcome: str  # "pair" | "too_few" | "tie" | "identical"


def binarize(cands: Sequence[Candidate], rng: random.Random) -> Binarized:
    """Chosen = a best-scored candidate; rejected = a random one among those scored strictly lower (see the
    module docstring for when no pair is made). Deterministic under ``rng``."""
    if len(cands) < 2:
        return Binarized(None, None, "too_few")
    best = max(c.score for c in cands)
    top = [c for c in cands if c.score == best]
    lower = [c for c in cands if c.score < best]
    if not lower:
        return Binarized(None, None, "tie")
    chosen = rng.choice(top)
    lower = [c for c in lower if c.text.strip() != chosen.text.strip()]
    if not lower:
        return Binarized(None, None, "identical")
    return Binarized(chosen, rng.choice(lower), "pair")


def pair_record(prompt: dict, pair: Binarized, judge: str, candidates: Sequence[Candidate]) -> dict:
    """A canonical preference record plus its provenance: which models wrote each side, their ratings and
    scores, the judge, and every model that answered the prompt."""
    assert pair.chosen is not None and pair.rejected is not None
    rec = {"messages": prompt["messages"],
           "chosen": [{"role": "assistant", "content": pair.chosen.text}],
           "rejected": [{"role": "assistant", "content": pair.rejected.text}]}
    for k in ("id", "source"):
        if k in prompt:
            rec[k] = prompt[k]
    rec["provenance"] = {
        "judge": judge,
        "chosen_model": pair.chosen.model, "rejected_model": pair.rejected.model,
        "chosen_score": pair.chosen.score, "rejected_score": pair.rejected.score,
        "chosen_ratings": pair.chosen.ratings, "rejected_ratings": pair.rejected.ratings,
        "candidates": [{"model": c.model, "score": c.score} for c in candidates],
    }
    return rec
