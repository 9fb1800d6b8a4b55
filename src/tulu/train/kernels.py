"""CPU replacements for ATen kernels that measured slow in our training steps (same results).

``EmbeddingGrad``: the backward of the input embedding lookup. ATen's CPU ``embedding_dense_backward``
took 149 ms for 552 token ids into SmolLM2's 49152 x 576 table on 2 cores; a dense ``index_add_`` into a
zeroed gradient takes 30 ms (of which 28 ms is zeroing the 113 MB buffer) and gives the same gradient
bit for bit. With a tied LM head that is ~4% of an SFT micro-batch. ``padding_idx`` rows get no gradient,
as in ``nn.Embedding``. Only installed on CPU; CUDA's kernel is fast and deterministic.

Reproduce: ``python benchmarks/sft_throughput.py --only tulu`` with ``train.cpu_embedding_grad`` on / off.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


class EmbeddingGrad(torch.autograd.Function):
    """``weight[ids]`` whose weight gradient is a dense ``index_add_`` (rows at ``padding_idx`` stay zero)."""

    @staticmethod
    def forward(ctx, ids: torch.Tensor, weight: torch.Tensor, padding_idx: int | None) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.weight_shape = weight.shape
        ctx.padding_idx = padding_idx
        return F.embedding(ids, weight)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        if not ctx.needs_input_grad[1]:
            return None, None, None
        (ids,) = ctx.saved_tensors
        grad = grad_out.new_zeros(ctx.weight_shape)
        grad.index_add_(0, ids.reshape(-1), grad_out.reshape(-1, grad_out.shape[-1]))
        if ctx.padding_idx is not None:
            grad[ctx.padding_idx] = 0
        return None, grad, None


def _embedding_forward(self: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    return EmbeddingGrad.apply(ids, self.weight, self.padding_idx)


def install_embedding_grad(model: nn.Module) -> bool:
    """Route ``model``'s input embedding through :class:`EmbeddingGrad` when it lives on the CPU and is a plain
    ``nn.Embedding`` (no max_norm, scale_grad_by_freq or sparse gradients). Returns whether it did."""
    get = getattr(model, "get_input_embeddings", None)
    emb = get() if get is not None else None
    if (type(emb) is not nn.Embedding or emb.weight.device.type != "cpu" or emb.max_norm is not None
            or emb.scale_grad_by_freq or emb.sparse):
        return False
    emb.forward = types.MethodType(_embedding_forward, emb)
    return True
