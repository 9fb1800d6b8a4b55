"""Packed SFT loss == unpacked loss (tiny model): values and gradients, to 1e-5.

Three conversations of different lengths go through the model once as one padding-free packed row
(``position_ids`` restarting per example, ``use_cache=False``) and once each on their own. The summed
token NLL of the packed row must equal the sum of the per-example NLLs, computed the naive way (full
logits over every position, transformers' own shift). The LM-head-at-label-positions path must agree with
the naive one, in the loss and in every parameter's gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tulu.data import synthetic
from tulu.data.packing import collate_sequences
from tulu.data.templates import IGNORE_INDEX, encode_chat
from tulu.train.sft import SFTTask, num_targets, sft_nll_sum



# One torch thread per test process: set for the whole suite in tests/conftest.py.

@pytest.fixture()
def examples(tokenizer):
    recs = synthetic.records("math", 2, kind="sft", seed=1) + synthetic.records("constraints", 1, kind="sft", seed=2)
    exs = [encode_chat(r["messages"], tokenizer) for r in recs]
    assert len({len(e.input_ids) for e in exs}) > 1  # different lengths, so boundaries matter
    return exs


def naive_nll_sum(model, ex) -> torch.Tensor:
    """Full logits at every position, shift by one, cross-entropy summed over label tokens."""
    ids = torch.tensor([ex.input_ids])
    labels = torch.tensor([ex.labels])
    logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
    return F.cross_entropy(logits, labels[0, 1:], ignore_index=IGNORE_INDEX, reduction="sum")


def packed_batch(examples):
    return collate_sequences(examples, 0, layout="packed")


def test_packed_loss_equals_unpacked(tiny, examples):
    model, _ = tiny
    b = packed_batch(examples)
    packed, n = sft_nll_sum(model, b)
    alone = sum(naive_nll_sum(model, e) for e in examples)
    assert n == sum(num_targets(e) for e in examples)
    assert torch.allclose(packed, alone, rtol=1e-5, atol=1e-5), (packed.item(), alone.item())
    # and per example: each one packed alone through our path equals the naive value
    for e in examples:
        bb = packed_batch([e])
        ours, _ = sft_nll_sum(model, bb)
        assert torch.allclose(ours, naive_nll_sum(model, e), rtol=1e-5, atol=1e-5)


def test_packed_gradients_equal_unpacked(tiny, examples):
    model, _ = tiny
    b = packed_batch(examples)
    model.zero_grad()
    sft_nll_sum(model, b)[0].backward()
    packed = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    sum(naive_nll_sum(model, e) for e in examples).backward()
    for k, p in model.named_parameters():
        assert torch.allclose(packed[k], p.grad, rtol=1e-4, atol=1e-5), k


def test_chunked_head_equals_plain(tiny, examples):
    model, _ = tiny
    b = packed_batch(examples)
    plain, _ = sft_nll_sum(model, b, head_chunk_size=0)
    chunked, _ = sft_nll_sum(model, b, head_chunk_size=37)
    assert torch.allclose(plain, chunked, rtol=1e-6, atol=1e-4)


def test_sft_task_collate_is_one_padding_free_row(examples):
    task = SFTTask("sum")
    batch = task.collate(examples)
    total = sum(len(e.input_ids) for e in examples)
    assert batch.input_ids.shape == (1, total) and batch.attention_mask is None
    assert int((batch.position_ids[0] == 0).sum()) == len(examples) == batch.num_seqs
    assert task.weight(examples[0]) == 1.0
    assert SFTTask("mean").weight(examples[0]) == num_targets(examples[0])


def test_per_sequence_packed_attention_equals_unpacked(tiny, examples):
    """tulu.train.attention.packed_sdpa: same loss and gradients as the unpacked reference."""
    from tulu.train.attention import register, segments

    model, _ = tiny
    b = packed_batch(examples)
    assert segments(b.position_ids) == [(s, s + len(e.input_ids)) for s, e in
                                           zip([sum(len(x.input_ids) for x in examples[:i]) for i in range(3)], examples)]
    model.zero_grad()
    ref = sum(naive_nll_sum(model, e) for e in examples)
    ref.backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.set_attn_implementation(register())
    model.zero_grad()
    ours, _ = sft_nll_sum(model, b)
    ours.backward()
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5)
    for k, p in model.named_parameters():
        assert torch.allclose(ref_grads[k], p.grad, rtol=1e-4, atol=1e-5), k
    # generation-style calls (a KV cache, one new token) fall back to stock SDPA and still work
    out = model.generate(b.input_ids[:, :20], max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 23)
