"""Per-sequence attention for packed rows: exact work instead of a masked square.

A packed row of total length ``T`` holding sequences of lengths ``l_i`` needs ``sum(l_i²)`` attention work,
but SDPA with the block-diagonal mask that transformers builds for packed rows computes the whole ``T²``
square (the CPU kernels do not skip fully masked blocks). With 8 sequences of ~85 tokens per row that is
8x the necessary attention work, ~15-20% of a 135M model's step on CPU.

``packed_sdpa`` reads the sequence starts from ``position_ids`` (which restart at 0 per sequence) and keeps
sequences apart by construction (independent of the ``use_cache`` trap described in docs/sft.md):

* on CUDA in bf16/fp16, with PyTorch's ``torch.nn.attention.varlen.varlen_attn`` (flash attention over the
  whole row with cumulative sequence lengths, one kernel per layer: no mask, no per-sequence launches, no
  ``flash-attn`` package needed);
* otherwise (CPU, fp32, an older PyTorch) with causal SDPA on each sequence's slice. On CPU the key/value
  heads are shared through SDPA's ``enable_gqa`` instead of being copied per query head.

A batch of several packed rows (DPO and RM layouts) is laid end to end as one row: each row starts a new
sequence at position 0, and a row's trailing padding is a sequence of its own that no real token sees.
The sequence boundaries are read once per forward pass (every layer gets the same ``position_ids`` tensor),
so a GPU step does not wait on the host once per layer. Anything else (a KV cache, a one-token query) falls
back to transformers' own SDPA function with the mask it built. Register it once with :func:`register`,
then select it with ``model.set_attn_implementation(PACKED_SDPA)``.
"""

from __future__ import annotations

import inspect
import weakref

import torch
import torch.nn.functional as F

PACKED_SDPA = "tulu_packed_sdpa"
_REGISTERED = False
# kind -> (weak reference to the last position_ids tensor seen, what was derived from it)
_PER_FORWARD: dict[str, tuple] = {}


