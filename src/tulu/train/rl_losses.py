"""Policy-gradient losses, KL estimators, the value loss and truncated importance sampling, as pure functions.

Shapes follow :mod:`tulu.train.advantages`: padded ``[B, T]`` per-token tensors and a ``[B, T]`` response
mask (bool or 0/1 float). ``logp`` is the learner's current log-probability of each sampled token (with
grad), ``old_logp`` the same policy's log-probs when the batch was collected (detached), ``ref_logp`` the
reference model's and ``gen_logp`` the generator's (vLLM or the CPU sampler; they differ from the learner's
by numerics). Nothing here touches a model.

Formulas (``ρ_t = exp(logp_t - old_logp_t)``, ``A_t`` the advantage):

* :func:`clipped_surrogate` / :func:`policy_loss` (PPO, Schulman et al. 2017, eq. 7), per token
  ``L_t = max(-A_t·ρ_t, -A_t·clip(ρ_t, 1-ε_low, 1+ε_high))``; ``ε_low = ε_high = 0.2`` is PPO and GRPO,
  ``ε_high = 0.28`` DAPO's clip-higher (Yu et al. 2025, §3.1).
* :func:`aggregate` (how per-token terms become one number; see its docstring for which paper uses which):
  ``"token"`` ``Σ_{i,t} L / Σ_i |o_i|`` (DAPO), ``"sequence"`` ``1/G Σ_i 1/|o_i| Σ_t L`` (GRPO),
  ``"constant"`` ``Σ_{i,t} L / (G·L_max)`` (Dr. GRPO).
* :func:`kl_estimate` (Schulman, "Approximating KL Divergence", 2020): with samples from πθ and
  ``log r = log πref - log πθ``: ``k1 = -log r``, ``k2 = (log r)²/2``, ``k3 = (r - 1) - log r``, each an
  estimator of ``KL(πθ ‖ πref)`` per token (k1 unbiased, k2 low-variance biased, k3 unbiased and ≥ 0).
* :func:`value_loss` (PPO value clipping as in OpenAI baselines / TRL / open-instruct):
  ``½·max((V - R)², (clip(V, V_old - c, V_old + c) - R)²)``.
* :func:`truncated_is_weights` (Yao et al. 2025, "Your efficient RL framework secretly brings you
  off-policy RL training"): ``w_t = min(exp(old_logp_t - gen_logp_t), C)``, a detached per-token weight on
  the policy loss correcting for the generator/learner log-prob mismatch; open-instruct used ``C = 2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from tulu.train.advantages import masked_mean, masked_sum

__all__ = [
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "Aggregation",
    "PolicyLoss",
    "ValueLoss",
    "aggregate",
    "clipped_surrogate",
    "kl_estimate",
    "logprob_mismatch_stats",
    "policy_loss",
    "truncated_is_weights",
    "value_loss",
]

Aggregation = Literal["token", "sequence", "constant"]
AGGREGATIONS: tuple[str, ...] = ("token", "sequence", "constant")
KL_ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, mode: Aggregation = "token", *,
              max_len: int | None = None, token_count: float | torch.Tensor | None = None,
              seq_count: float | torch.Tensor | None = None) -> torch.Tensor:
    """Reduce a ``[B, T]`` per-token loss to a scalar over the masked tokens.

    * ``"token"``: ``Σ_{i,t} L_{i,t} / Σ_i |o_i|``, every token of the batch weighs the same. DAPO's
      token-level policy-gradient loss (Yu et al. 2025, §3.3, eq. 12); also open-instruct's default and what
      PPO implementations (TRL ``masked_mean``) do.
    * ``"sequence"``: ``1/B Σ_i (1/|o_i|) Σ_t L_{i,t}``, each response weighs the same, so the tokens of a
      long response weigh less. GRPO as published (Shao et al. 2024, eq. 3). Rows with no token count as 0
      in the mean (the ``1/G`` of the paper counts every sample).
    * ``"constant"``: ``Σ_{i,t} L_{i,t} / (B·max_len)``, a fixed denominator with no length bias. Dr. GRPO
      (Liu et al. 2025, §3.1); ``max_len`` is the generation limit (not the batch's padded width).

    With gradient accumulation, pass the totals of the whole optimiser batch: ``token_count`` (response
    tokens, replacing ``Σ_i |o_i|``) or ``seq_count`` (responses, replacing ``B``), so that the summed
    micro-batch losses equal the loss of the whole batch."""
    if per_token.shape != mask.shape:
        raise ValueError(f"per-token loss {tuple(per_token.shape)} and mask {tuple(mask.shape)} differ")
    if mode == "token":
        denom = mask.to(per_token.dtype).sum() if token_count is None else token_count
        return masked_sum(per_token, mask) / torch.as_tensor(denom, dtype=per_token.dtype).clamp(min=1.0)
    n_seq = torch.as_tensor(per_token.shape[0] if seq_count is None else seq_count, dtype=per_token.dtype)
    if mode == "sequence":
        return masked_mean(per_token, mask, dim=-1).sum() / n_seq.clamp(min=1.0)
    if mode == "constant":
        if max_len is None or max_len < 1:
            raise ValueError("aggregate(mode='constant') needs max_len >= 1 (the generation length limit)")
        return masked_sum(per_token, mask) / (n_seq.clamp(min=1.0) * max_len)
    raise ValueError(f"unknown aggregation {mode!r}; choose one of {', '.join(AGGREGATIONS)}")


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None = None,
                kind: str | int = "k3", clamp: float | None = None) -> torch.Tensor:
    """Per-token estimate of ``KL(πθ ‖ πref)`` from tokens sampled from πθ (``[B, T]``, 0 where masked).

    With ``log r = ref_logp - logp``: ``k1 = -log r`` (unbiased, can be negative; Tulu 3's PPO reward
    penalty), ``k2 = ½(log r)²`` (biased, low variance), ``k3 = (r - 1) - log r`` (unbiased, always ≥ 0;
    GRPO's KL term). ``kind`` is ``"k1"``/``"k2"``/``"k3"`` or 1/2/3. Gradients flow into both inputs;
    detach the reference. ``clamp`` bounds ``|log r|`` first (open-instruct clamps at 40 so ``exp`` in k3
    cannot overflow); None leaves it alone."""
    name = f"k{kind}" if isinstance(kind, int) else str(kind).lower()
    if name not in KL_ESTIMATORS:
        raise ValueError(f"unknown KL estimator {kind!r}; choose one of {', '.join(KL_ESTIMATORS)}")
    log_r = ref_logp - logp
    if clamp is not None:
        log_r = log_r.clamp(-clamp, clamp)
    if name == "k1":
        kl = -log_r
    elif name == "k2":
        kl = 0.5 * log_r ** 2
    else:
        kl = torch.expm1(log_r) - log_r
    if mask is None:
        return kl
    return torch.where(mask.bool(), kl, torch.zeros_like(kl))


def _per_token_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if advantages.dim() == 1:
        if advantages.shape[0] != like.shape[0]:
            raise ValueError(f"advantages [B] has B = {advantages.shape[0]}, log-probs have B = {like.shape[0]}")
        return advantages.unsqueeze(-1).to(like.dtype)
    if advantages.shape != like.shape:
        raise ValueError(f"advantages {tuple(advantages.shape)} must be [B] or [B, T] = {tuple(like.shape)}")
    return advantages.to(like.dtype)


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip_low: float = 0.2, clip_high: float | None = None,
                      weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped objective per token, as a loss to minimise (``[B, T]``, no masking).

    ``L_t = w_t · max(-A_t·ρ_t, -A_t·clip(ρ_t, 1 - clip_low, 1 + clip_high))`` with ``ρ_t = exp(logp_t -
    old_logp_t)``; ``clip_high`` defaults to ``clip_low``. ``advantages`` is ``[B, T]`` (PPO/GAE) or ``[B]``
    (GRPO, one per response). ``weights`` (e.g. :func:`truncated_is_weights`) multiply both terms and must
    be positive; they are detached. Returns ``(loss, ratio, clipped)``: ``clipped`` is True where the
    clipped term is the larger one, i.e. where the token gets no gradient."""
    if clip_high is None:
        clip_high = clip_low
    if clip_low < 0 or clip_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got clip_low={clip_low}, clip_high={clip_high}")
    adv = _per_token_advantages(advantages, logp)
    ratio = torch.exp(logp - old_logp.detach())
    unclipped = -adv * ratio
    clipped_term = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped_term)
    if weights is not None:
        loss = loss * weights.detach()
    return loss, ratio, clipped_term > unclipped


@dataclass
class PolicyLoss:
    """Output of :func:`policy_loss`. ``loss`` is the scalar to back-propagate (policy term plus
    ``β·KL``); the rest are detached floats-as-tensors for logging, each a mean over the masked tokens."""

    loss: torch.Tensor
    pg_loss: torch.Tensor        # the aggregated clipped surrogate alone
    kl_loss: torch.Tensor        # β·(aggregated KL term); 0 when no KL was given
    clip_frac: torch.Tensor      # share of tokens whose clipped term is active (zero gradient)
    approx_kl: torch.Tensor      # ½·mean (logp - old_logp)², how far the update moved (k2 of new vs old)
    ratio_mean: torch.Tensor     # mean ρ_t


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                clip_low: float = 0.2, clip_high: float | None = None, aggregation: Aggregation = "token",
                max_len: int | None = None, token_count: float | torch.Tensor | None = None,
                seq_count: float | torch.Tensor | None = None, is_weights: torch.Tensor | None = None,
                kl: torch.Tensor | None = None, beta: float = 0.0) -> PolicyLoss:
    """The clipped policy loss of PPO / GRPO / Dr. GRPO / DAPO, aggregated over the masked tokens.

    ``loss = agg(L_t + β·KL_t)`` with ``L_t`` from :func:`clipped_surrogate` (``is_weights`` applied to
    ``L_t`` only) and ``agg`` from :func:`aggregate` (``aggregation``, ``max_len``, ``token_count``,
    ``seq_count``). ``kl`` is a per-token KL with gradient (GRPO puts ``β·k3`` in the loss; PPO puts k1 in
    the reward instead and passes none). The family, by arguments:

    * PPO (Tulu 3): GAE advantages ``[B, T]``, ``clip_low=0.2``, ``aggregation="token"``;
    * GRPO: :func:`~tulu.train.advantages.group_advantages` ``[B]``, ``aggregation="sequence"``, ``kl`` k3;
    * Dr. GRPO: advantages with ``scale="none"``, ``aggregation="constant"``, ``max_len``;
    * DAPO: ``clip_high=0.28``, ``aggregation="token"``, ``beta=0``."""
    if logp.shape != mask.shape or old_logp.shape != mask.shape:
        raise ValueError(f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)} and mask "
                         f"{tuple(mask.shape)} must all be [B, T]")
    per_token, ratio, clipped = clipped_surrogate(logp, old_logp, advantages, clip_low, clip_high, is_weights)
    def agg(x: torch.Tensor) -> torch.Tensor:
        return aggregate(x, mask, aggregation, max_len=max_len, token_count=token_count, seq_count=seq_count)

    pg = agg(per_token)
    if kl is not None and beta:
        kl_term = beta * agg(kl)
    else:
        kl_term = torch.zeros((), dtype=pg.dtype, device=pg.device)
    with torch.no_grad():
        log_ratio = logp.detach() - old_logp.detach()
        clip_frac = masked_mean(clipped.to(logp.dtype), mask)
        approx_kl = masked_mean(0.5 * log_ratio ** 2, mask)
        ratio_mean = masked_mean(ratio.detach(), mask)
    return PolicyLoss(loss=pg + kl_term, pg_loss=pg.detach(), kl_loss=kl_term.detach(), clip_frac=clip_frac,
                      approx_kl=approx_kl, ratio_mean=ratio_mean)


