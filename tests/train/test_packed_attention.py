"""tulu.train.attention beyond the CPU loss-parity test in tests/data/test_packing_loss.py.

* the sequence boundaries of a packed row are read once per forward pass, not once per layer;
* on CUDA (skipped elsewhere): the varlen flash path gives the same loss and gradients as running each
  sequence on its own, within bf16 tolerance.

Built from a config (no tokenizer, no embedded model), so the CUDA test also runs on a bare GPU machine.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tulu.train import attention


def tiny_llama(seed: int = 0, layers: int = 3):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(cfg)


def packed_row(lengths, vocab=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, sum(lengths)), generator=g)
    pos = torch.cat([torch.arange(n) for n in lengths]).unsqueeze(0)
    return ids, pos


def per_sequence_loss(model, ids, lengths):
    """Reference: each sequence alone through stock attention, next-token loss summed."""
    total = 0.0
    for chunk in ids.split(lengths, dim=1):
        logits = model(input_ids=chunk, use_cache=False).logits[0, :-1].float()
        total = total + F.cross_entropy(logits, chunk[0, 1:], reduction="sum")
    return total


def packed_loss(model, ids, pos, lengths):
    logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0].float()
    starts = torch.tensor([0] + lengths).cumsum(0)
    keep = torch.ones(ids.shape[1] - 1, dtype=torch.bool)
    keep[(starts[1:-1] - 1).tolist()] = False  # no target across a sequence boundary
    return F.cross_entropy(logits[:-1][keep], ids[0, 1:][keep], reduction="sum")


def test_segments_read_once_per_forward(monkeypatch):
    model = tiny_llama(layers=4)
    model.set_attn_implementation(attention.register())
    calls = []
    real = attention.segments
    monkeypatch.setattr(attention, "segments", lambda pos: calls.append(1) or real(pos))
    lengths = [7, 12, 5]
    ids, pos = packed_row(lengths)
    with torch.no_grad():
        model(input_ids=ids, position_ids=pos, use_cache=False)
    assert len(calls) == 1  # four layers, one host read of the boundaries
    with torch.no_grad():
        model(input_ids=ids, position_ids=pos.clone(), use_cache=False)
    assert len(calls) == 2  # a new position_ids tensor (the next micro-batch) is read again


@pytest.mark.skipif(not torch.cuda.is_available() or attention._VARLEN is None,
                    reason="needs CUDA and torch.nn.attention.varlen")
def test_varlen_path_matches_per_sequence_on_cuda(monkeypatch):
    lengths = [37, 128, 9, 250, 64]
    ids, pos = packed_row(lengths)
    ids, pos = ids.cuda(), pos.cuda()
    model = tiny_llama().cuda()
    used = []
    real = attention._varlen_packed
    monkeypatch.setattr(attention, "_varlen_packed", lambda *a: used.append(1) or real(*a))

    with torch.autocast("cuda", dtype=torch.bfloat16):
        ref = per_sequence_loss(model, ids, lengths)
    ref.backward()
    ref_grads = {k: p.grad.clone() for k, p in model.named_parameters()}
    model.zero_grad()
    model.set_attn_implementation(attention.register())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ours = packed_loss(model, ids, pos, lengths)
    ours.backward()
    assert used, "the varlen flash path was not taken"
    assert torch.allclose(ours, ref, rtol=1e-2), (ours.item(), ref.item())
    for k, p in model.named_parameters():
        cos = F.cosine_similarity(p.grad.flatten().float(), ref_grads[k].flatten().float(), dim=0)
        assert cos > 0.99, (k, cos.item())


def test_several_packed_rows_equal_each_sequence_alone():
    """DPO/RM batches: rows of packed sequences with trailing padding (positions restart at 0 there too)."""
    model = tiny_llama(layers=2).eval()
    rows = [[7, 12], [5, 17, 3]]
    width = 28
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 512, (len(rows), width), generator=g)
    pos = torch.zeros(len(rows), width, dtype=torch.long)
    spans = []
    for r, lens in enumerate(rows):
        off = 0
        for n in lens:
            pos[r, off:off + n] = torch.arange(n)
            spans.append((r, off, n))
            off += n
        pos[r, off:] = torch.arange(width - off)  # trailing pad: its own sequence
    model.set_attn_implementation(attention.register())
    with torch.no_grad():
        packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits
        model.set_attn_implementation("sdpa")
        for r, off, n in spans:
            alone = model(input_ids=ids[r:r + 1, off:off + n], use_cache=False).logits[0]
            assert torch.allclose(packed[r, off:off + n], alone, atol=1e-5), (r, off, n)
