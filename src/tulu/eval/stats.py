"""Paired significance tests for "did this stage change the score?" on the same items before and after.

* :func:`mcnemar_exact` for 0/1 scores (Tulu 3's verifiable metrics): only the discordant items count, ``b``
  (right after, wrong before) and ``c`` (the reverse). Under "no change" each discordant item goes either way
  with probability 1/2, so the two-sided p-value is ``min(1, 2·P[Binomial(b + c, 1/2) <= min(b, c)])``
  (McNemar 1947, in its exact binomial form).
* :func:`paired_bootstrap` for any per-item scores: resample the items with replacement (the same resample for
  both sides) and read the mean difference's percentile interval; the two-sided p-value is twice the smaller
  share of resampled differences on either side of 0 (Efron & Tibshirani 1993, ch. 16; Koehn 2004).

Pure functions on lists of numbers; tests/eval/test_stats.py checks them against hand computations.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class PairedResult:
    n: int
    before: float  # mean score before
    after: float  # mean score after
    delta: float  # after - before
    low: float  # confidence interval of delta (bootstrap), or delta for McNemar
    high: float
    p_value: float
    test: str
    discordant: tuple[int, int] | None = None  # McNemar's (b, c): (improved, worsened)

    @property
    def significant(self) -> bool:
        return self.p_value < 0.05


def _check(before: Sequence[float], after: Sequence[float]) -> int:
    if len(before) != len(after):
        raise ValueError(f"paired test: {len(before)} scores before but {len(after)} after (same items needed)")
    if not before:
        raise ValueError("paired test: no items")
    return len(before)


def mcnemar_exact(before: Sequence[float], after: Sequence[float]) -> PairedResult:
    """Exact McNemar test on 0/1 scores of the same items."""
    n = _check(before, after)
    if any(v not in (0, 1, 0.0, 1.0) for v in (*before, *after)):
        raise ValueError("mcnemar_exact: scores must be 0 or 1 (use paired_bootstrap for graded scores)")
    b = sum(1 for x, y in zip(before, after) if y and not x)
    c = sum(1 for x, y in zip(before, after) if x and not y)
    m = b + c
    tail = sum(math.comb(m, k) for k in range(min(b, c) + 1)) / 2**m if m else 1.0
    p = min(1.0, 2 * tail)
    mb, ma = sum(before) / n, sum(after) / n
    return PairedResult(n, mb, ma, ma - mb, ma - mb, ma - mb, p, "mcnemar", (b, c))


def paired_bootstrap(before: Sequence[float], after: Sequence[float], *, samples: int = 10_000,
                     confidence: float = 0.95, seed: int = 0) -> PairedResult:
    """Paired bootstrap of the mean difference ``after - before`` over the same items."""
    n = _check(before, after)
    diffs = [y - x for x, y in zip(before, after)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    alpha = (1 - confidence) / 2
    low, high = means[int(alpha * (samples - 1))], means[int((1 - alpha) * (samples - 1))]
    below = sum(1 for m in means if m <= 0) / samples
    above = sum(1 for m in means if m >= 0) / samples
    p = min(1.0, 2 * min(below, above))
    mb, ma = sum(before) / n, sum(after) / n
    return PairedResult(n, mb, ma, ma - mb, low, high, p, "paired bootstrap")


def paired_test(before: Sequence[float], after: Sequence[float], **kwargs) -> PairedResult:
    """McNemar for 0/1 scores, the paired bootstrap otherwise."""
    if all(v in (0, 1, 0.0, 1.0) for v in (*before, *after)):
        return mcnemar_exact(before, after)
    return paired_bootstrap(before, after, **kwargs)