def segments(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) of every sequence in a ``[1, T]`` row whose positions restart at 0 per sequence."""
    pos = position_ids[0]
    starts = (pos == 0).nonzero().flatten().tolist()
    if not starts or starts[0] != 0:
        starts = [0] + starts
    ends = starts[1:] + [pos.shape[0]]
    return list(zip(starts, ends))


def _once_per_forward(kind: str, position_ids: torch.Tensor, derive):
    """``derive(position_ids)``, computed once per ``position_ids`` tensor: every layer of a forward pass gets
    the same tensor, so this runs once per forward instead of once per layer."""
    ref, value = _PER_FORWARD.get(kind, (None, None))
    if ref is None or ref() is not position_ids:
        value = derive(position_ids)
        _PER_FORWARD[kind] = (weakref.ref(position_ids), value)
    return value


def _lens(position_ids: torch.Tensor) -> tuple[list[int], dict]:
    """Sequence lengths of a packed row, and a {device: (cu_seqlens, max_len)} slot for the varlen path."""
    return _once_per_forward("lens", position_ids, lambda pos: ([e - s for s, e in segments(pos)], {}))


def _varlen_fn():
    """``(varlen_attn, accepts enable_gqa, causal keyword)`` from this PyTorch, or None when it has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    causal = {"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)}
    return varlen_attn, "enable_gqa" in params, causal


_VARLEN = _varlen_fn()


def _half_dtype(query: torch.Tensor):
    """The 16-bit dtype flash attention should run in for this CUDA query, or None (CPU, plain fp32).

    Under autocast the query arrives in fp32 (RoPE multiplies by fp32 cos/sin); SDPA would be cast by autocast
    itself, the varlen op is not on autocast's list, so the cast is made here."""
    if not query.is_cuda:
        return None
    if query.dtype in (torch.bfloat16, torch.float16):
        return query.dtype
    if torch.is_autocast_enabled("cuda"):
        dtype = torch.get_autocast_dtype("cuda")
        return dtype if dtype in (torch.bfloat16, torch.float16) else None
    return None


def _varlen_packed(query, key, value, lens, per_device, scaling):
    """One flash-attention call over the packed row ``[1, H, T, D]`` -> ``[1, T, H, D]``."""
    from transformers.integrations.sdpa_attention import repeat_kv

    fn, has_gqa, causal = _VARLEN
    dev = query.device
    if dev not in per_device:
        cu = torch.tensor([0] + lens, dtype=torch.int32).cumsum(0, dtype=torch.int32).to(dev, non_blocking=True)
        per_device[dev] = (cu, max(lens))
    cu, max_len = per_device[dev]
    if query.shape[1] != key.shape[1] and not has_gqa:
        groups = query.shape[1] // key.shape[1]
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    extra = {"enable_gqa": True} if has_gqa and query.shape[1] != key.shape[1] else {}
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # [T, H, D]
    out = fn(q, k, v, cu, cu, max_len, max_len, scale=scaling, **causal, **extra)
    return out.unsqueeze(0), None


def _one_row(t: torch.Tensor) -> torch.Tensor:
    """``[B, H, T, D]`` -> ``[1, H, B*T, D]`` (rows laid end to end)."""
    b, h, n, d = t.shape
    return t.transpose(0, 1).reshape(1, h, b * n, d)


def _flat_positions(position_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` -> ``[1, B*T]``, the same tensor for every layer (so :func:`_lens` reads it once)."""
    return _once_per_forward("flat", position_ids, lambda pos: pos.reshape(1, -1))


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """transformers attention function: query/key/value ``[B, H, T, D]`` -> ``([B, T, H, D], None)``."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    pos = kwargs.get("position_ids")
    if pos is None or query.shape[2] != key.shape[2] or query.shape[2] < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    rows = query.shape[0]
    if rows > 1:  # several packed rows (DPO/RM batches): one long row; every row starts a sequence at position 0
        out, _ = packed_sdpa(module, *(_one_row(t) for t in (query, key, value)), None, dropout=dropout,
                             scaling=scaling, position_ids=_flat_positions(pos))
        return out.view(rows, -1, *out.shape[2:]), None
    lens, per_device = _lens(pos)
    p = dropout if module.training else 0.0
    half = _half_dtype(query)
    if _VARLEN is not None and half is not None and p == 0.0:
        return _varlen_packed(query.to(half), key.to(half), value.to(half), lens, per_device, scaling)
    gqa = query.shape[1] != key.shape[1]
    if gqa and query.device.type != "cpu":  # CUDA's fused kernels take no enable_gqa in every version
        groups = query.shape[1] // key.shape[1]
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
        gqa = False
    # split, not a slice per sequence: its backward is one cat, where every slice's backward zero-fills a
    # gradient buffer of the whole row
    outs = [F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, scale=scaling, enable_gqa=gqa)
            for q, k, v in zip(query.split(lens, 2), key.split(lens, 2), value.split(lens, 2))]
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def register() -> str:
    """Register ``packed_sdpa`` (and SDPA's mask builder for its fallback path) with transformers."""
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        AttentionInterface.register(PACKED_SDPA, packed_sdpa)
        AttentionMaskInterface.register(PACKED_SDPA, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
        _REGISTERED = True
    return PACKED_SDPA


def set_packed_attention(model, enabled: bool = True) -> None:
    """Select ``packed_sdpa`` (or, with ``enabled=False``, stock ``sdpa`` again, e.g. before saving so the
    written config loads anywhere) on a transformers model or a PEFT wrapper of one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(register() if enabled else "sdpa")


def uses_packed_attention(model) -> bool:
    """Whether ``packed_sdpa`` is the model's (or a PEFT wrapper's base model's) attention implementation."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(getattr(base, "config", None), "_attn_implementation", None) == PACKED_SDPA
