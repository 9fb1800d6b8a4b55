"""Brute-force reference of the decontamination rule (docs/decontam.md): every (training, eval) pair, Python tuples, no index."""

from __future__ import annotations

import re
from typing import Sequence

_TOK = re.compile(r"[^\W_]+")


def ref_tokens(text: str) -> list[str]:
    return _TOK.findall(text.lower())


def ref_grams(segments: Sequence[str], n: int) -> set[tuple[str, ...]]:
    out: set[tuple[str, ...]] = set()
    for s in segments:
        t = ref_tokens(s)
        out.update(tuple(t[i:i + n]) for i in range(len(t) - n + 1))
    return out


def ref_covered(eval_segments: Sequence[str], train_grams: set[tuple[str, ...]], n: int) -> tuple[int, int]:
    """(covered tokens, total tokens) of one eval instance against one training instance's n-gram set."""
    covered = total = 0
    for s in eval_segments:
        t = ref_tokens(s)
        flags = [False] * len(t)
        for i in range(len(t) - n + 1):
            if tuple(t[i:i + n]) in train_grams:
                for k in range(i, i + n):
                    flags[k] = True
        covered += sum(flags)
        total += len(t)
    return covered, total


def ref_matches(eval_set: Sequence[Sequence[str]], train_set: Sequence[Sequence[str]], n: int = 8,
                threshold: float = 0.5) -> list[tuple[int, int, int]]:
    out = []
    for i, tr in enumerate(train_set):
        grams = ref_grams(tr, n)
        for e, ev in enumerate(eval_set):
            cov, tot = ref_covered(ev, grams, n)
            if tot and cov / tot > threshold:
                out.append((i, e, cov))
    return out
