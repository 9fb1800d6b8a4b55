"""RLVR formulas (tulu.train.advantages, tulu.train.rl_losses) against hand computations.

Every expected number is written out or computed here with plain Python (`math`, loops over lists), never
by calling the code under test. Shapes: padded [B, T] response tensors with a [B, T] response mask.
"""

from __future__ import annotations

import math
import random

import pytest
import torch

from tulu.train import advantages as A
from tulu.train import rl_losses as R

F64 = torch.float64


def t(xs, dtype=F64):
    return torch.tensor(xs, dtype=dtype)


def approx(x, **kw):
    return pytest.approx(x, abs=kw.pop("abs", 1e-9), **kw)


def close(actual: torch.Tensor, expected, abs: float = 1e-9) -> None:
    """``actual`` equals the (nested) list ``expected`` entry by entry within ``abs``."""
    torch.testing.assert_close(actual.detach().to(F64), torch.tensor(expected, dtype=F64), atol=abs, rtol=0)


# --------------------------------------------------------------------------------------------- masked stats

X = [[1.0, 2.0, 3.0, float("nan")], [4.0, float("nan"), float("nan"), float("nan")]]
M = [[True, True, True, False], [True, False, False, False]]


def test_masked_mean_var_ignore_padding_even_nan():
    x, m = t(X), torch.tensor(M)
    assert A.masked_mean(x, m).item() == approx(2.5)
    close(A.masked_mean(x, m, dim=-1), [2.0, 4.0])
    # entries 1, 2, 3, 4: squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5
    assert A.masked_var(x, m, unbiased=False).item() == approx(5 / 4)
    assert A.masked_var(x, m).item() == approx(5 / 3)


def test_masked_whiten_matches_formula_and_zeroes_padding():
    x, m = t(X), torch.tensor(M)
    out = A.masked_whiten(x, m)
    sd = math.sqrt(5 / 3 + 1e-8)
    close(out, [[(1 - 2.5) / sd, (2 - 2.5) / sd, (3 - 2.5) / sd, 0.0], [(4 - 2.5) / sd, 0, 0, 0]])
    kept = A.masked_whiten(x, m, shift_mean=False)
    close(kept[0, :3], [(v - 2.5) / sd + 2.5 for v in (1, 2, 3)])
    assert kept[0, 3].item() == 0.0
    biased = A.masked_whiten(x, m, unbiased=False)
    assert biased[1, 0].item() == approx(1.5 / math.sqrt(5 / 4 + 1e-8))
    # whitened entries have mean 0 and (unbiased) variance ~1
    assert A.masked_mean(out, m).item() == approx(0.0)
    assert A.masked_var(out, m).item() == approx(1.0, abs=1e-6)


def test_masked_whiten_edge_cases():
    x = t([[5.0, 7.0]])
    assert A.masked_whiten(x, torch.zeros(1, 2, dtype=torch.bool)).tolist() == [[0.0, 0.0]]
    one = torch.tensor([[True, False]])
    assert A.masked_whiten(x, one).tolist() == [[0.0, 0.0]]            # one entry: variance 0, centred to 0
    assert A.masked_whiten(x, one, shift_mean=False).tolist() == [[5.0, 0.0]]
    with pytest.raises(ValueError, match="mask shape"):
        A.masked_mean(x, torch.ones(2, 2))


def test_last_token_index():
    m = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0]])
    assert A.last_token_index(m).tolist() == [1, -1, 3, 2]


# --------------------------------------------------------------------------------------------- rewards

def test_verifiable_reward_tulu3():
    correct = torch.tensor([True, False, True, False])
    finished = torch.tensor([True, True, False, False])
    assert A.verifiable_reward(correct, finished).tolist() == [10.0, 0.0, -10.0, -10.0]
    assert A.verifiable_reward(correct, finished, nonstop_penalty=None).tolist() == [10.0, 0.0, 10.0, 0.0]
    assert A.verifiable_reward(correct, finished, nonstop_penalty=0.0).tolist() == [10.0, 0.0, 0.0, 0.0]
    frac = t([0.5, 0.25])                                  # e.g. IFEval's fraction of constraints met
    assert A.verifiable_reward(frac, torch.tensor([True, True]), correct_score=2.0).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="shape"):
        A.verifiable_reward(correct, finished[:2])