@dataclass
class ValueLoss:
    """Output of :func:`value_loss`: the scalar loss (before ``vf_coef``) and the share of clipped tokens."""

    loss: torch.Tensor
    clip_frac: torch.Tensor


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, *,
               clip: float | None = 0.2, aggregation: Aggregation = "token", max_len: int | None = None,
               token_count: float | torch.Tensor | None = None,
               seq_count: float | torch.Tensor | None = None) -> ValueLoss:
    """PPO's clipped value loss, ``agg(½·max((V_t - R_t)², (clip(V_t, V_old - c, V_old + c) - R_t)²))``.

    ``values`` is the value head's current output (with grad), ``old_values`` its output when the batch
    was collected, ``returns`` the GAE targets (:func:`~tulu.train.advantages.gae`). ``clip=None`` gives
    the plain ``½(V - R)²``. Tulu 3 used ``c = 0.2`` and ``vf_coef = 0.1``; multiply by ``vf_coef``
    yourself. ``clip_frac`` is the share of tokens where the clipped error is the larger one."""
    if not (values.shape == old_values.shape == returns.shape == mask.shape):
        raise ValueError("values, old_values, returns and mask must all be [B, T]")
    returns = returns.detach()
    err = (values - returns) ** 2
    if clip is None:
        per_token, clipped = err, torch.zeros_like(err, dtype=torch.bool)
    else:
        old = old_values.detach()
        v_clipped = old + (values - old).clamp(-clip, clip)
        err_clipped = (v_clipped - returns) ** 2
        per_token, clipped = torch.maximum(err, err_clipped), err_clipped > err
    loss = 0.5 * aggregate(per_token, mask, aggregation, max_len=max_len, token_count=token_count,
                           seq_count=seq_count)
    return ValueLoss(loss=loss, clip_frac=masked_mean(clipped.to(values.dtype), mask).detach())


