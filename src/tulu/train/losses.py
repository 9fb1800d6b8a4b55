"""Preference losses as pure functions on per-sequence log-probabilities.

Every function takes, per pair in the batch, the policy's **summed** log-probability of the chosen and
rejected responses (response tokens only), their token counts, and (for the reference-based losses) the
reference model's summed log-probabilities. It returns a :class:`PreferenceLoss` holding the per-pair
loss and the implicit rewards used for logging. Nothing here touches a model.

Notation: ``z`` is the implicit reward margin inside the sigmoid, ``beta`` the KL strength.

* ``dpo`` (Rafailov et al. 2023, eq. 7):
  ``L = -log σ(β[(log πθ(y_c) - log πref(y_c)) - (log πθ(y_r) - log πref(y_r))])`` on summed log-probs.
* ``dpo_norm`` (Tulu 3 report §5, open-instruct ``dpo_norm``; TRL ``sigmoid_norm``): the same with the
  per-token *mean* log-ratio of each response, so long responses do not dominate; Tulu 3 uses β = 5.
* ``simpo`` (Meng et al. 2024, eq. 6): reference-free, ``L = -log σ(β/|y_c|·log πθ(y_c) - β/|y_r|·log πθ(y_r) - γ)``.
* ``ipo`` (Azar et al. 2023, eq. 17): ``L = (h - 1/(2τ))²`` with ``h`` the difference of per-token mean
  log-ratios (the IPO authors' length normalisation, as TRL does) and ``τ`` = β.
* ``wpo`` (Zhou et al. 2024, eq. 2): the DPO loss of each pair weighted by ``w(y_c)·w(y_r)``, where
  ``w(y) = exp(mean_t log πθ(y_t))`` is the policy's own (length-normalised) probability of the response,
  detached. With ``aligned=True`` each token's log-prob is first offset by ``log Σ_v πθ(v)²`` (the
  paper's "sampled alignment" weight, TRL's ``use_weighting``).

Label smoothing (conservative DPO, Mitchell 2023) mixes in the loss of the flipped label:
``L = -(1-ε) log σ(z) - ε log σ(-z)``; it applies to the sigmoid losses (dpo, dpo_norm, simpo, wpo).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

LossType = Literal["dpo", "dpo_norm", "simpo", "ipo", "wpo"]
LOSS_TYPES: tuple[str, ...] = ("dpo", "dpo_norm", "simpo", "ipo", "wpo")
REFERENCE_FREE: frozenset[str] = frozenset({"simpo"})


@dataclass
class PreferenceLoss:
    """Per-pair losses and implicit rewards (both shape ``[pairs]``)."""

    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def loss(self) -> torch.Tensor:
        return self.losses.mean()


def sigmoid_loss(z: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """``-(1-ε)·log σ(z) - ε·log σ(-z)``, elementwise."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
    out = -F.logsigmoid(z)
    if label_smoothing:
        out = (1.0 - label_smoothing) * out - label_smoothing * F.logsigmoid(-z)
    return out


def _mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    return total / count.to(total.dtype).clamp(min=1.0)


def dpo(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
        ref_rejected: torch.Tensor, beta: float, label_smoothing: float = 0.0) -> PreferenceLoss:
    """DPO on summed log-probs; rewards are ``β·(log πθ - log πref)`` of each response."""
    chosen = beta * (policy_chosen - ref_chosen)
    rejected = beta * (policy_rejected - ref_rejected)
    return PreferenceLoss(sigmoid_loss(chosen - rejected, label_smoothing), chosen.detach(), rejected.detach())


def dpo_norm(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
             beta: float, label_smoothing: float = 0.0) -> PreferenceLoss:
    """Length-normalised DPO (Tulu 3): per-token mean log-ratios; rewards are β times those means."""
    chosen = beta * _mean(policy_chosen - ref_chosen, chosen_tokens)
    rejected = beta * _mean(policy_rejected - ref_rejected, rejected_tokens)
    return PreferenceLoss(sigmoid_loss(chosen - rejected, label_smoothing), chosen.detach(), rejected.detach())


def chosen_nll(policy_chosen: torch.Tensor, chosen_tokens: torch.Tensor) -> torch.Tensor:
    """Per-pair NLL of the chosen response, a mean over its tokens: ``-(1/|y_c|)·log πθ(y_c|x)``. Added to a
    preference loss with weight α it is RPO's term (Pang et al. 2024, "Iterative Reasoning Preference
    Optimization"), which keeps the chosen response's likelihood from falling while the margin grows."""
    return -_mean(policy_chosen, chosen_tokens)


def with_chosen_nll(out: PreferenceLoss, policy_chosen: torch.Tensor, chosen_tokens: torch.Tensor,
                    alpha: float) -> PreferenceLoss:
    """``out`` with ``alpha ·`` :func:`chosen_nll` added to each pair's loss (rewards unchanged)."""
    return PreferenceLoss(out.losses + alpha * chosen_nll(policy_chosen, chosen_tokens), out.chosen_rewards,
                          out.rejected_rewards)


def simpo(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, chosen_tokens: torch.Tensor,
          rejected_tokens: torch.Tensor, beta: float, gamma: float,
          label_smoothing: float = 0.0) -> PreferenceLoss:
    """SimPO: no reference; rewards are ``β·mean log πθ(y)``; the margin must exceed ``γ``."""
    chosen = beta * _mean(policy_chosen, chosen_tokens)
    rejected = beta * _mean(policy_rejected, rejected_tokens)
    return PreferenceLoss(sigmoid_loss(chosen - rejected - gamma, label_smoothing), chosen.detach(), rejected.detach())


