"""bf16 products with fp32 accumulation (csrc/dpbf16.cpp, vdpbf16ps): what ``dtype=bfloat16`` computes on a
build for AVX512-BF16. The matmul against torch on bf16-rounded inputs and weights, its rounding and batch
invariance; the engine against an HF forward whose linear layers see bf16-rounded inputs and weights; decode
against prefill; sampled log-probs against a teacher-forced fp32 forward, and the greedy agreement rate with
fp32 decoding (printed). Skipped only on CPUs without avx512_bf16; on one that has it, a build without the
kernel fails here."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from tulu.rollout import SamplingParams, get_backend
from tulu.rollout import weights as wp
from tulu.rollout.llama import FastLlama

from bf16_checks import agreement, logprob_gaps, prompts

# |log p_bf16(token) - log p_fp32(token)| of sampled tokens against a teacher-forced fp32 forward, the bounds
# docs/rollout.md states for bf16 products. Tiny random model: max (measured ~2e-3); embedded SmolLM2-135M:
# max and mean over the sampled tokens (measured 0.099 and 0.015; the widening path: 0.052, 0.008).
TINY_DOT_LOGPROB_TOL = 1e-2
EMBEDDED_DOT_MAX_TOL, EMBEDDED_DOT_MEAN_TOL = 0.25, 0.03


@pytest.fixture()
def dot(compiled_kernels):
    from tulu.precision import cpu_flags

    if "avx512_bf16" not in cpu_flags():
        pytest.skip("this CPU lacks avx512_bf16: the vdpbf16ps kernel is not built here (bf16 = storage only)")
    assert torch.ops.tulu.has_dpbf16(), "the CPU has avx512_bf16 but the compiled kernels lack the dpbf16 kernel"
    assert wp.dot_products_available()


def _ref(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """(bf16-rounded x) @ (bf16-rounded W)^T (+ b), in float64 (the products are exact in fp32 anyway)."""
    return F.linear(x.bfloat16().double(), w.bfloat16().double(), None if b is None else b.double())


@pytest.mark.parametrize("k", [40, 41, 7, 1])
@pytest.mark.parametrize("bias", [False, True])
def test_dot_matmul_matches_torch_on_rounded_inputs(dot, k, bias):
    g = torch.Generator().manual_seed(k)
    for n in (48, 64):  # 3 panels (an odd panel left at > 8 rows) and 4
        w = torch.randn(n, k, generator=g)
        b = torch.randn(n, generator=g) if bias else None
        packed = torch.ops.tulu.pack_panels_dpbf16(w)
        assert packed.dtype == torch.bfloat16 and packed.shape == (n // 16, (k + 1) // 2, 32)
        for rows in [*range(1, 41), 101]:
            x = torch.randn(rows, k, generator=g)
            y = torch.ops.tulu.panel_linear(x, packed, b)
            ref = _ref(x, w, b)
            # fp32 accumulation of exact products: within a few ulps of the sum of |terms|
            bound = 1e-6 * (F.linear(x.bfloat16().double().abs(), w.bfloat16().double().abs()) +
                            (0 if b is None else b.double().abs())) + 1e-30
            assert y.dtype == torch.float32 and y.shape == (rows, n)
            assert ((y.double() - ref).abs() <= bound).all(), (n, rows, (y.double() - ref).abs().max())


def test_dot_rounds_inputs_to_nearest_even_and_packs_pairs(dot):
    """With W = I the output is bf16(x) itself: bit for bit torch's round-to-nearest-even, ties included."""
    k = 32
    base = torch.randn(5, k, generator=torch.Generator().manual_seed(0)).bfloat16().float()
    ulp = torch.frexp(base)[0].sign() * torch.ldexp(torch.ones_like(base), torch.frexp(base)[1] - 8)
    x = torch.cat([base, base + ulp / 2, base - ulp / 2, base + ulp / 4, base + 3 * ulp / 4])  # ties, in between
    y = torch.ops.tulu.panel_linear(x, torch.ops.tulu.pack_panels_dpbf16(torch.eye(k)), None)
    assert torch.equal(y, x.bfloat16().float())
    # a permutation: column c of the output picks x[:, perm[c]] (pairs interleaved the right way round)
    perm = torch.randperm(k, generator=torch.Generator().manual_seed(1))
    y = torch.ops.tulu.panel_linear(x, torch.ops.tulu.pack_panels_dpbf16(torch.eye(k)[perm]), None)
    assert torch.equal(y, x.bfloat16().float()[:, perm])


def test_dot_zero_rows(dot):
    packed = torch.ops.tulu.pack_panels_dpbf16(torch.randn(32, 9))
    assert torch.ops.tulu.panel_linear(torch.empty(0, 9), packed, None).shape == (0, 32)


