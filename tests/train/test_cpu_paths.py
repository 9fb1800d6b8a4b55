"""tulu.train.cpu: the CPU embedding gradient equals nn.Embedding's bit for bit; the malloc tuning applies."""

import platform

import pytest
import torch
from torch import nn

from tulu.train.cpu import EmbeddingGrad, install_embedding_grad, tune_malloc


def _grad(emb: nn.Embedding, ids: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    emb.zero_grad(set_to_none=True)
    emb(ids).backward(upstream)
    return emb.weight.grad.clone()


def test_embedding_grad_matches_aten_including_repeats_and_padding_idx():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 8, padding_idx=3)
    ids = torch.tensor([[3, 7, 7, 1, 3, 49, 0, 7]])  # repeated ids accumulate; padding rows get no gradient
    upstream = torch.randn(1, 8, 8)
    ref = _grad(emb, ids, upstream)
    assert install_embedding_grad(nn.Sequential()) is False  # nothing to install on
    holder = nn.Module()
    holder.emb = emb
    holder.get_input_embeddings = lambda: emb
    assert install_embedding_grad(holder) is True
    ours = _grad(emb, ids, upstream)
    assert torch.equal(ours, ref)
    assert torch.count_nonzero(ours[3]) == 0
    assert torch.equal(emb(ids), nn.functional.embedding(ids, emb.weight))


def test_embedding_grad_frozen_weight_and_unsupported_options():
    w = torch.randn(10, 4)  # no requires_grad: backward must not build a weight gradient
    x = torch.randn(1, 3, 4, requires_grad=True)
    out = EmbeddingGrad.apply(torch.tensor([[1, 2, 3]]), w, None) * x
    out.sum().backward()
    assert x.grad is not None
    for kwargs in ({"max_norm": 1.0}, {"scale_grad_by_freq": True}, {"sparse": True}):
        emb = nn.Embedding(10, 4, **kwargs)
        holder = nn.Module()
        holder.get_input_embeddings = lambda e=emb: e
        assert install_embedding_grad(holder) is False, kwargs


def test_tied_model_gradients_unchanged(tiny, tokenizer):
    """A whole tied-embedding Llama: every parameter gradient equals the stock one."""
    model, _ = tiny
    ids = torch.tensor([tokenizer("Hello there, how are you? <|im_end|> fine")["input_ids"]])

    def grads():
        model.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        return {k: p.grad.clone() for k, p in model.named_parameters()}

    ref = grads()
    assert install_embedding_grad(model)
    ours = grads()
    for k in ref:
        assert torch.allclose(ours[k], ref[k], rtol=1e-6, atol=1e-7), k


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_malloc_applies_once_and_large_tensors_still_work():
    assert tune_malloc() is True
    assert tune_malloc() is True  # idempotent
    a = torch.ones(64 * 2**20 // 4)  # 64 MB: above glibc's mmap threshold, now served from the heap
    b = a * 2
    del a
    c = torch.zeros(64 * 2**20 // 4)  # reuses the freed block; must still read as zeros
    assert float(b.sum()) == 2 * b.numel() and float(c.abs().sum()) == 0.0
