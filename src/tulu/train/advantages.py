"""Rewards and advantages for RLVR as pure functions on padded ``[B, T]`` response tensors.

Conventions shared with :mod:`tulu.train.rl_losses`:

* a batch holds ``B`` responses padded to ``T`` tokens; ``mask`` (bool or 0/1 float, ``[B, T]``) marks the
  response tokens. Rows are right-padded (left padding also works for everything here; a row whose mask has
  a hole is rejected by :func:`gae`, where it would change the result);
* per-sequence quantities (scores, GRPO advantages) are ``[B]``;
* outputs are zero at masked-out positions, so they can be summed without re-masking;
* GRPO groups are consecutive: rows ``g*G .. g*G+G-1`` are the ``G`` samples of prompt ``g``.

Formulas (``⊙`` elementwise, ``m`` the mask):

* :func:`verifiable_reward` (Tulu 3 report §6): ``s = 10·correct``; a response that stopped without EOS
  (truncated at the length limit) gets the non-stop penalty ``-10`` instead.
* :func:`per_token_rewards` (Ziegler et al. 2019; Tulu 3 PPO): ``r_t = -β·KL_t`` on every response token,
  plus the sequence score ``s`` on the last response token.
* :func:`gae` (Schulman et al. 2016, eq. 11-16): ``δ_t = r_t + γ·V_{t+1} - V_t`` with ``V = 0`` after the
  last token, ``A_t = Σ_l (γλ)^l δ_{t+l}``, returns ``R_t = A_t + V_t``.
* :func:`masked_whiten`: ``(x - mean) / sqrt(var + ε)`` over the masked entries (PPO implementations'
  advantage whitening), optionally adding the mean back.
* :func:`group_advantages` (GRPO, Shao et al. 2024, §4.1.2): ``A_i = (r_i - mean_g(r)) / (std_g(r) + ε)``;
  Dr. GRPO (Liu et al. 2025, §3.2) drops the division by the std.
* :func:`zero_std_groups` (DAPO, Yu et al. 2025, §3.2, dynamic sampling): groups whose rewards are all equal
  give zero advantage and hence no gradient; DAPO drops them and samples more.
* :func:`overlong_penalty` (DAPO §3.4, eq. 13): the soft length penalty of responses near the limit.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = [
    "gae",
    "group_advantages",
    "last_token_index",
    "masked_mean",
    "masked_sum",
    "masked_var",
    "masked_whiten",
    "overlong_penalty",
    "per_token_rewards",
    "verifiable_reward",
    "zero_std_groups",
]


def _as_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The mask as a 0/1 tensor of ``like``'s dtype (float math without boolean indexing)."""
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} differs from the values' shape {tuple(like.shape)}")
    return mask.to(like.dtype)


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``Σ x·m`` over ``dim`` (all entries when None). Masked-out entries never contribute, even if NaN."""
    m = _as_mask(mask, x)
    x = torch.where(m.bool(), x, torch.zeros_like(x))
    return x.sum() if dim is None else x.sum(dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """``Σ x·m / Σ m`` over ``dim``; 0 where the mask is empty (not NaN)."""
    m = _as_mask(mask, x)
    count = m.sum() if dim is None else m.sum(dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries of ``x`` (all dims). ``unbiased`` applies Bessel's correction
    ``n/(n-1)``, as TRL's ``masked_var`` and open-instruct do; with fewer than two entries it returns 0."""
    m = _as_mask(mask, x)
    n = m.sum()
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        var = var * n / (n - 1.0) if n >= 2 else torch.zeros_like(var)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  unbiased: bool = True) -> torch.Tensor:
    """Whiten the masked entries of ``x`` with statistics over the whole batch:
    ``(x - μ) / sqrt(σ² + ε)``, with ``μ``, ``σ²`` the masked mean and (by default unbiased) variance, as in
    TRL's and open-instruct's PPO (``masked_whiten``). ``shift_mean=False`` adds ``μ`` back (scale only; PPO
    implementations use it to whiten rewards). Masked-out positions are 0 in the result; with no masked
    entries the result is all zeros; with one entry σ² = 0 and the entry becomes 0 (or ``μ``)."""
    mean = masked_mean(x, mask)
    var = masked_var(x, mask, unbiased=unbiased)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(_as_mask(mask, x).bool(), out, torch.zeros_like(out))


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last response token of each row (``[B]`` long), -1 for rows without any."""
    m = mask.bool()
    t = torch.arange(m.shape[-1], device=m.device).expand_as(m)
    return torch.where(m, t, torch.full_like(t, -1)).amax(dim=-1)


def verifiable_reward(correct: torch.Tensor, finished: torch.Tensor, correct_score: float = 10.0,
                      nonstop_penalty: float | None = -10.0) -> torch.Tensor:
    """Tulu 3's RLVR score per response (``[B]`` float).

    ``score = correct_score · correct`` where ``correct`` is a bool or a verifier score in [0, 1] (e.g.
    IFEval's fraction of constraints met); Tulu 3 used ``correct_score = 10``. A response that did not
    finish with EOS (``finished`` False: cut at the length limit) gets ``nonstop_penalty`` *instead* of its
    score (Tulu 3 / open-instruct ``non_stop_penalty`` with ``penalty_reward_value = -10``); ``None``
    disables the penalty and truncated responses keep their score."""
    if correct.shape != finished.shape:
        raise ValueError(f"correct {tuple(correct.shape)} and finished {tuple(finished.shape)} differ in shape")
    dtype = correct.dtype if correct.is_floating_point() else torch.get_default_dtype()
    score = correct.to(dtype) * correct_score
    if nonstop_penalty is None:
        return score
    return torch.where(finished.bool(), score, torch.full_like(score, nonstop_penalty))


def per_token_rewards(scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None,
                      beta: float = 0.0) -> torch.Tensor:
    """PPO's dense reward ``[B, T]``: ``r_t = -β·KL_t`` on each response token (``kl`` per token, e.g. the
    k1 estimate ``log πθ - log πref`` of the sampling policy, detached), plus ``scores[b]`` on the last
    response token of row ``b``. ``kl`` may be None when ``β = 0``. A row with no response token has
    nowhere to put its score and stays all zero. Zero at masked-out positions."""
    if scores.dim() != 1 or scores.shape[0] != mask.shape[0]:
        raise ValueError(f"scores must be [B] with B = {mask.shape[0]}, got {tuple(scores.shape)}")
    dtype = kl.dtype if kl is not None else (scores.dtype if scores.is_floating_point() else torch.float32)
    m = mask.to(dtype)
    rewards = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    if beta:
        if kl is None:
            raise ValueError("per_token_rewards: beta != 0 needs the per-token kl")
        rewards = torch.where(m.bool(), -beta * kl.detach(), torch.zeros_like(m))
    last = last_token_index(mask)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] += scores[rows].to(dtype)
    return rewards


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over the response tokens.

    With ``V_{T_b} = 0`` after the last response token of row ``b`` (the episode ends there):
    ``δ_t = r_t + γ·V_{t+1} - V_t`` and ``A_t = δ_t + γλ·A_{t+1}``, i.e. ``A_t = Σ_l (γλ)^l δ_{t+l}``; returns
    ``R_t = A_t + V_t`` are the value targets. Tulu 3 used ``γ = 1, λ = 0.95``. Inputs ``[B, T]``; values at
    masked-out positions are ignored. Returns ``(advantages, returns)``, both detached and 0 where masked.
    The response tokens of a row must be contiguous (padding before and/or after them only)."""
    if not (rewards.shape == values.shape == mask.shape):
        raise ValueError(f"gae: rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and mask "
                         f"{tuple(mask.shape)} must have the same [B, T] shape")
    m = mask.to(values.dtype)
    starts = (m[:, 1:] > m[:, :-1]).sum(-1) + m[:, 0]
    if (starts > 1).any():
        rows = torch.nonzero(starts > 1).squeeze(-1).tolist()
        raise ValueError(f"gae: the response mask of rows {rows} is not contiguous")
    keep = m.bool()
    r = torch.where(keep, rewards.detach().to(values.dtype), torch.zeros_like(m))
    v = torch.where(keep, values.detach(), torch.zeros_like(m))
    adv = torch.zeros_like(v)
    last = torch.zeros_like(v[:, 0])
    for t in range(v.shape[1] - 1, -1, -1):
        next_v = v[:, t + 1] if t + 1 < v.shape[1] else torch.zeros_like(last)
        delta = r[:, t] + gamma * next_v - v[:, t]
        last = (delta + gamma * lam * last) * m[:, t]
        adv[:, t] = last
    return adv, (adv + v) * m


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be [B] (one score per response), got {tuple(rewards.shape)}")
    if group_size < 1 or rewards.shape[0] % group_size:
        raise ValueError(f"{rewards.shape[0]} rewards do not split into groups of {group_size}")
    return rewards.view(-1, group_size)


