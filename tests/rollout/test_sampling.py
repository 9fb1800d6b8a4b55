"""The pure sampling functions against HF's logits warpers and against exact probabilities."""

from __future__ import annotations

import pytest
import torch

from tulu.rollout import sampling


def _hf_kept(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

    z = logits.clone()
    if top_k:
        z = TopKLogitsWarper(top_k)(None, z)
    if top_p < 1:
        z = TopPLogitsWarper(top_p)(None, z)
    return torch.isfinite(z)


@pytest.mark.parametrize("top_k,top_p", [(0, 0.9), (5, 1.0), (20, 0.7), (0, 0.3), (3, 0.99), (0, 0.999)])
def test_candidates_match_hf_warpers(top_k, top_p):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 1000, generator=g) * 3
    probs, ids = sampling.candidates(logits, top_k, top_p)
    ours = torch.zeros_like(logits, dtype=torch.bool)
    ours.scatter_(1, ids, probs > 0)
    assert torch.equal(ours, _hf_kept(logits, top_k, top_p))


def test_nucleus_grows_past_initial_candidates():
    logits = torch.zeros(2, 5000)  # flat: top-p 0.9 needs 4500 tokens, beyond the first 256 candidates
    probs, _ids = sampling.candidates(logits, 0, 0.9)
    assert int((probs[0] > 0).sum()) == 4500


def test_draw_follows_the_distribution():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).expand(20000, 4)
    ids = torch.arange(4).expand(20000, 4)
    u = torch.rand(20000, generator=torch.Generator().manual_seed(1))
    toks = sampling.draw(probs, ids, u)
    freq = torch.bincount(toks, minlength=4).float() / 20000
    assert freq[1] == 0
    assert torch.allclose(freq, torch.tensor([0.1, 0.0, 0.6, 0.3]), atol=0.015)


def test_token_logprobs_is_temperature_scaled_log_softmax():
    logits = torch.randn(3, 50)
    toks = torch.tensor([1, 7, 49])
    for t in (0.0, 0.7, 1.0):
        ref = torch.log_softmax(logits / (t or 1.0), -1)[torch.arange(3), toks]
        assert torch.allclose(sampling.token_logprobs(logits, toks, t), ref, atol=1e-6)


def test_sample_greedy_is_argmax_and_sampling_needs_uniforms():
    logits = torch.randn(4, 30)
    assert torch.equal(sampling.sample(logits, temperature=0.0, top_k=0, top_p=1.0, uniforms=None), logits.argmax(-1))
    with pytest.raises(ValueError):
        sampling.sample(logits, temperature=1.0, top_k=0, top_p=1.0, uniforms=None)
    # top_k=1 sampling is argmax whatever the uniforms
    u = torch.rand(4)
    assert torch.equal(sampling.sample(logits, temperature=1.3, top_k=1, top_p=1.0, uniforms=u), logits.argmax(-1))


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.95), (0.7, 0.9), (2.0, 0.5), (1.0, 0.999)])
def test_compiled_nucleus_is_the_exact_nucleus(monkeypatch, request, temperature, top_p):
    """The compiled top-p (no vocabulary sort) against the definition in float64, on a 49k vocabulary."""
    from tulu.rollout import kernels

    request.getfixturevalue("compiled_kernels")  # fails where a compiler exists but the build does not work
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 49152, generator=g) * 4 / temperature
    z[0, :7] = z[0].max() + 1  # ties at the top: lower ids first
    probs, ids = torch.ops.tulu.nucleus(z, top_p)
    assert torch.equal(sampling.candidates(z, 0, top_p)[1], ids)  # candidates() routes CPU fp32 here
    for r in range(z.shape[0]):
        order = torch.sort(z[r].double(), descending=True, stable=True).indices
        p = torch.softmax(z[r].double(), 0)[order]
        kept = int(((p.cumsum(0) - p) < top_p).sum())
        assert int((probs[r] > 0).sum()) == kept
        assert torch.equal(ids[r, :kept], order[:kept])
        assert torch.allclose(probs[r, :kept].double(), p[:kept], rtol=1e-5, atol=1e-10)
        assert len(set(ids[r].tolist())) == ids.shape[1]  # padding ids are distinct too
    # rows without ties draw the same tokens as the torch.topk path (whose order among ties is arbitrary)
    monkeypatch.setattr(kernels, "available", lambda: False)
    ref_probs, ref_ids = sampling.candidates(z[1:], 0, top_p)
    u = torch.rand(z.shape[0] - 1, generator=g)
    assert torch.equal(sampling.draw(probs[1:], ids[1:], u), sampling.draw(ref_probs, ref_ids, u))


def test_compiled_argmax_logsumexp_matches_torch(request):
    """The fused greedy pass against torch.argmax and float64 logsumexp: shapes with and without an 8-wide
    tail, ties (first index wins), and torch's answers for NaN, all -inf and +inf rows."""
    request.getfixturevalue("compiled_kernels")  # fails where a compiler exists but the build does not work
    g = torch.Generator().manual_seed(2)
    for rows, vocab in ((1, 1), (3, 7), (4, 1001), (32, 49152)):
        z = torch.randn(rows, vocab, generator=g) * 6
        z[0, vocab // 2:] = z[0].max() + 1  # a tie at the top: the first index wins
        ids, lse = torch.ops.tulu.argmax_logsumexp(z)
        assert torch.equal(ids, z.argmax(-1))
        torch.testing.assert_close(lse.double(), z.double().logsumexp(-1), atol=2e-6, rtol=0)
    inf, nan = float("inf"), float("nan")
    z = torch.tensor([[0.0, nan, 1.0, nan], [-inf] * 4, [0.0, inf, 1.0, inf], [-inf, 2.0, -inf, 3.0]])
    ids, lse = torch.ops.tulu.argmax_logsumexp(z)
    assert torch.equal(ids, z.argmax(-1))
    torch.testing.assert_close(lse, z.logsumexp(-1), equal_nan=True)
    with pytest.raises(RuntimeError, match="rows, vocab"):
        torch.ops.tulu.argmax_logsumexp(torch.zeros(3))


def test_greedy_returns_argmax_and_its_log_softmax(monkeypatch, request):
    """Both paths (compiled=False keeps to torch ops: the op must not be called) give the argmax and its
    log-softmax."""
    logits = torch.randn(5, 3000) * 4
    ref_tok, ref_lp = logits.argmax(-1), torch.log_softmax(logits.double(), -1).max(-1).values
    for compiled in (True, False):
        if compiled:
            request.getfixturevalue("compiled_kernels")
        with monkeypatch.context() as m:
            if not compiled:
                m.setattr(torch.ops.tulu, "argmax_logsumexp", None, raising=False)  # a call would fail
            toks, lps = sampling.greedy(logits, compiled)
        assert torch.equal(toks, ref_tok)
        torch.testing.assert_close(lps.double(), ref_lp, atol=2e-6, rtol=0)