def test_per_token_rewards_kl_penalty_and_score_at_last_token():
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    kl = t([[0.1, -0.2, 0.3, 9.0], [0.5, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]])
    scores = t([10.0, -10.0, 10.0])
    beta = 0.05
    out = A.per_token_rewards(scores, mask, kl, beta)
    expected = [[0.0] * 4 for _ in range(3)]
    for b in range(3):
        last = max([i for i in range(4) if mask[b, i]], default=None)
        for i in range(4):
            if mask[b, i]:
                expected[b][i] = -beta * kl[b, i].item() + (scores[b].item() if i == last else 0.0)
    close(out, expected)
    assert out[2].tolist() == [0.0] * 4                    # no token: nowhere to put the score
    # beta = 0: no KL needed, only the score on the last token (single-token row included)
    plain = A.per_token_rewards(scores, mask)
    assert plain.tolist() == [[0, 0, 10.0, 0], [-10.0, 0, 0, 0], [0, 0, 0, 0]]
    with pytest.raises(ValueError, match="kl"):
        A.per_token_rewards(scores, mask, None, beta=0.1)


# --------------------------------------------------------------------------------------------- GAE

def gae_reference(rewards, values, lengths, gamma, lam):
    """Schulman et al. 2016 written per row over its response tokens, V = 0 after the last one."""
    advs, rets = [], []
    for r, v, n in zip(rewards, values, lengths):
        a = [0.0] * len(r)
        for i in range(n):                                  # A_i = sum_l (gamma*lam)^l delta_{i+l}
            for k in range(i, n):
                v_next = v[k + 1] if k + 1 < n else 0.0
                delta = r[k] + gamma * v_next - v[k]
                a[i] += (gamma * lam) ** (k - i) * delta
        advs.append(a)
        rets.append([a[i] + v[i] if i < n else 0.0 for i in range(len(r))])
    return advs, rets


def test_gae_hand_example():
    # one row, 3 tokens, score 1 at the end; gamma = 1, lambda = 0.95
    # delta = [0.6-0.5, 0.7-0.6, 1-0.7] = [0.1, 0.1, 0.3]; A2 = 0.3, A1 = 0.1+0.95*0.3, A0 = 0.1+0.95*A1
    adv, ret = A.gae(t([[0.0, 0.0, 1.0, 0.0]]), t([[0.5, 0.6, 0.7, 123.0]]),
                     torch.tensor([[1, 1, 1, 0]]), gamma=1.0, lam=0.95)
    a1 = 0.1 + 0.95 * 0.3
    a0 = 0.1 + 0.95 * a1
    close(adv, [[a0, a1, 0.3, 0.0]])
    close(ret, [[a0 + 0.5, a1 + 0.6, 1.0, 0.0]])


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0), (0.99, 0.0)])
def test_gae_matches_python_loop(gamma, lam):
    rng = random.Random(0)
    lengths = [5, 1, 0, 3, 7]
    T = 7
    rewards = [[rng.uniform(-1, 1) for _ in range(T)] for _ in lengths]
    values = [[rng.uniform(-1, 1) for _ in range(T)] for _ in lengths]
    mask = torch.tensor([[i < n for i in range(T)] for n in lengths])
    adv, ret = A.gae(t(rewards), t(values), mask, gamma, lam)
    exp_adv, exp_ret = gae_reference(rewards, values, lengths, gamma, lam)
    close(adv, exp_adv, abs=1e-12)
    close(ret, exp_ret, abs=1e-12)


def test_gae_lambda_one_gives_reward_to_go_and_padding_is_ignored():
    # gamma = lambda = 1: returns are the undiscounted sum of future rewards, whatever the values
    rewards = t([[0.1, 0.2, 0.3, float("nan")]])
    values = t([[5.0, -3.0, 2.0, float("nan")]])
    _, ret = A.gae(rewards, values, torch.tensor([[1, 1, 1, 0]]), gamma=1.0, lam=1.0)
    close(ret, [[0.6, 0.5, 0.3, 0.0]])


