"""Per-sequence log-probabilities of response tokens in one forward pass.

A preference batch holds 2·P sequences (P chosen, then P rejected). They run through the model together,
either **packed** (several sequences per row, ``position_ids`` restarting per sequence, no padding inside a
row; transformers keeps them apart with ``use_cache=False``) or **padded** (one sequence per row plus an
attention mask). Then:

* only the hidden states at positions whose next token is a response token are projected through the LM
  head; prompt and padding positions never reach it;
* the projection runs in chunks through :class:`LabelLogProb`, a custom autograd function that returns
  ``log p(y_t) = z[y_t] - logsumexp(z)`` per label and keeps only the hidden states and one float per token
  for the backward pass, which recomputes each chunk's logits. No ``[tokens, vocab]`` tensor outlives a
  chunk and no full-vocabulary ``log_softmax`` is ever stored;
* per-token values are summed per sequence with ``index_add``; token counts come from the labels.

:func:`reference_response_logps` is the naive version (full logits, ``log_softmax``, one sequence at a
time) that the tests compare against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from tulu.data.packing import Layout, SeqBatch, collate_sequences  # noqa: F401 (re-exported)
from tulu.data.templates import IGNORE_INDEX, Encoded


# ------------------------------------------------------------------------------------------ fused head
class LabelLogProb(torch.autograd.Function):
    """``(h [N,H], W [V,H], b [V]|None, y [N]) -> (log softmax(hWᵀ+b)[y] [N], log Σ_v p(v)² [N])``.

    The second output is computed only when ``want_sq`` and is not differentiable (WPO uses it detached).

    Precision: the two matmuls (logits, and the gradients of ``h`` and ``W``) run in the **compute dtype**:
    the autocast dtype when autocast is on where ``h`` lives (bf16 training), else ``h``'s own dtype. The
    forward and the backward's recomputation use the same dtype, chosen once in the forward (autocast
    reaches a custom backward only when ``backward()`` runs inside the autocast block; called outside, the
    recomputed logits would be fp32 while the saved ``logsumexp`` came from bf16 ones). Everything after the matmul (``logsumexp``, the softmax of the
    gradient, the accumulation of ``W``'s gradient over chunks) is fp32.
    """

    @staticmethod
    def forward(ctx, h, weight, bias, targets, chunk_size: int, want_sq: bool):  # type: ignore[override]
        n = h.shape[0]
        acc = _acc_dtype(h)
        cd = _compute_dtype(h)
        out = torch.empty(n, dtype=acc, device=h.device)
        lse = torch.empty(n, dtype=acc, device=h.device)
        sq = torch.empty(n, dtype=acc, device=h.device) if want_sq else None
        with torch.autocast(h.device.type, enabled=False):
            hc, wc = h.to(cd), weight.to(cd)
            bc = bias.to(cd) if bias is not None else None
            for s in range(0, n, chunk_size):
                e = min(s + chunk_size, n)
                logits = _chunk_logits(hc[s:e], wc, bc)
                lse[s:e] = torch.logsumexp(logits, dim=-1)
                out[s:e] = logits.gather(1, targets[s:e, None]).squeeze(1) - lse[s:e]
                if sq is not None:
                    sq[s:e] = torch.logsumexp(logits.mul_(2.0), dim=-1) - 2.0 * lse[s:e]
        ctx.save_for_backward(h, weight, bias if bias is not None else torch.empty(0), targets, lse)
        ctx.has_bias = bias is not None
        ctx.chunk_size = chunk_size
        ctx.compute_dtype = cd
        if sq is None:
            sq = out.new_zeros(0)
        ctx.mark_non_differentiable(sq)
        return out, sq

    @staticmethod
    def backward(ctx, grad_out, _grad_sq):  # type: ignore[override]
        h, weight, bias, targets, lse = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        grad_h = torch.empty_like(h) if need_h else None
        acc, cd = _acc_dtype(h), ctx.compute_dtype
        grad_w = torch.zeros_like(weight, dtype=acc) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=acc, device=h.device) if need_b else None
        g_all = grad_out.to(acc)
        with torch.autocast(h.device.type, enabled=False):
            hc, wc = h.to(cd), weight.to(cd)
            bc = bias.to(cd) if ctx.has_bias else None
            for s in range(0, h.shape[0], ctx.chunk_size):
                e = min(s + ctx.chunk_size, h.shape[0])
                g = g_all[s:e]
                # d log p(y)/d z = onehot(y) - softmax(z); scaled by the incoming gradient, built in place.
                grad_z = _chunk_logits(hc[s:e], wc, bc).sub_(lse[s:e, None]).exp_().mul_(-g[:, None])
                grad_z[torch.arange(e - s, device=h.device), targets[s:e]] += g
                gz = grad_z.to(cd)
                if need_h:
                    grad_h[s:e] = (gz @ wc).to(h.dtype)
                if need_w:
                    if cd == acc:
                        grad_w.addmm_(grad_z.t(), hc[s:e])
                    else:  # a chunk's product in the compute dtype, summed over chunks in fp32
                        grad_w += gz.t() @ hc[s:e]
                if need_b:
                    grad_b += grad_z.sum(0)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        if grad_b is not None:
            grad_b = grad_b.to(weight.dtype)
        return grad_h, grad_w, grad_b, None, None, None


def _acc_dtype(h: torch.Tensor) -> torch.dtype:
    """Accumulate in fp32 (fp64 when the inputs are fp64, for gradcheck)."""
    return torch.float64 if h.dtype == torch.float64 else torch.float32


def _compute_dtype(h: torch.Tensor) -> torch.dtype:
    """The matmul dtype: the autocast dtype when autocast is on for ``h``'s device (never for fp64 inputs),
    else ``h``'s dtype."""
    dev = h.device.type
    if h.dtype != torch.float64 and torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return h.dtype


def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    z = h @ weight.t() if bias is None else torch.addmm(bias, h, weight.t())
    return z.to(_acc_dtype(h))


def label_logprobs(h: torch.Tensor, head: nn.Module, targets: torch.Tensor, *, chunk_size: int = 512,
                   want_sq: bool = False, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of each target under ``softmax(head(h) / temperature)``; the fused path for a plain
    ``nn.Linear`` head without bias (the temperature then scales ``h``), a chunked ``head(...)`` +
    ``log_softmax`` fallback for anything else (e.g. a head wrapped by an adapter)."""
    if temperature <= 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    if type(head) is nn.Linear and (head.bias is None or temperature == 1.0):
        x = h if temperature == 1.0 else h / temperature
        lp, sq = LabelLogProb.apply(x, head.weight, head.bias, targets, chunk_size, want_sq)
        return lp, (sq if want_sq else None)
    lps, sqs = [], []
    for s in range(0, h.shape[0], chunk_size):
        logp = torch.log_softmax(head(h[s:s + chunk_size]).float() / temperature, dim=-1)
        lps.append(logp.gather(1, targets[s:s + chunk_size, None]).squeeze(1))
        if want_sq:
            sqs.append(torch.logsumexp(2.0 * logp.detach(), dim=-1))
    empty = h.new_zeros(0, dtype=torch.float32)
    return (torch.cat(lps) if lps else empty), ((torch.cat(sqs) if sqs else empty) if want_sq else None)


# --------------------------------------------------------------------------------------- model plumbing
def unwrap_model(model: nn.Module) -> nn.Module:
    """The transformers model inside DDP/accelerate wrappers (``.module``) and a PEFT wrapper, whose LoRA
    layers live inside the base model's modules."""
    m = getattr(model, "module", model)
    if hasattr(m, "get_base_model"):
        m = m.get_base_model()
    return m


def backbone_of(model: nn.Module) -> nn.Module:
    """The transformer body (returns ``last_hidden_state``) of a causal LM or sequence classifier."""
    m = unwrap_model(model)
    backbone = getattr(m, m.base_model_prefix, None)
    if backbone is None or backbone is m:
        raise TypeError(f"{type(m).__name__}: cannot find the backbone of this model")
    return backbone


def split_causal_lm(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone returning ``last_hidden_state``, LM head) of a causal LM, a PEFT wrapper of one, or DDP."""
    m = unwrap_model(model)
    head = m.get_output_embeddings()
    if head is None:
        raise TypeError(f"{type(m).__name__}: cannot find the LM head of this causal LM")
    cfg = getattr(m.config, "get_text_config", lambda: m.config)()
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"):
        if getattr(cfg, attr, None) not in (None, 1.0):
            raise NotImplementedError(f"{type(m).__name__}: {attr} is not supported by the fused log-prob path")
    return backbone_of(m), head


def forward_hidden(backbone: nn.Module, batch: SeqBatch) -> torch.Tensor:
    """``[rows, T, H]`` last hidden states of a laid-out batch (no KV cache: packed sequences stay apart)."""
    out = backbone(input_ids=batch.input_ids, position_ids=batch.position_ids,
                   attention_mask=batch.attention_mask, use_cache=False)
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


@dataclass
class LabelHidden:
    """Hidden states at the positions whose next token is a label, with those labels and their sequence."""

    hidden: torch.Tensor  # [N, H]
    targets: torch.Tensor  # [N]
    seq: torch.Tensor  # [N] sequence index of each target


def label_hidden(backbone: nn.Module, batch: SeqBatch) -> LabelHidden:
    """Run the backbone once and gather the hidden states that predict a label (prompt and padding
    positions never reach a head): the LM head for log-probs, a value head for per-token values."""
    hidden = forward_hidden(backbone, batch)
    targets = batch.labels[:, 1:]
    sel = targets != IGNORE_INDEX
    return LabelHidden(hidden[:, :-1][sel], targets[sel], batch.seq_index[:, 1:][sel])


@dataclass
class ResponseLogps:
    sums: torch.Tensor  # [num_seqs] summed log-probs of response tokens
    counts: torch.Tensor  # [num_seqs] number of response tokens
    log_sum_sq: torch.Tensor | None = None  # [num_seqs] Σ_t log Σ_v p(v)², detached


def response_logps(model: nn.Module, batch: SeqBatch, *, chunk_size: int = 512,
                   want_sq: bool = False) -> ResponseLogps:
    """Summed log-probs of the labelled tokens of every sequence in ``batch``, in one forward pass."""
    backbone, head = split_causal_lm(model)
    g = label_hidden(backbone, batch)
    lp, sq = label_logprobs(g.hidden, head, g.targets, chunk_size=chunk_size, want_sq=want_sq)
    n = batch.num_seqs
    sums = torch.zeros(n, dtype=lp.dtype, device=lp.device).index_add(0, g.seq, lp)
    counts = torch.bincount(g.seq, minlength=n)
    sq_sums = None
    if sq is not None:
        sq_sums = torch.zeros(n, dtype=sq.dtype, device=sq.device).index_add(0, g.seq, sq.detach())
    return ResponseLogps(sums, counts, sq_sums)


def reference_response_logps(model: nn.Module, seqs: Sequence[Encoded]) -> ResponseLogps:
    """The naive computation, one unpadded sequence at a time through the full model (for tests)."""
    sums, counts = [], []
    device = next(model.parameters()).device
    for s in seqs:
        ids = torch.tensor([s.input_ids], device=device)
        labels = torch.tensor(s.labels[1:], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
        logp = torch.log_softmax(logits, dim=-1)
        keep = labels != IGNORE_INDEX
        sums.append(logp[keep].gather(1, labels[keep, None]).sum())
        counts.append(int(keep.sum()))
    return ResponseLogps(torch.stack(sums), torch.tensor(counts, device=device))
