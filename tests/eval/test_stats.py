"""Paired tests against hand computations."""

from __future__ import annotations

import pytest

from tulu.eval.stats import mcnemar_exact, paired_bootstrap, paired_test


def test_mcnemar_counts_only_discordant_items():
    # 6 items improved, 1 worsened, 3 unchanged: n = 7 discordant, P[X <= 1] = (1 + 7) / 128
    before = [0] * 6 + [1] + [1, 1, 0]
    after = [1] * 6 + [0] + [1, 1, 0]
    r = mcnemar_exact(before, after)
    assert r.discordant == (6, 1)
    assert r.p_value == pytest.approx(2 * 8 / 128)
    assert (r.before, r.after, r.delta) == pytest.approx((0.3, 0.8, 0.5))  # 3/10 -> 8/10
    assert not r.significant


def test_mcnemar_edges():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]).p_value == 1.0  # nothing changed
    r = mcnemar_exact([0] * 10, [1] * 10)  # 10 of 10 improved: 2 / 2^10
    assert r.p_value == pytest.approx(2 / 1024) and r.significant
    assert mcnemar_exact([0, 1], [1, 0]).p_value == 1.0  # one each way: capped at 1
    with pytest.raises(ValueError, match="0 or 1"):
        mcnemar_exact([0.5], [1])
    with pytest.raises(ValueError, match="same items"):
        mcnemar_exact([1, 0], [1])


def test_paired_bootstrap():
    same = paired_bootstrap([0.2, 0.5, 0.9], [0.2, 0.5, 0.9], samples=2000)
    assert (same.delta, same.low, same.high, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    shift = paired_bootstrap([0.1, 0.3, 0.2, 0.4], [0.6, 0.8, 0.7, 0.9], samples=2000)
    assert shift.delta == pytest.approx(0.5) and shift.low == pytest.approx(0.5) and shift.high == pytest.approx(0.5)
    assert shift.p_value == 0.0 and shift.significant
    # one item of 0.5 among zeros: the interval spans 0 and the mean difference is 0.5 / 4
    mixed = paired_bootstrap([0, 0, 0, 0], [0.5, 0, 0, 0], samples=4000, seed=1)
    assert mixed.delta == pytest.approx(0.125) and mixed.low == 0.0 and mixed.high > 0.125
    # P[the resample misses the one item] = (3/4)^4 = 0.316; p = 2 x that share
    assert mixed.p_value == pytest.approx(2 * 0.75**4, abs=0.05)


def test_paired_test_picks_the_test():
    assert paired_test([0, 1], [1, 1]).test == "mcnemar"
    assert paired_test([0.5, 1], [1, 1], samples=100).test == "paired bootstrap"
