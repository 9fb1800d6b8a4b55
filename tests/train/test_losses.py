"""Each preference loss against its paper's formula, computed by hand with `math` on small numbers."""

from __future__ import annotations

import math

import pytest
import torch

from tulu.train import losses as L

# Two pairs: summed log-probs of the policy and reference, and response lengths.
PC, PR = [-4.0, -10.0], [-6.0, -7.5]
RC, RR = [-5.0, -9.0], [-5.5, -8.0]
NC, NR = [4, 10], [3, 5]


def t(xs):
    return torch.tensor(xs, dtype=torch.float64)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def test_dpo_matches_paper_formula():
    beta = 0.1
    out = L.dpo(t(PC), t(PR), t(RC), t(RR), beta=beta)
    for i in range(2):
        z = beta * ((PC[i] - RC[i]) - (PR[i] - RR[i]))
        assert out.losses[i].item() == pytest.approx(-log_sigmoid(z), abs=1e-12)
        assert out.chosen_rewards[i].item() == pytest.approx(beta * (PC[i] - RC[i]))
        assert out.rejected_rewards[i].item() == pytest.approx(beta * (PR[i] - RR[i]))
    # Pair 0: the policy moved toward chosen (z > 0), so its loss is below log 2; pair 1 the reverse.
    assert out.losses[0] < math.log(2) < out.losses[1]


def test_dpo_label_smoothing_mixes_flipped_label():
    beta, eps = 0.5, 0.2
    out = L.dpo(t(PC), t(PR), t(RC), t(RR), beta=beta, label_smoothing=eps)
    z = beta * ((PC[0] - RC[0]) - (PR[0] - RR[0]))
    assert out.losses[0].item() == pytest.approx(-(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z))
    with pytest.raises(ValueError, match="label_smoothing"):
        L.dpo(t(PC), t(PR), t(RC), t(RR), beta=0.1, label_smoothing=0.5)


def test_dpo_norm_uses_mean_per_token_log_ratio():
    beta = 5.0
    out = L.dpo_norm(t(PC), t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta)
    for i in range(2):
        zc = (PC[i] - RC[i]) / NC[i]
        zr = (PR[i] - RR[i]) / NR[i]
        assert out.losses[i].item() == pytest.approx(-log_sigmoid(beta * (zc - zr)), abs=1e-12)
        assert out.chosen_rewards[i].item() == pytest.approx(beta * zc)
        assert out.rejected_rewards[i].item() == pytest.approx(beta * zr)


def test_rpo_adds_the_chosen_per_token_nll():
    # RPO (Pang et al. 2024): L = L_dpo_norm + alpha * (-(1/|y_c|) log pi(y_c|x)); the rewards are unchanged
    beta, alpha = 5.0, 0.7
    base = L.dpo_norm(t(PC), t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta)
    out = L.with_chosen_nll(base, t(PC), t(NC), alpha)
    for i in range(2):
        assert out.losses[i].item() == pytest.approx(base.losses[i].item() - alpha * PC[i] / NC[i], abs=1e-12)
    assert torch.equal(out.chosen_rewards, base.chosen_rewards)
    assert L.chosen_nll(t(PC), t(NC))[0].item() == pytest.approx(-PC[0] / NC[0])
    # its gradient raises the chosen log-prob: d(alpha * nll)/d(policy_chosen) = -alpha / |y_c|
    pc = t(PC).requires_grad_()
    L.with_chosen_nll(L.dpo_norm(pc, t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta), pc, t(NC), alpha).loss.backward()
    plain = t(PC).requires_grad_()
    L.dpo_norm(plain, t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta).loss.backward()
    assert torch.allclose(pc.grad - plain.grad, -alpha / t(NC) / 2)  # .loss is the mean over the 2 pairs


def test_dpo_norm_differs_from_dpo_when_lengths_differ():
    a = L.dpo(t(PC), t(PR), t(RC), t(RR), beta=1.0).losses
    b = L.dpo_norm(t(PC), t(PR), t(RC), t(RR), t(NC), t(NR), beta=1.0).losses
    assert not torch.allclose(a, b)
    # With every length 1 the two coincide.
    ones = t([1, 1])
    torch.testing.assert_close(a, L.dpo_norm(t(PC), t(PR), t(RC), t(RR), ones, ones, beta=1.0).losses)


