"""The one packer keeps sequences apart: per-sequence logits and the loss match unpacked passes."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tulu.data.packing import collate_sequences, pack_rows
from tulu.data.templates import IGNORE_INDEX, encode_chat


def convs(n):
    return [[{"role": "user", "content": f"Question number {i}: " + "word " * i},
             {"role": "assistant", "content": f"Answer {i}. " * (i % 3 + 1)}] for i in range(n)]


def token_loss_sum(logits, labels):
    shift_logits, shift_labels = logits[:-1], labels[1:]
    return F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")


def test_packed_logits_equal_unpacked_per_example(tiny):
    model, tok = tiny
    encs = [encode_chat(c, tok) for c in convs(4)]
    batch = collate_sequences(encs, tok.pad_token_id)
    assert batch.input_ids.shape == (1, sum(len(e.input_ids) for e in encs))
    assert torch.bincount(batch.seq_index[0]).tolist() == [len(e.input_ids) for e in encs]
    with torch.no_grad():
        packed = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits[0]
        off = 0
        for e in encs:
            ref = model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0]
            torch.testing.assert_close(packed[off: off + len(e.input_ids)], ref, atol=1e-5, rtol=1e-5)
            off += len(e.input_ids)


def test_packed_loss_equals_unpacked_loss(tiny):
    model, tok = tiny
    encs = [encode_chat(c, tok) for c in convs(5)]
    batch = collate_sequences(encs, tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False).logits[0]
        packed = token_loss_sum(logits, batch.labels[0])
        unpacked = sum(
            token_loss_sum(model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0], torch.tensor(e.labels))
            for e in encs
        )
    n_packed = torch.tensor(batch.num_targets)
    n_unpacked = sum(sum(1 for x in e.labels[1:] if x != IGNORE_INDEX) for e in encs)
    assert n_packed == n_unpacked
    assert abs(packed.item() / n_packed.item() - unpacked.item() / n_unpacked) < 1e-5


def test_pack_respects_budget_and_order(tokenizer):
    encs = [encode_chat(c, tokenizer) for c in convs(12)]
    budget = max(len(e.input_ids) for e in encs) * 2
    rows = pack_rows([len(e.input_ids) for e in encs], budget)
    assert all(sum(len(encs[i].input_ids) for i in r) <= budget for r in rows)
    assert [i for r in rows for i in r] == list(range(len(encs)))  # order kept
    batch = collate_sequences(encs, tokenizer.pad_token_id, max_row_tokens=budget)
    assert batch.input_ids.shape[0] == len(rows)
    real = batch.seq_index >= 0
    assert batch.input_ids[real].tolist() == [t for e in encs for t in e.input_ids]
    starts = (batch.position_ids == 0) & real
    assert (batch.labels[starts] == IGNORE_INDEX).all()  # never predicted from the previous sequence


def test_padded_collate_masks_padding(tokenizer):
    encs = [encode_chat(c, tokenizer) for c in convs(3)]
    b = collate_sequences(encs, tokenizer.pad_token_id, layout="padded")
    assert b.input_ids.shape[0] == len(encs)
    assert b.attention_mask.sum().item() == sum(len(e.input_ids) for e in encs)
    assert (b.labels[b.attention_mask == 0] == IGNORE_INDEX).all()