def ipo(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
        ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
        beta: float) -> PreferenceLoss:
    """IPO: squared distance of the per-token mean log-ratio margin from ``1/(2β)``."""
    chosen = _mean(policy_chosen - ref_chosen, chosen_tokens)
    rejected = _mean(policy_rejected - ref_rejected, rejected_tokens)
    losses = (chosen - rejected - 1.0 / (2.0 * beta)) ** 2
    return PreferenceLoss(losses, (beta * chosen).detach(), (beta * rejected).detach())


def wpo_weights(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, chosen_tokens: torch.Tensor,
                rejected_tokens: torch.Tensor, chosen_log_sum_sq: torch.Tensor | None = None,
                rejected_log_sum_sq: torch.Tensor | None = None) -> torch.Tensor:
    """``w(y_c)·w(y_r)`` with ``w(y) = exp(mean_t [log πθ(y_t) - log Σ_v πθ(v)²])`` (offset 0 when not
    given); detached, so the weights scale the gradient but are not trained."""
    with torch.no_grad():
        c = policy_chosen - (chosen_log_sum_sq if chosen_log_sum_sq is not None else 0.0)
        r = policy_rejected - (rejected_log_sum_sq if rejected_log_sum_sq is not None else 0.0)
        return torch.exp(_mean(c, chosen_tokens)) * torch.exp(_mean(r, rejected_tokens))


def wpo(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
        ref_rejected: torch.Tensor, chosen_tokens: torch.Tensor, rejected_tokens: torch.Tensor,
        beta: float, label_smoothing: float = 0.0, chosen_log_sum_sq: torch.Tensor | None = None,
        rejected_log_sum_sq: torch.Tensor | None = None) -> PreferenceLoss:
    """WPO: the DPO loss of each pair times the policy's own (detached) probability of both responses."""
    base = dpo(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta, label_smoothing)
    w = wpo_weights(policy_chosen, policy_rejected, chosen_tokens, rejected_tokens,
                    chosen_log_sum_sq, rejected_log_sum_sq)
    return PreferenceLoss(base.losses * w, base.chosen_rewards, base.rejected_rewards)


@dataclass
class SeqLogps:
    """Per-response summed log-probs over response tokens, for the chosen and rejected halves of a batch."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected_tokens: torch.Tensor
    chosen_log_sum_sq: torch.Tensor | None = None  # Σ_t log Σ_v π(v)², only for aligned WPO
    rejected_log_sum_sq: torch.Tensor | None = None


def preference_loss(loss_type: str, policy: SeqLogps, ref_chosen: torch.Tensor | None,
                    ref_rejected: torch.Tensor | None, *, beta: float, gamma: float | None = None,
                    label_smoothing: float = 0.0, wpo_aligned: bool = False) -> PreferenceLoss:
    """Dispatch by name; ``ref_*`` may be None only for reference-free losses, ``gamma`` only for others.
    No hyperparameter has a default here: the trainer's config holds the one default of each."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
    if loss_type == "simpo":
        if gamma is None:
            raise ValueError("loss_type 'simpo' needs its target margin gamma")
        return simpo(policy.chosen, policy.rejected, policy.chosen_tokens, policy.rejected_tokens,
                     beta, gamma, label_smoothing)
    if ref_chosen is None or ref_rejected is None:
        raise ValueError(f"loss_type {loss_type!r} needs reference log-probs")
    if loss_type == "dpo":
        return dpo(policy.chosen, policy.rejected, ref_chosen, ref_rejected, beta, label_smoothing)
    if loss_type == "dpo_norm":
        return dpo_norm(policy.chosen, policy.rejected, ref_chosen, ref_rejected, policy.chosen_tokens,
                        policy.rejected_tokens, beta, label_smoothing)
    if loss_type == "ipo":
        return ipo(policy.chosen, policy.rejected, ref_chosen, ref_rejected, policy.chosen_tokens,
                   policy.rejected_tokens, beta)
    return wpo(policy.chosen, policy.rejected, ref_chosen, ref_rejected, policy.chosen_tokens,
               policy.rejected_tokens, beta, label_smoothing,
               policy.chosen_log_sum_sq if wpo_aligned else None,
               policy.rejected_log_sum_sq if wpo_aligned else None)


def reward_metrics(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                   prefix: str = "rewards/") -> dict[str, float]:
    """Mean chosen/rejected reward, accuracy (chosen > rejected, strictly) and mean margin."""
    c, r = chosen_rewards.detach().float(), rejected_rewards.detach().float()
    return {
        f"{prefix}chosen": c.mean().item(),
        f"{prefix}rejected": r.mean().item(),
        f"{prefix}accuracies": (c > r).float().mean().item(),
        f"{prefix}margins": (c - r).mean().item(),
    }


def bradley_terry(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor, margin: torch.Tensor | None = None,
                  center_coef: float = 0.0) -> torch.Tensor:
    """Reward-model loss per pair: ``-log σ(r_c - r_r - m)``, plus optional ``c·(r_c + r_r)²`` centering
    (Eisenstein et al. 2023) that keeps scores near zero."""
    z = chosen_scores - rejected_scores
    if margin is not None:
        z = z - margin
    losses = -F.logsigmoid(z)
    if center_coef:
        losses = losses + center_coef * (chosen_scores + rejected_scores) ** 2
    return losses