def test_simpo_is_reference_free_with_margin():
    beta, gamma = 2.0, 0.5
    out = L.simpo(t(PC), t(PR), t(NC), t(NR), beta=beta, gamma=gamma)
    for i in range(2):
        z = beta / NC[i] * PC[i] - beta / NR[i] * PR[i] - gamma
        assert out.losses[i].item() == pytest.approx(-log_sigmoid(z), abs=1e-12)
        assert out.chosen_rewards[i].item() == pytest.approx(beta * PC[i] / NC[i])


def test_ipo_squared_distance_from_half_inverse_tau():
    beta = 0.1
    out = L.ipo(t(PC), t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta)
    for i in range(2):
        h = (PC[i] - RC[i]) / NC[i] - (PR[i] - RR[i]) / NR[i]
        assert out.losses[i].item() == pytest.approx((h - 1 / (2 * beta)) ** 2, abs=1e-12)


def test_wpo_weights_by_policy_probability():
    beta = 0.1
    out = L.wpo(t(PC), t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta)
    for i in range(2):
        z = beta * ((PC[i] - RC[i]) - (PR[i] - RR[i]))
        w = math.exp(PC[i] / NC[i]) * math.exp(PR[i] / NR[i])
        assert out.losses[i].item() == pytest.approx(-w * log_sigmoid(z), abs=1e-12)
    # Aligned weights offset each token by log sum_v p(v)^2 (summed here per sequence).
    sc, sr = t([-2.0, -3.0]), t([-1.0, -1.5])
    out2 = L.wpo(t(PC), t(PR), t(RC), t(RR), t(NC), t(NR), beta=beta, chosen_log_sum_sq=sc, rejected_log_sum_sq=sr)
    w0 = math.exp((PC[0] + 2.0) / NC[0]) * math.exp((PR[0] + 1.0) / NR[0])
    z0 = beta * ((PC[0] - RC[0]) - (PR[0] - RR[0]))
    assert out2.losses[0].item() == pytest.approx(-w0 * log_sigmoid(z0))


def test_wpo_weights_carry_no_gradient():
    pc = t(PC).requires_grad_()
    out = L.wpo(pc, t(PR), t(RC), t(RR), t(NC), t(NR), beta=1.0)
    out.loss.backward()
    # d/dpc of -w*logsig(pc - ...) with w constant = -w*(1 - sigmoid(z)) / n_pairs
    for i in range(2):
        z = (PC[i] - RC[i]) - (PR[i] - RR[i])
        w = math.exp(PC[i] / NC[i]) * math.exp(PR[i] / NR[i])
        assert pc.grad[i].item() == pytest.approx(-w * (1 - 1 / (1 + math.exp(-z))) / 2)


def test_dispatch_and_reference_requirement():
    pol = L.SeqLogps(t(PC), t(PR), t(NC), t(NR))
    for name in L.LOSS_TYPES:
        ref = (None, None) if name == "simpo" else (t(RC), t(RR))
        out = L.preference_loss(name, pol, *ref, beta=0.3, gamma=0.5)
        assert out.losses.shape == (2,) and torch.isfinite(out.losses).all()
    with pytest.raises(ValueError, match="needs reference"):
        L.preference_loss("dpo", pol, None, None, beta=0.1)
    with pytest.raises(ValueError, match="unknown loss_type"):
        L.preference_loss("kto", pol, t(RC), t(RR), beta=0.1)


def test_reward_metrics():
    m = L.reward_metrics(t([1.0, -1.0, 0.5]), t([0.0, 0.0, 0.5]))
    assert m["rewards/accuracies"] == pytest.approx(1 / 3)  # ties do not count as correct
    assert m["rewards/margins"] == pytest.approx((1.0 - 1.0 + 0.0) / 3)
    assert m["rewards/chosen"] == pytest.approx(0.5 / 3)


def test_bradley_terry():
    c, r = t([2.0, -1.0]), t([1.0, 1.0])
    out = L.bradley_terry(c, r)
    assert out[0].item() == pytest.approx(-log_sigmoid(1.0))
    assert out[1].item() == pytest.approx(-log_sigmoid(-2.0))
    out2 = L.bradley_terry(c, r, margin=t([0.5, 0.0]), center_coef=0.01)
    assert out2[0].item() == pytest.approx(-log_sigmoid(0.5) + 0.01 * 9.0)