def test_gae_left_padding_and_non_contiguous_mask():
    r, v = t([[9.0, 0.0, 1.0]]), t([[9.0, 0.5, 0.25]])
    adv, _ = A.gae(r, v, torch.tensor([[0, 1, 1]]), gamma=1.0, lam=1.0)
    close(adv, [[0.0, 1.0 - 0.5, 1.0 - 0.25]])
    with pytest.raises(ValueError, match="not contiguous"):
        A.gae(r, v, torch.tensor([[1, 0, 1]]))


def test_ppo_advantages_match_full_width_loop_of_trl_and_open_instruct():
    """TRL's and open-instruct's PPO run the GAE recursion over the whole padded width, with values and
    rewards zeroed after the response, then whiten the advantages with the unbiased masked variance and
    ``rsqrt(var + 1e-8)``. Our per-row masked GAE + masked_whiten must give the same numbers."""
    torch.manual_seed(2)
    B, T, gamma, lam, beta = 3, 6, 1.0, 0.95, 0.05
    lengths = [6, 2, 4]
    mask = torch.tensor([[i < n for i in range(T)] for n in lengths])
    values = torch.randn(B, T, dtype=F64)
    kl = torch.randn(B, T, dtype=F64) * 0.1
    scores = t([10.0, -10.0, 0.0])
    rewards = A.per_token_rewards(scores, mask, kl, beta)
    adv, ret = A.gae(rewards, values, mask, gamma, lam)
    adv = A.masked_whiten(adv, mask)

    # the full-width loop, written with plain lists
    v = [[values[b, i].item() if i < lengths[b] else 0.0 for i in range(T)] for b in range(B)]
    r = [[(-beta * kl[b, i].item() + (scores[b].item() if i == lengths[b] - 1 else 0.0)) if i < lengths[b]
          else 0.0 for i in range(T)] for b in range(B)]
    ref_adv = [[0.0] * T for _ in range(B)]
    for b in range(B):
        last = 0.0
        for i in reversed(range(T)):
            nxt = v[b][i + 1] if i < T - 1 else 0.0
            last = r[b][i] + gamma * nxt - v[b][i] + gamma * lam * last
            ref_adv[b][i] = last
    ref_ret = [[ref_adv[b][i] + v[b][i] if i < lengths[b] else 0.0 for i in range(T)] for b in range(B)]
    flat = [ref_adv[b][i] for b in range(B) for i in range(lengths[b])]
    mu = sum(flat) / len(flat)
    var = sum((x - mu) ** 2 for x in flat) / (len(flat) - 1)
    white = [[(ref_adv[b][i] - mu) / math.sqrt(var + 1e-8) if i < lengths[b] else 0.0 for i in range(T)]
             for b in range(B)]
    close(ret, ref_ret, abs=1e-12)
    close(adv, white, abs=1e-12)


# --------------------------------------------------------------------------------------------- GRPO family

GROUP_REWARDS = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 10.0]


def py_std(xs, unbiased):
    mu = sum(xs) / len(xs)
    return math.sqrt(sum((x - mu) ** 2 for x in xs) / (len(xs) - (1 if unbiased else 0)))


@pytest.mark.parametrize("unbiased", [True, False])
def test_group_advantages_grpo(unbiased):
    out = A.group_advantages(t(GROUP_REWARDS), 4, unbiased=unbiased)
    expected = []
    for g in range(3):
        grp = GROUP_REWARDS[4 * g: 4 * g + 4]
        mu, sd = sum(grp) / 4, py_std(grp, unbiased)
        expected += [(x - mu) / (sd + 1e-4) for x in grp]
    close(out, expected)
    assert out[4:8].tolist() == [0.0] * 4                  # all solved: zero advantage