def truncated_is_weights(old_logp: torch.Tensor, gen_logp: torch.Tensor, mask: torch.Tensor | None = None,
                         cap: float = 2.0) -> torch.Tensor:
    """Truncated importance-sampling weights between the generator and the learner (``[B, T]``, detached).

    ``w_t = min(exp(old_logp_t - gen_logp_t), cap)``: tokens were sampled from the generator's distribution
    (``gen_logp``), the loss assumes the learner's (``old_logp``, the learner's log-probs of the same tokens
    before the update). Pass the result as ``is_weights`` to :func:`policy_loss`. Computed as
    ``exp(min(Δ, log cap))`` so a large ``Δ`` cannot overflow. 1 at masked-out positions."""
    if cap <= 0:
        raise ValueError(f"truncated importance sampling cap must be > 0, got {cap}")
    delta = (old_logp - gen_logp).detach()
    w = torch.exp(delta.clamp(max=math.log(cap)))
    if mask is None:
        return w
    return torch.where(mask.bool(), w, torch.ones_like(w))


def logprob_mismatch_stats(old_logp: torch.Tensor, gen_logp: torch.Tensor, mask: torch.Tensor,
                           cap: float | None = 2.0) -> dict[str, float]:
    """How far the generator's log-probs are from the learner's on the same tokens, for the step log.

    Keys: ``mismatch/mean_abs`` (mean ``|Δ|``, ``Δ = old_logp - gen_logp``), ``mismatch/max_abs``,
    ``mismatch/mean`` (signed), ``mismatch/k3`` (mean k3 estimate of ``KL(gen ‖ learner)``, ≥ 0),
    ``mismatch/clamped_frac`` (share of tokens whose ratio ``exp(Δ)`` exceeds ``cap``; 0 when ``cap`` is
    None) and ``mismatch/tokens``. All are 0 on an empty mask."""
    with torch.no_grad():
        delta = (old_logp - gen_logp).detach().to(torch.float64)
        keep = mask.bool()
        n = int(keep.sum().item())
        if n == 0:
            return {k: 0.0 for k in ("mismatch/mean_abs", "mismatch/max_abs", "mismatch/mean", "mismatch/k3",
                                      "mismatch/clamped_frac", "mismatch/tokens")}
        d = delta[keep]
        clamped = (d > math.log(cap)).double().mean().item() if cap is not None else 0.0
        return {
            "mismatch/mean_abs": d.abs().mean().item(),
            "mismatch/max_abs": d.abs().max().item(),
            "mismatch/mean": d.mean().item(),
            "mismatch/k3": (torch.expm1(d) - d).mean().item(),
            "mismatch/clamped_frac": clamped,
            "mismatch/tokens": float(n),
        }
