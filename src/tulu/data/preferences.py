"""Preference-specific data helpers: tokenized pairs, and pairs built from a model's own samples.

* :func:`encode_pairs` turns canonical preference records into token ids with labels on the response
  only (prompt shared by both sides), dropping pairs whose response is truncated away.
* :func:`pairs_from_samples` builds on-policy preference pairs the way Tulu 3's pipeline does in spirit
  (sample several completions per prompt, score them, pair a better with a worse one), with a verifier
  as the judge: for each prompt, a completion the verifier accepts becomes ``chosen`` and one it rejects
  becomes ``rejected``. Prompts where all samples agree yield no pair. The sampling and the verifier
  calls live in ``tulu.train.dpo`` (data knows nothing of rollout or verifiers); the scorer is passed in.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from tulu.data.templates import Encoded, Template, encode_prompt_response

log = logging.getLogger(__name__)


@dataclass
class EncodedPair:
    chosen: Encoded
    rejected: Encoded
    index: int  # position of the record in the input list

    @property
    def num_tokens(self) -> int:
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)


def encode_pairs(records: Sequence[dict], tokenizer, template: Template = "tokenizer",
                 max_length: int | None = None) -> tuple[list[EncodedPair], int]:
    """(encoded pairs, number dropped because truncation left a side without response tokens)."""
    out, dropped = [], 0
    for i, rec in enumerate(records):
        c = encode_prompt_response(rec["messages"], rec["chosen"], tokenizer, template, max_length)
        r = encode_prompt_response(rec["messages"], rec["rejected"], tokenizer, template, max_length)
        if c.num_label_tokens == 0 or r.num_label_tokens == 0:
            dropped += 1
            continue
        out.append(EncodedPair(c, r, i))
    if dropped:
        log.warning("%d of %d preference pairs have no response tokens left after truncation to %s; dropped",
                    dropped, len(records), max_length)
    return out, dropped


def pick_pair(texts: Sequence[str], scores: Sequence[float], rng: random.Random) -> tuple[str, str] | None:
    """A (chosen, rejected) pair: a best-scoring text against a worst-scoring one, or None when all scores
    tie or the two texts are identical. Picks at random among ties, deterministically under ``rng``."""
    if len(texts) != len(scores) or not texts:
        return None
    hi, lo = max(scores), min(scores)
    if hi <= lo:
        return None
    best = [t for t, s in zip(texts, scores) if s == hi]
    worst = [t for t, s in zip(texts, scores) if s == lo]
    c, r = rng.choice(best), rng.choice(worst)
    if c.strip() == r.strip():
        return None
    return c, r


def pairs_from_samples(prompts: Sequence[dict], samples: Sequence[Sequence[str]],
                       score: Callable[[str, Any, str], float], seed: int = 0) -> list[dict]:
    """Preference records from ``samples[i]`` (several completions of ``prompts[i]``, an RL prompt record
    with ``messages``, ``ground_truth`` and ``verifier``), scored by ``score(verifier, text, ground_truth)``."""
    rng = random.Random(seed)
    out = []
    for rec, texts in zip(prompts, samples):
        scores = [score(rec["verifier"], t, rec["ground_truth"]) for t in texts]
        pair = pick_pair(list(texts), scores, rng)
        if pair is None:
            continue
        out.append({"messages": rec["messages"], "chosen": [{"role": "assistant", "content": pair[0]}],
                    "rejected": [{"role": "assistant", "content": pair[1]}],
                    **{k: rec[k] for k in ("id", "source") if k in rec}})
    return out