def test_group_advantages_dr_grpo_and_batch_scale():
    r = GROUP_REWARDS
    none = A.group_advantages(t(r), 4, scale="none")
    means = [sum(r[4 * g: 4 * g + 4]) / 4 for g in range(3)]
    close(none, [x - means[i // 4] for i, x in enumerate(r)])
    batch = A.group_advantages(t(r), 4, scale="batch")
    sd = py_std(r, unbiased=True)
    close(batch, [(x - means[i // 4]) / (sd + 1e-4) for i, x in enumerate(r)])
    with pytest.raises(ValueError, match="scale"):
        A.group_advantages(t(r), 4, scale="max")


def test_group_advantages_match_trl_grpo_convention():
    trl_utils = pytest.importorskip("trl.trainer.utils")
    rewards = t(GROUP_REWARDS)
    # TRL's GRPOTrainer (scale_rewards="group"): (r - group mean) / (nanstd(group) + 1e-4)
    grouped = rewards.view(-1, 4)
    std = trl_utils.nanstd(grouped, dim=1).repeat_interleave(4)
    trl_adv = (rewards - grouped.mean(dim=1).repeat_interleave(4)) / (std + 1e-4)
    assert torch.allclose(A.group_advantages(rewards, 4), trl_adv, atol=1e-12)


def test_zero_std_groups_and_single_sample_groups():
    assert A.zero_std_groups(t(GROUP_REWARDS), 4).tolist() == [False, True, False]
    assert A.zero_std_groups(torch.tensor([1, 1, 0, 0]), 2).tolist() == [True, True]
    assert A.group_advantages(t([3.0, 4.0]), 1).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="groups of 4"):
        A.group_advantages(t([1.0, 2.0, 3.0]), 4)


def test_overlong_penalty_dapo_eq13():
    # L_max = 20, L_cache = 4: no penalty up to 16, linear to -1 at 20, -1 beyond
    out = A.overlong_penalty(torch.tensor([10, 16, 18, 20, 21]), max_len=20, buffer_len=4)
    close(out, [0.0, 0.0, (16 - 18) / 4, -1.0, -1.0])
    with pytest.raises(ValueError):
        A.overlong_penalty(torch.tensor([1]), max_len=4, buffer_len=8)


# --------------------------------------------------------------------------------------------- KL

def test_kl_estimators_per_token():
    logp, ref = t([[-1.0, -2.0, -3.0]]), t([[-1.5, -1.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    log_r = [-0.5, 1.0]                                    # ref - logp on the two response tokens
    k1 = R.kl_estimate(logp, ref, mask, "k1")
    close(k1, [[0.5, -1.0, 0.0]])
    close(R.kl_estimate(logp, ref, mask, 2), [[lr * lr / 2 for lr in log_r] + [0.0]])
    close(R.kl_estimate(logp, ref, mask, "k3"), [[math.exp(lr) - 1 - lr for lr in log_r] + [0.0]])
    assert R.kl_estimate(logp, ref, kind="k3")[0, 2].item() == approx(math.exp(3.0) - 1 - 3.0)
    close(R.kl_estimate(logp, ref, mask, "k1", clamp=0.75), [[0.5, -0.75, 0.0]])
    with pytest.raises(ValueError, match="k4"):
        R.kl_estimate(logp, ref, mask, "k4")


def test_kl_estimator_direction_is_kl_policy_to_reference():
    # Exact expectations over a 3-token vocabulary, tokens drawn from the policy p: E_p[k1] = E_p[k3] = KL(p||q)
    p, q = [0.9, 0.05, 0.05], [0.2, 0.4, 0.4]
    kl_pq = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    kl_qp = sum(qi * math.log(qi / pi) for pi, qi in zip(p, q))
    logp, ref = t([[math.log(x) for x in p]]), t([[math.log(x) for x in q]])
    for kind in ("k1", "k3"):
        est = sum(pi * k for pi, k in zip(p, R.kl_estimate(logp, ref, kind=kind)[0].tolist()))
        assert est == approx(kl_pq, abs=1e-12)
        assert abs(est - kl_qp) > 0.2
    assert R.kl_estimate(logp, ref, kind="k3").min() >= 0


# --------------------------------------------------------------------------------------------- aggregation

L_TOK = [[1.0, 2.0, 3.0, 100.0], [4.0, 100.0, 100.0, 100.0], [100.0, 100.0, 100.0, 100.0]]
L_MASK = [[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_aggregation_modes():
    x, m = t(L_TOK), torch.tensor(L_MASK)
    assert R.aggregate(x, m, "token").item() == approx(10 / 4)                 # DAPO: all tokens equal
    assert R.aggregate(x, m, "sequence").item() == approx((6 / 3 + 4 / 1 + 0) / 3)   # GRPO: per sequence
    assert R.aggregate(x, m, "constant", max_len=8).item() == approx(10 / (3 * 8))   # Dr. GRPO
    assert R.aggregate(x, m, "token", token_count=20).item() == approx(10 / 20)
    assert R.aggregate(x, m, "sequence", seq_count=2).item() == approx((2 + 4) / 2)
    assert R.aggregate(x, torch.zeros(3, 4), "token").item() == 0.0
    with pytest.raises(ValueError, match="max_len"):
        R.aggregate(x, m, "constant")
    with pytest.raises(ValueError, match="unknown aggregation"):
        R.aggregate(x, m, "mean")


@pytest.mark.parametrize("mode", ["token", "sequence", "constant"])
def test_aggregation_splits_over_micro_batches(mode):
    x, m = t(L_TOK), torch.tensor(L_MASK)
    whole = R.aggregate(x, m, mode, max_len=8)
    parts = sum(R.aggregate(x[i:i + 1], m[i:i + 1], mode, max_len=8, token_count=m.sum(), seq_count=3)
                for i in range(3))
    assert parts.item() == approx(whole.item())


# --------------------------------------------------------------------------------------------- policy loss

# ratio, advantage for each token of one row; eps_low = 0.2, eps_high 0.2 or 0.28
RATIOS = [1.5, 1.5, 0.5, 0.5, 1.1, 1.25]
ADVS = [1.0, -1.0, 1.0, -1.0, 1.0, 1.0]


def ppo_token(r, a, lo, hi):
    unclipped, clipped = -a * r, -a * min(max(r, 1 - lo), 1 + hi)
    return max(unclipped, clipped), clipped > unclipped


@pytest.mark.parametrize("clip_high", [0.2, 0.28])
def test_clipped_policy_loss_four_quadrants(clip_high):
    logp = t([[math.log(r) for r in RATIOS]]).requires_grad_()
    old = torch.zeros(1, 6, dtype=F64)
    mask = torch.ones(1, 6, dtype=torch.bool)
    out = R.policy_loss(logp, old, t([ADVS]), mask, clip_low=0.2, clip_high=clip_high)
    per = [ppo_token(r, a, 0.2, clip_high) for r, a in zip(RATIOS, ADVS)]
    assert out.loss.item() == approx(sum(v for v, _ in per) / 6)
    assert out.clip_frac.item() == approx(sum(c for _, c in per) / 6)
    # by hand: clipped are (1.5, A>0) and (0.5, A<0); (1.25, A>0) only when eps_high = 0.2
    assert [c for _, c in per] == [True, False, False, True, False, clip_high == 0.2]
    assert out.approx_kl.item() == approx(sum(math.log(r) ** 2 / 2 for r in RATIOS) / 6)
    assert out.ratio_mean.item() == approx(sum(RATIOS) / 6)
    out.loss.backward()
    # d/dlogp of -A*r is -A*r: clipped tokens get exactly zero gradient
    expected_grad = [0.0 if c else -a * r / 6 for (_, c), r, a in zip(per, RATIOS, ADVS)]
    close(logp.grad[0], expected_grad)


def test_policy_loss_gradcheck_float64():
    torch.manual_seed(0)
    logp = (torch.randn(3, 5, dtype=F64) * 0.3).requires_grad_()
    old = (logp.detach() + torch.randn(3, 5, dtype=F64) * 0.3)
    ratio = torch.exp(logp.detach() - old)
    edge = torch.minimum((ratio - 0.8).abs(), (ratio - 1.28).abs())
    old = torch.where(edge < 1e-3, old + 0.01, old)         # keep finite differences off the kinks
    adv = torch.randn(3, 5, dtype=F64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    for agg in ("token", "sequence", "constant"):
        assert torch.autograd.gradcheck(
            lambda lp, agg=agg: R.policy_loss(lp, old, adv, mask, clip_high=0.28, aggregation=agg,
                                              max_len=6).loss, (logp,))


def test_grpo_sequence_advantages_broadcast_and_kl_term():
    torch.manual_seed(1)
    logp = (torch.randn(4, 3, dtype=F64) * 0.1).requires_grad_()
    old, ref = torch.randn(4, 3, dtype=F64) * 0.1, torch.randn(4, 3, dtype=F64) * 0.1
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    adv = A.group_advantages(t([1.0, 0.0, 0.0, 1.0]), 4)
    kl = R.kl_estimate(logp, ref, mask, "k3")
    beta = 0.04
    out = R.policy_loss(logp, old, adv, mask, aggregation="sequence", kl=kl, beta=beta)
    full = R.policy_loss(logp, old, adv[:, None].expand(4, 3), mask, aggregation="sequence")
    assert out.pg_loss.item() == approx(full.loss.item())
    # GRPO eq. 3 by hand: 1/G sum_i 1/|o_i| sum_t [-min(rA, clip(r)A) + beta*k3]
    total = 0.0
    for i in range(4):
        n = int(mask[i].sum())
        s = 0.0
        for j in range(n):
            r = math.exp(logp[i, j].item() - old[i, j].item())
            a = adv[i].item()
            lr = ref[i, j].item() - logp[i, j].item()
            s += -min(r * a, min(max(r, 0.8), 1.2) * a) + beta * (math.exp(lr) - 1 - lr)
        total += s / n
    assert out.loss.item() == approx(total / 4)
    assert out.kl_loss.item() == approx(beta * R.aggregate(kl, mask, "sequence").item())


def test_policy_loss_with_truncated_is_weights():
    ratios, advs = [1.5, 0.5, 1.0], [1.0, -1.0, 2.0]
    logp = t([[math.log(r) for r in ratios]]).requires_grad_()
    mask = torch.ones(1, 3, dtype=torch.bool)
    gen = t([[-1.0, 0.3, 0.0]])                            # learner old log-probs are 0
    w = R.truncated_is_weights(torch.zeros(1, 3, dtype=F64), gen, mask, cap=2.0)
    close(w, [[2.0, math.exp(-0.3), 1.0]])   # exp(1) capped at 2
    out = R.policy_loss(logp, torch.zeros(1, 3, dtype=F64), t([advs]), mask, is_weights=w)
    per = [ppo_token(r, a, 0.2, 0.2) for r, a in zip(ratios, advs)]
    wl = w[0].tolist()
    assert out.loss.item() == approx(sum(wl[i] * per[i][0] for i in range(3)) / 3)
    assert out.clip_frac.item() == approx(2 / 3)             # the weights do not change which tokens clip


def test_policy_loss_edge_cases():
    logp = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    empty = torch.zeros(2, 3, dtype=torch.bool)
    out = R.policy_loss(logp, torch.zeros(2, 3, dtype=F64), t([1.0, -1.0]), empty)
    assert out.loss.item() == 0.0 and out.clip_frac.item() == 0.0
    out.loss.backward()
    assert logp.grad.abs().sum().item() == 0.0
    # single-token responses, ratio 1: loss is -mean(A)
    single = torch.tensor([[True, False, False], [True, False, False]])
    out = R.policy_loss(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64), t([3.0, -1.0]), single)
    assert out.loss.item() == approx(-(3.0 - 1.0) / 2)
    # beta = 0 ignores the kl tensor
    kl = torch.full((2, 3), 5.0, dtype=F64)
    out0 = R.policy_loss(torch.zeros(2, 3, dtype=F64), torch.zeros(2, 3, dtype=F64), t([3.0, -1.0]), single,
                         kl=kl, beta=0.0)
    assert out0.loss.item() == approx(-1.0) and out0.kl_loss.item() == 0.0
    with pytest.raises(ValueError, match="advantages"):
        R.policy_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3), single)
    with pytest.raises(ValueError, match="clip"):
        R.clipped_surrogate(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), clip_low=-0.1)


# --------------------------------------------------------------------------------------------- value loss

def test_clipped_value_loss_by_hand():
    values = t([[0.9, 0.5, 2.0, 7.0]]).requires_grad_()
    old = t([[0.8, 0.8, 0.8, 0.0]])
    returns = t([[1.5, 0.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    out = R.value_loss(values, old, returns, mask, clip=0.2)
    # token 0: inside the clip range, err 0.36; token 1: clipped to 0.6, max(0.25, 0.36) = 0.36 (clipped);
    # token 2: clipped to 1.0, max(1.0, 0.0) = 1.0 (unclipped)
    assert out.loss.item() == approx(0.5 * (0.36 + 0.36 + 1.0) / 3)
    assert out.clip_frac.item() == approx(1 / 3)
    out.loss.backward()
    # d/dV of 0.5*(V-R)^2/3 = (V-R)/3 on unclipped tokens; 0 on the clipped one and on padding
    close(values.grad, [[(0.9 - 1.5) / 3, 0.0, (2.0 - 1.0) / 3, 0.0]])
    plain = R.value_loss(values, old, returns, mask, clip=None)
    assert plain.loss.item() == approx(0.5 * (0.36 + 0.25 + 1.0) / 3)
    assert plain.clip_frac.item() == 0.0


# --------------------------------------------------------------------------------------------- TIS and mismatch

def test_truncated_is_weights_cap_mask_and_no_overflow():
    old = t([[0.1, 1.0, -0.5, 50.0, 0.0]], dtype=torch.float32)
    gen = torch.zeros(1, 5)
    mask = torch.tensor([[1, 1, 1, 1, 0]], dtype=torch.bool)
    w = R.truncated_is_weights(old.requires_grad_(), gen, mask, cap=2.0)
    close(w, [[math.exp(0.1), 2.0, math.exp(-0.5), 2.0, 1.0]], abs=1e-6)
    assert not w.requires_grad and torch.isfinite(w).all()
    with pytest.raises(ValueError, match="cap"):
        R.truncated_is_weights(old, gen, cap=0.0)


def test_logprob_mismatch_stats_by_hand():
    old = t([[-1.0, -2.0, -0.5, 9.0], [-3.0, 9.0, 9.0, 9.0]])
    gen = t([[-1.1, -1.0, -0.5, 0.0], [-4.0, 0.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    s = R.logprob_mismatch_stats(old, gen, mask, cap=2.0)
    d = [0.1, -1.0, 0.0, 1.0]                             # old - gen on the 4 response tokens
    assert s["mismatch/mean_abs"] == approx(sum(abs(x) for x in d) / 4)
    assert s["mismatch/max_abs"] == approx(1.0)
    assert s["mismatch/mean"] == approx(sum(d) / 4)
    assert s["mismatch/k3"] == approx(sum(math.exp(x) - 1 - x for x in d) / 4)
    assert s["mismatch/clamped_frac"] == approx(1 / 4)     # exp(1) > 2 only
    assert s["mismatch/tokens"] == 4.0
    empty = R.logprob_mismatch_stats(old, gen, torch.zeros_like(mask))
    assert set(empty.values()) == {0.0}


# --------------------------------------------------------------------------------------------- TRL parity

class _SingleProcess:
    """What TRL's loss code asks of `accelerate.Accelerator` in a one-process run."""

    num_processes = 1
    sync_gradients = True

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather

    @staticmethod
    def reduce(x, reduction="sum"):
        return x


@pytest.mark.parametrize("trl_loss,ours", [("grpo", "sequence"), ("bnpo", "token"), ("dapo", "token"),
                                           ("dr_grpo", "constant")])
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_policy_loss_matches_trl_grpo_trainer(trl_loss, ours, beta):
    """Run TRL's own `GRPOTrainer._compute_loss` on our tensors (its model forward replaced by fixed
    log-probs) and compare with `policy_loss` + `kl_estimate` + `truncated_is_weights`."""
    from collections import defaultdict
    from types import SimpleNamespace

    grpo = pytest.importorskip("trl.trainer.grpo_trainer")
    torch.manual_seed(3)
    B, T, max_len = 4, 5, 7
    logp = (torch.randn(B, T, dtype=F64) * 0.3 - 1.0).requires_grad_()
    old = logp.detach() + torch.randn(B, T, dtype=F64) * 0.3
    ref = logp.detach() + torch.randn(B, T, dtype=F64) * 0.3
    gen = old + torch.randn(B, T, dtype=F64) * 0.8
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]], dtype=F64)
    adv = A.group_advantages(t([1.0, 0.0, 0.0, 1.0]), 4)
    w = R.truncated_is_weights(old, gen, mask.bool(), cap=2.0)
    assert (w == 2.0).any() and (w < 1.0).any()            # the cap is exercised

    trl_self = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros(B, T, dtype=F64), None),
        aux_loss_enabled=False, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", beta=beta, loss_type=trl_loss, epsilon_low=0.2, epsilon_high=0.28,
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1),
        use_vllm=True, vllm_importance_sampling_correction=True, model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1, max_completion_length=max_len, accelerator=_SingleProcess(),
        _entropy_bonus_enabled=False, _metrics={"train": defaultdict(list)},
    )
    inputs = {"prompt_ids": torch.zeros(B, 2, dtype=torch.long), "prompt_mask": torch.ones(B, 2),
              "completion_ids": torch.zeros(B, T, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
              "importance_sampling_ratio": w, "num_items_in_batch": mask.sum()}
    theirs = grpo.GRPOTrainer._compute_loss(trl_self, None, inputs)
    (g_theirs,) = torch.autograd.grad(theirs, logp)

    kl = R.kl_estimate(logp, ref, mask, "k3")
    mine = R.policy_loss(logp, old, adv, mask, clip_low=0.2, clip_high=0.28, aggregation=ours,
                         max_len=max_len, is_weights=w, kl=kl, beta=beta)
    (g_mine,) = torch.autograd.grad(mine.loss, logp)
    assert mine.loss.item() == approx(theirs.item(), abs=1e-12)
    torch.testing.assert_close(g_mine, g_theirs, atol=1e-12, rtol=0)
    region = trl_self._metrics["train"]["clip_ratio/region_mean"][-1]
    assert mine.clip_frac.item() == approx(region, abs=1e-12)
    assert 0 < region < 1                                  # some tokens clip, some do not


def test_bool_and_float_masks_agree_in_float32():
    torch.manual_seed(4)
    B, T = 4, 6
    lengths = [6, 3, 1, 0]
    bmask = torch.tensor([[i < n for i in range(T)] for n in lengths])
    fmask = bmask.float()
    logp, old, ref, gen = (torch.randn(B, T) * 0.2 for _ in range(4))
    values = torch.randn(B, T)
    scores = A.verifiable_reward(torch.tensor([1, 0, 1, 1]), torch.tensor([1, 1, 0, 1]))
    outs = []
    for m in (bmask, fmask):
        kl = R.kl_estimate(old, ref, m, "k1")
        adv, ret = A.gae(A.per_token_rewards(scores, m, kl, 0.05), values, m)
        adv = A.masked_whiten(adv, m)
        w = R.truncated_is_weights(old, gen, m)
        pl = R.policy_loss(logp, old, adv, m, is_weights=w)
        vl = R.value_loss(values + 0.1, values, ret, m)
        grpo = R.policy_loss(logp, old, A.group_advantages(scores, 2, scale="batch"), m, aggregation="sequence")
        outs.append(torch.stack([pl.loss, pl.clip_frac, vl.loss, grpo.loss, adv.sum(), ret.sum()]))
        assert all(o.dtype == torch.float32 and torch.isfinite(o).all() for o in (adv, ret, pl.loss, vl.loss))
    torch.testing.assert_close(outs[0], outs[1])