def test_dot_rows_are_batch_invariant(dot):
    """A row's outputs do not depend on how many rows come with it (decode at 1-8 rows, blocks beyond)."""
    g = torch.Generator().manual_seed(2)
    w, x = torch.randn(96, 75, generator=g), torch.randn(50, 75, generator=g)
    packed = torch.ops.tulu.pack_panels_dpbf16(w)
    full = torch.ops.tulu.panel_linear(x, packed, None)
    for rows in (1, 3, 8, 9, 32):
        assert torch.equal(torch.ops.tulu.panel_linear(x[:rows], packed, None), full[:rows]), rows


def _hf_bf16_products(model):
    """A copy of ``model`` computing what the bf16-product engine computes: every matrix rounded to bf16 and
    every linear layer's input rounded to bf16 (kept fp32), everything else fp32."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            if p.dim() == 2:
                p.copy_(p.bfloat16().float())
    for mod in out.modules():
        if isinstance(mod, torch.nn.Linear):
            mod.register_forward_pre_hook(lambda m, args: (args[0].bfloat16().float(),))
    return out


def test_dot_engine_matches_hf_with_bf16_inputs_and_decode_matches_prefill(dot, tiny):
    model, _ = tiny
    eng = FastLlama(model, batch_hint=4, weights="bfloat16")
    assert eng.bf16_panels and eng.bf16_dot and eng.weight_choice.products == "bf16"
    assert eng.layers[0].gate_up.weight.shape[-1] == 32 and eng.lm_head.weight.dtype == torch.bfloat16
    ref = _hf_bf16_products(model)
    seqs = [[5, 6, 7, 8, 9], [9, 10, 11]]
    logits, kv = eng.prefill(seqs, all_logits=True)
    with torch.no_grad():
        want = torch.cat([ref(torch.tensor([s])).logits[0] for s in seqs])
    assert torch.allclose(logits, want, atol=1e-4), (logits - want).abs().max()
    # the compiled decode step (same kernel, one token per row) against the prefill of the longer sequences
    cache = eng.new_cache(2, 16).zero_()
    cache[:, :, 0, :, :4] = kv[:, :, :4].permute(0, 1, 3, 2, 4)
    cache[:, :, 1, :, :2] = kv[:, :, 5:7].permute(0, 1, 3, 2, 4)
    step = eng.decode(cache, torch.tensor([9, 11]), torch.tensor([4, 2]))
    assert torch.allclose(step, logits[[4, 7]], atol=1e-4), (step - logits[[4, 7]]).abs().max()
    # fp32 weights: fp32 products; auto's measurement times the bf16-product panels
    fp32 = FastLlama(model, batch_hint=2, weights="float32")
    assert not fp32.bf16_dot and fp32.weight_choice.products == "fp32"
    assert fp32._measure_bf16(positions=8, repeats=1)["products"] == "bf16"
    assert (logits - fp32.prefill(seqs, all_logits=True)[0]).abs().max() < 0.05  # close, not equal


def test_dot_sampled_logprobs_near_teacher_forced_fp32(dot, tiny):
    model, tok = tiny
    bf16 = get_backend("fast", model, tok, max_batch_size=4, dtype="bfloat16")
    fp32 = get_backend("fast", model, tok, max_batch_size=4, dtype="float32")
    assert bf16.engine.weight_choice.products == "bf16" and "vdpbf16ps" in bf16.engine.weight_choice.reason
    p = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=3, logprobs=True)
    gaps = [g for out in bf16.generate(prompts(), p) for c in out.completions for g in logprob_gaps(model, c)]
    g = SamplingParams(max_new_tokens=12)
    rate = agreement(bf16.generate(prompts(), g), fp32.generate(prompts(), g))
    print(f"bf16 products, tiny model: greedy agreement with fp32 {rate:.0%}; sampled |dlogp| max {max(gaps):.2e}")
    assert max(gaps) < TINY_DOT_LOGPROB_TOL, max(gaps)
    assert 0.0 < rate <= 1.0


@pytest.mark.slow
def test_embedded_dot_logprobs_and_greedy_agreement(dot, embedded):
    """The embedded SmolLM2-135M with bf16 products: sampled tokens' log-probs within EMBEDDED_DOT_*_TOL of
    the fp32 model's teacher-forced ones; the greedy agreement with fp32 decoding printed (most tokens agree)."""
    model, tok = embedded
    bf16 = get_backend("fast", model, tok, max_batch_size=8, dtype="bfloat16")
    fp32 = get_backend("fast", model, tok, max_batch_size=8, dtype="float32")
    assert bf16.engine.bf16_dot
    p = SamplingParams(n=2, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0)
    gaps = [g for out in bf16.generate(prompts(), p) for c in out.completions for g in logprob_gaps(model, c)]
    worst, mean = max(gaps), sum(gaps) / len(gaps)
    g = SamplingParams(max_new_tokens=24)
    rate = agreement(bf16.generate(prompts(), g), fp32.generate(prompts(), g))
    print(f"embedded, bf16 products: greedy agreement with fp32 {rate:.0%}; sampled |dlogp| max {worst:.3f} "
          f"mean {mean:.4f}")
    assert worst < EMBEDDED_DOT_MAX_TOL and mean < EMBEDDED_DOT_MEAN_TOL, (worst, mean)
    assert rate >= 0.5, rate
