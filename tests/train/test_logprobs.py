"""The one-pass response log-probs equal the naive full-logits computation, values and gradients."""

from __future__ import annotations

import pytest
import torch

from tulu.data import synthetic
from tulu.data.templates import IGNORE_INDEX, encode_prompt_response
from tulu.train.logprobs import (
    LabelLogProb,
    collate_sequences,
    label_logprobs,
    reference_response_logps,
    response_logps,
)


def _seqs(tokenizer, n=3):
    recs = synthetic.records("constraints", n, kind="preference", seed=1) + \
        synthetic.records("math", n, kind="preference", seed=1)
    chosen = [encode_prompt_response(r["messages"], r["chosen"], tokenizer) for r in recs]
    rejected = [encode_prompt_response(r["messages"], r["rejected"], tokenizer) for r in recs]
    return chosen + rejected


def test_label_logprob_gradcheck():
    torch.manual_seed(0)
    h = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    b = torch.randn(11, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 11, (7,))
    assert torch.autograd.gradcheck(lambda h, w, b: LabelLogProb.apply(h, w, b, y, 3, False)[0], (h, w, b))
    lp, sq = LabelLogProb.apply(h, w, b, y, 3, True)
    ref = torch.log_softmax(h @ w.T + b, -1)
    torch.testing.assert_close(lp, ref.gather(1, y[:, None]).squeeze(1))
    torch.testing.assert_close(sq, torch.logsumexp(2 * ref, -1))


def test_fallback_head_matches_fused():
    torch.manual_seed(0)
    head = torch.nn.Linear(6, 13, bias=False)
    h, y = torch.randn(9, 6), torch.randint(0, 13, (9,))
    fused, _ = label_logprobs(h, head, y, chunk_size=4)
    wrapped = torch.nn.Sequential(head)  # not a plain Linear -> generic path
    generic, _ = label_logprobs(h, wrapped, y, chunk_size=4)
    torch.testing.assert_close(fused, generic)


@pytest.mark.parametrize("layout,max_row", [("packed", None), ("packed", 300), ("padded", None)])
def test_response_logps_match_naive(tiny, layout, max_row):
    model, tok = tiny
    seqs = _seqs(tok)
    batch = collate_sequences(seqs, tok.pad_token_id, layout=layout, max_row_tokens=max_row)
    if layout == "packed" and max_row:
        assert batch.input_ids.shape[0] > 1  # really several rows
    with torch.no_grad():
        ours = response_logps(model, batch, chunk_size=16)
        ref = reference_response_logps(model, seqs)
    torch.testing.assert_close(ours.sums, ref.sums, atol=2e-4, rtol=1e-5)
    assert ours.counts.tolist() == [sum(1 for x in s.labels[1:] if x != IGNORE_INDEX) for s in seqs]
    assert ours.counts.tolist() == ref.counts.tolist()


def test_response_logps_gradients_match_naive(tiny):
    model, tok = tiny
    model.train()
    seqs = _seqs(tok, n=2)
    weights = torch.linspace(-1.0, 1.0, len(seqs))
    batch = collate_sequences(seqs, tok.pad_token_id, layout="packed", max_row_tokens=250)
    (response_logps(model, batch, chunk_size=8).sums * weights).sum().backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    (reference_response_logps(model, seqs).sums * weights).sum().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(ours[n], p.grad, atol=1e-5, rtol=1e-4, msg=n)


def test_log_sum_sq_only_when_asked(tiny):
    model, tok = tiny
    seqs = _seqs(tok, n=1)
    batch = collate_sequences(seqs, tok.pad_token_id)
    with torch.no_grad():
        assert response_logps(model, batch).log_sum_sq is None
        out = response_logps(model, batch, want_sq=True)
    # log sum p^2 <= log max p <= 0 for every token, so the per-sequence sum is negative.
    assert (out.log_sum_sq < 0).all()