def group_advantages(rewards: torch.Tensor, group_size: int,
                     scale: Literal["group", "batch", "none"] = "group", eps: float = 1e-4,
                     unbiased: bool = True) -> torch.Tensor:
    """GRPO's outcome advantage, one per response (``[B]``; broadcast it over the response's tokens).

    ``A_i = (r_i - mean(r_group)) / (std + eps)`` with the std of the group (``scale="group"``, GRPO,
    Shao et al. 2024), of the whole batch (``"batch"``, as REINFORCE++ and TRL's ``scale_rewards="batch"``)
    or no division at all (``"none"``, Dr. GRPO, Liu et al. 2025, which shows the std division biases
    toward too easy and too hard prompts). ``unbiased`` picks the ``n-1`` std (TRL's ``torch.std``);
    open-instruct uses numpy's population std (``unbiased=False``) and ``eps = 1e-8``. Groups whose
    rewards are all equal get advantage 0 whatever the scale."""
    g = _groups(rewards, group_size).to(rewards.dtype if rewards.is_floating_point() else torch.float32)
    centred = g - g.mean(dim=1, keepdim=True)
    if scale == "none":
        return centred.reshape(-1)
    if scale == "group":
        std = g.std(dim=1, keepdim=True, correction=int(unbiased)) if group_size > 1 else torch.zeros_like(g)
    elif scale == "batch":
        std = g.reshape(-1).std(correction=int(unbiased)) if g.numel() > 1 else g.new_zeros(())
    else:
        raise ValueError(f"scale must be 'group', 'batch' or 'none', got {scale!r}")
    return (centred / (std + eps)).reshape(-1)


def zero_std_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[B / group_size]`` bool: True for the groups whose rewards are all equal (all solved or all
    failed). Their GRPO advantages are 0, so they contribute no policy gradient; DAPO's dynamic sampling
    drops them and samples more prompts. ``mean()`` of the result is the share of zero-std groups."""
    g = _groups(rewards, group_size)
    return g.amax(dim=1) == g.amin(dim=1)


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer_len: int, penalty: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment (eq. 13), added to the verifier's reward: 0 for
    ``|y| ≤ L_max - L_cache``, ``(L_max - L_cache - |y|) / L_cache`` (times ``penalty``) inside the buffer,
    ``-penalty`` beyond ``L_max``. Here ``max_len = L_max`` and ``buffer_len = L_cache``."""
    if not 0 < buffer_len <= max_len:
        raise ValueError(f"need 0 < buffer_len <= max_len, got buffer_len={buffer_len}, max_len={max_len}")
    lengths = lengths.to(torch.get_default_dtype())
    inside = (max_len - buffer_len - lengths) / buffer_len
    out = torch.where(lengths <= max_len - buffer_len, torch.zeros_like(lengths), inside)
    return penalty * torch.where(lengths > max_len, torch.full_like(lengths, -1.0), out)
