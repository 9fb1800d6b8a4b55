"""Tulu 3's "IF persona" preference pairs (report §5.3): the same request with one constraint relaxed.

Take a constraint prompt (a request plus verifiable constraints), rewrite it with one constraint dropped,
and let a model answer both versions. The answer to the original prompt is ``chosen``; the answer to the
relaxed prompt is ``rejected``: it is a fluent answer to almost the same request that does not try to keep
the dropped constraint, which is exactly the difference the pair should teach.

Tulu 3 had GPT-4o do the rewrite. Our constraint prompts (:mod:`tulu.data.ifeval_prompts`) are built from a
base request and one sentence per constraint, so the relaxed prompt is made exactly: the sentence of the
dropped constraint is cut out (:func:`relax`). Any prompt whose ground truth is in the ``ifeval`` verifier's
form (``instruction_id_list``, ``kwargs``, ``prompt``) and whose constraint sentences use our wording works;
a prompt where no constraint sentence can be found is reported and skipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Relaxed:
    prompt: str  # the original prompt with one constraint sentence removed
    dropped: str  # the instruction id that was dropped
    kept: tuple[str, ...]  # the instruction ids still asked for


def _phrasings(iid: str, kwargs: dict[str, Any], draws: int = 24) -> list[str]:
    """Every wording :func:`tulu.data.ifeval_prompts.describe` uses for this constraint (some pick one of a
    few phrasings at random), longest first."""
    from tulu.data.ifeval_prompts import describe

    out = {describe(iid, kwargs, random.Random(k)) for k in range(draws)}
    return sorted(out, key=len, reverse=True)


def relax(ground_truth: dict, rng: random.Random) -> Relaxed | None:
    """The prompt in ``ground_truth["prompt"]`` with one of its constraints (chosen at random) cut out, or
    None when none of the constraint sentences is found in the prompt."""
    prompt = ground_truth.get("prompt")
    ids = list(ground_truth.get("instruction_id_list") or [])
    kwargs = list(ground_truth.get("kwargs") or [{}] * len(ids))
    if not isinstance(prompt, str) or not ids:
        return None
    order = list(range(len(ids)))
    rng.shuffle(order)
    for j in order:
        for text in _phrasings(ids[j], kwargs[j] or {}):
            if text in prompt:
                relaxed = " ".join(prompt.replace(text, "", 1).split())
                return Relaxed(relaxed, ids[j], tuple(i for k, i in enumerate(ids) if k != j))
    return None


def if_pair_record(prompt: dict, relaxed: Relaxed, chosen: str, rejected: str, *, model: str,
                   chosen_follows: bool | None = None, rejected_follows: bool | None = None) -> dict:
    """A preference record: the original prompt, its answer as chosen, the relaxed prompt's answer as
    rejected; provenance says what was dropped, which model answered and (when checked) whether each side
    keeps every original constraint."""
    rec = {"messages": prompt["messages"], "chosen": [{"role": "assistant", "content": chosen}],
           "rejected": [{"role": "assistant", "content": rejected}]}
    if "id" in prompt:
        rec["id"] = f"ifpair:{prompt['id']}"
    rec["source"] = "if_persona"
    rec["provenance"] = {"relaxed_prompt": relaxed.prompt, "dropped": relaxed.dropped, "kept": list(relaxed.kept),
                         "model": model, "chosen_follows": chosen_follows, "rejected_follows": rejected_follows}
    return rec
