"""Pure sampling functions shared by the backends: temperature, top-k, top-p, log-probs.

Conventions (the same as HF ``generate``'s warpers, in the same order):

1. temperature divides the logits (greedy when it is 0);
2. top-k keeps the k largest;
3. top-p keeps the smallest set of the remaining tokens, by descending probability *renormalised after
   top-k*, whose mass reaches ``top_p`` (a token is kept when the mass strictly before it is < top_p;
   the most likely token is always kept).

The log-prob reported for a sampled token is ``log_softmax(logits / T)`` at that token over the full
vocabulary (``T = 1`` for greedy), i.e. the temperature-scaled policy *before* truncation: the quantity
RL losses recompute with a teacher-forced pass. Truncation only decides which tokens may be drawn.
"""

from __future__ import annotations

import torch

from tulu.rollout import kernels

_NUCLEUS_START = 256  # candidates examined first for top-p; grows x4 while their mass is short of top_p


def scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits if temperature in (0.0, 1.0) else logits / temperature


def _compiled(z: torch.Tensor, allowed: bool) -> bool:
    """Whether the compiled CPU kernels take ``z`` (``allowed=False``: the torch ops, e.g. for the fast
    backend's ``compiled=False`` comparison)."""
    return allowed and z.device.type == "cpu" and z.dtype == torch.float32 and kernels.available()


def argmax_logsumexp(z: torch.Tensor, compiled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z.argmax(-1), z.logsumexp(-1))`` of 2-D ``z``; on CPU fp32 one compiled pass per row."""
    if _compiled(z, compiled):
        return torch.ops.tulu.argmax_logsumexp(z.contiguous())
    return z.argmax(-1), torch.logsumexp(z, dim=-1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float,
                   compiled: bool = True) -> torch.Tensor:
    """``log_softmax(logits / T)[b, tokens[b]]`` for each row (``T = 1`` when greedy)."""
    z = scaled(logits.float(), temperature)
    lse = argmax_logsumexp(z)[1] if _compiled(z, compiled) else torch.logsumexp(z, dim=-1)
    return z.gather(-1, tokens[:, None])[:, 0] - lse


def greedy(logits: torch.Tensor, compiled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy tokens and their log-probs (``log_softmax(logits)`` at the argmax), in one pass on CPU."""
    z = logits.float()
    toks, lse = argmax_logsumexp(z, compiled)
    return toks, z.gather(-1, toks[:, None])[:, 0] - lse


def candidates(z: torch.Tensor, top_k: int, top_p: float, compiled: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The tokens that may be drawn and their (unnormalised) probabilities, per row.

    Returns ``(probs [B, K], ids [B, K])`` with zeros on excluded candidates; without truncation ``K`` is
    the whole vocabulary. ``z`` are temperature-scaled logits.
    """
    vocab = z.shape[-1]
    if top_k <= 0 and top_p >= 1.0:
        return torch.softmax(z, dim=-1), torch.arange(vocab, device=z.device).expand_as(z)
    if top_k <= 0 and _compiled(z, compiled):
        return torch.ops.tulu.nucleus(z.contiguous(), top_p)  # the same, without sorting the vocabulary
    k = min(top_k, vocab) if top_k > 0 else min(_NUCLEUS_START, vocab)
    full_lse = torch.logsumexp(z, dim=-1, keepdim=True) if top_k <= 0 else None
    while True:
        vals, ids = z.topk(k, dim=-1)  # sorted, descending
        if top_p >= 1.0:
            return torch.softmax(vals, dim=-1), ids
        # with top-k the nucleus is taken on the renormalised top-k distribution; otherwise on the full one
        probs = torch.softmax(vals, dim=-1) if top_k > 0 else torch.exp(vals - full_lse)
        before = probs.cumsum(-1) - probs
        if top_k > 0 or k == vocab or bool((before[:, -1] + probs[:, -1] >= top_p).all()):
            keep = before < top_p
            keep[:, 0] = True
            return probs * keep, ids
        k = 4 * k if 4 * k <= vocab // 4 else vocab  # past a quarter of the vocabulary, sort it all


def draw(probs: torch.Tensor, ids: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: one token per row from unnormalised ``probs`` with ``uniforms`` in [0, 1)."""
    cdf = probs.double().cumsum(-1)
    target = uniforms.to(cdf.dtype)[:, None] * cdf[:, -1:]
    pick = torch.searchsorted(cdf, target, right=True).clamp_(max=probs.shape[-1] - 1)
    return ids.gather(-1, pick)[:, 0]


def sample(logits: torch.Tensor, *, temperature: float, top_k: int, top_p: float,
           uniforms: torch.Tensor | None, compiled: bool = True) -> torch.Tensor:
    """Next token per row: argmax when ``temperature == 0``, else a draw from the truncated distribution.
    ``compiled=False`` keeps to torch ops (the compiled top-p draws the same tokens)."""
    if temperature == 0.0:
        return logits.argmax(-1)
    if uniforms is None:
        raise ValueError("sampling needs one uniform number per row")
    probs, ids = candidates(scaled(logits.float(), temperature), top_k, top_p, compiled)
    return draw(probs, ids, uniforms)
