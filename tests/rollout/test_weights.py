"""bf16 weights for the fast backend's decode step (tulu.rollout.weights, csrc/decode.cpp), the bf16-storage
path (weights widened to fp32; what bf16 means on hosts without AVX512-BF16, pinned here with the
``widening`` fixture): the bf16 panel matmul against torch on bf16-rounded weights, the engine against an
fp32 engine on a bf16-rounded copy of the model, sampled log-probs against a teacher-forced fp32 forward,
and how ``auto`` decides. The bf16-product path (vdpbf16ps): test_dpbf16.py."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tulu.rollout import SamplingParams, get_backend, kernels
from tulu.rollout import weights as wp
from tulu.rollout.llama import FastLlama

from bf16_checks import agreement, logprob_gaps, prompts

needs_kernels = pytest.mark.usefixtures("compiled_kernels")


@pytest.fixture()
def widening(monkeypatch):
    """Engines built here take the bf16-storage path (bf16 weights widened to fp32), as on hosts without
    AVX512-BF16, even where this build has the bf16-product kernel."""
    monkeypatch.setattr(wp, "dot_products_available", lambda: False)

# |log p_bf16(token) - log p_fp32(token)| of sampled tokens against a teacher-forced fp32 forward, the bounds
# docs/rollout.md states. Embedded SmolLM2-135M: max and mean over the sampled tokens; the tiny random
# model (flat distributions, small weights) measured max ~1e-3.
TINY_LOGPROB_TOL = 1e-2
EMBEDDED_MAX_TOL, EMBEDDED_MEAN_TOL = 0.25, 0.02


def _rounded(model):
    """A copy of ``model`` whose matrices (embedding, projections, head) are rounded to bf16, kept in fp32."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in out.named_parameters():
            if p.dim() == 2:
                p.copy_(p.to(torch.bfloat16).float())
    return out


@needs_kernels
@pytest.mark.parametrize("rows", [1, 3, 8, 9, 13, 32, 50, 101])
@pytest.mark.parametrize("bias", [False, True])
def test_bf16_panel_linear_matches_torch_on_rounded_weights(rows, bias):
    g = torch.Generator().manual_seed(rows)
    w = torch.randn(48, 40, generator=g)
    b = torch.randn(48, generator=g) if bias else None
    x = torch.randn(rows, 40, generator=g)
    packed = torch.ops.tulu.pack_panels_bf16(w)
    assert packed.dtype == torch.bfloat16 and packed.shape == (6, 40, 8)
    # the packing is round-to-nearest-even, bit for bit torch's conversion
    assert torch.equal(packed, torch.ops.tulu.pack_panels(w.to(torch.bfloat16).float()).to(torch.bfloat16))
    y = torch.ops.tulu.panel_linear(x, packed, b)
    ref = F.linear(x.double(), w.to(torch.bfloat16).double(), None if b is None else b.double())
    assert y.dtype == torch.float32
    assert torch.allclose(y.double(), ref, atol=1e-5, rtol=1e-5), (y.double() - ref).abs().max()
    # and it is exactly the fp32 kernel on the widened weights: same FMA chains, same order
    assert torch.equal(y, torch.ops.tulu.panel_linear(x, torch.ops.tulu.pack_panels(w.to(torch.bfloat16).float()), b))


@needs_kernels
def test_bf16_engine_is_the_fp32_engine_on_rounded_weights(tiny, widening):
    model, tok = tiny
    ours = FastLlama(model, batch_hint=4, weights="bfloat16")
    ref = FastLlama(_rounded(model), batch_hint=4, weights="float32")
    assert ours.compiled and ours.bf16_panels and ours.weight_choice.dtype == "bfloat16"
    assert ours.layers[0].qkv.weight.dtype == torch.bfloat16 and ours.lm_head.weight.dtype == torch.bfloat16
    assert ours.layers[0].ln1.dtype == torch.float32  # norms stay fp32
    seqs = [[5, 6, 7, 8], [9, 10]]
    (la, kva), (lb, kvb) = ours.prefill(seqs), ref.prefill(seqs)
    assert torch.allclose(la, lb, atol=1e-5), (la - lb).abs().max()
    cache_a, cache_b = ours.new_cache(2, 16).zero_(), ref.new_cache(2, 16).zero_()
    for c, kv in ((cache_a, kva), (cache_b, kvb)):
        c[:, :, 0, :, :4] = kv[:, :, :4].permute(0, 1, 3, 2, 4)
        c[:, :, 1, :, :2] = kv[:, :, 4:].permute(0, 1, 3, 2, 4)
    tokens, pos = torch.tensor([11, 12]), torch.tensor([4, 2])
    da, db = ours.decode(cache_a, tokens, pos), ref.decode(cache_b, tokens, pos)
    assert torch.allclose(da, db, atol=1e-5), (da - db).abs().max()
    # an in-place weight update (RLVR) keeps bf16 panels
    ours.load_state_dict(model.state_dict())
    assert ours.layers[1].down.weight.dtype == torch.bfloat16 and ours._flat[1].dtype == torch.bfloat16


@needs_kernels
def test_bf16_sampled_logprobs_near_teacher_forced_fp32(tiny, widening):
    """Sampled tokens' log-probs from bf16 weights against the fp32 model's own teacher-forced forward; and the
    greedy agreement rate of bf16 vs fp32 decoding (reported, not required to be 1)."""
    model, tok = tiny
    bf16 = get_backend("fast", model, tok, max_batch_size=4, dtype="bfloat16")
    fp32 = get_backend("fast", model, tok, max_batch_size=4, dtype="float32")
    p = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=3, logprobs=True)
    worst = 0.0
    for out in bf16.generate(prompts(), p):
        for c in out.completions:
            assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
            worst = max(worst, max(logprob_gaps(model, c)))
    assert worst < TINY_LOGPROB_TOL, worst
    g = SamplingParams(max_new_tokens=12)
    rate = agreement(bf16.generate(prompts(), g), fp32.generate(prompts(), g))
    print(f"greedy agreement bf16 vs fp32 (tiny model): {rate:.0%}; max |dlogp| sampled {worst:.2e}")
    assert 0.0 < rate <= 1.0


def test_auto_follows_the_injected_measurement(monkeypatch):
    monkeypatch.delenv("TULU_PRECISION", raising=False)
    slow = {"fp32_s": 0.030, "bf16_s": 0.028, "speedup": 0.030 / 0.028, "batch": 8}
    fast = {"fp32_s": 0.030, "bf16_s": 0.018, "speedup": 0.030 / 0.018, "batch": 8}
    choice = wp.choose("auto", compiled=True, hidden=576, measure=lambda: slow)
    assert choice.dtype == "float32" and choice.source == "auto" and "1.07x" in choice.reason
    assert wp.choose("auto", compiled=True, hidden=576, measure=lambda: fast).dtype == "bfloat16"

    def never():
        raise AssertionError("measured where nothing should be")

    assert wp.choose("auto", compiled=False, hidden=576, measure=never).dtype == "float32"
    assert wp.choose("auto", compiled=True, hidden=64, measure=never).dtype == "float32"
    assert wp.choose("bf16", compiled=True, hidden=64, measure=never).dtype == "bfloat16"
    assert wp.choose("fp32", compiled=True, hidden=576, measure=never).dtype == "float32"
    monkeypatch.setenv("TULU_PRECISION", "fp32")
    assert wp.choose("auto", compiled=True, hidden=576, measure=never).dtype == "float32"
    with pytest.raises(ValueError, match="float16"):
        wp.normalize("float16")


def test_auto_measurement_is_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setenv("TULU_CACHE", str(tmp_path))
    monkeypatch.setattr("tulu.precision.host_busy", lambda: None)  # the test suite itself may load the host
    calls = []

    def measure():
        calls.append(1)
        return {"fp32_s": 0.03, "bf16_s": 0.02, "speedup": 1.5}

    key = {"hidden": 576, "batch": 8}
    first, cached = wp.cached_measure(key, measure)
    again, cached_again = wp.cached_measure(key, measure)
    assert (cached, cached_again) == (False, True) and first == again and len(calls) == 1
    assert wp.cached_measure({"hidden": 576, "batch": 32}, measure)[1] is False and len(calls) == 2


@needs_kernels
def test_engine_auto_uses_the_measurement(tiny, monkeypatch):
    model, _ = tiny
    # the real measurement runs and returns both timings
    got = FastLlama(model, batch_hint=2)._measure_bf16(positions=8, repeats=1)
    assert got["fp32_s"] > 0 and got["bf16_s"] > 0 and got["batch"] == 2
    monkeypatch.delenv("TULU_PRECISION", raising=False)
    monkeypatch.setattr(wp, "MIN_HIDDEN", 0)
    for speedup, want in ((1.02, torch.float32), (1.6, torch.bfloat16)):
        monkeypatch.setattr(FastLlama, "_measure_bf16", lambda self, s=speedup: {
            "fp32_s": 0.03, "bf16_s": 0.03 / s, "speedup": s, "batch": self.batch_hint})
        monkeypatch.setattr(wp, "cached_measure", lambda key, fn: (fn(), False))
        eng = FastLlama(model, batch_hint=2, weights="auto")
        assert eng.layers[0].gate_up.weight.dtype == want, eng.weight_choice


@pytest.mark.slow
@needs_kernels
@pytest.mark.parametrize("march", ["x86-64-v3", "x86-64"])
def test_avx2_only_build_gives_the_same_bf16_results(tmp_path, march):
    """The bf16 path compiled for AVX2 + FMA without AVX-512 (x86-64-v3), and for plain x86-64 (SSE2: the
    portable vector fallbacks), each in a separate process on this machine: the same numbers as torch on
    bf16-rounded weights (hosts without AVX-512 run this code)."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("x86-only check")
    flags = tuple(f"-march={march}" if f == "-march=native" else f for f in kernels.FLAGS)
    out = tmp_path / "tulu_decode_avx2.so"
    proc = subprocess.run(kernels._command(kernels._compiler(), out, flags), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    script = (
        "import sys, torch, torch.nn.functional as F\n"
        f"torch.ops.load_library({str(out)!r})\n"
        "g = torch.Generator().manual_seed(0)\n"
        "assert not torch.ops.tulu.has_dpbf16()  # no AVX512-BF16 in this build: the widening path only\n"
        "for rows in (1, 8, 9, 32):\n"
        "    w, x = torch.randn(64, 48, generator=g), torch.randn(rows, 48, generator=g)\n"
        "    y = torch.ops.tulu.panel_linear(x, torch.ops.tulu.pack_panels_bf16(w), None)\n"
        "    ref = F.linear(x.double(), w.to(torch.bfloat16).double())\n"
        "    assert torch.allclose(y.double(), ref, atol=1e-5, rtol=1e-5), (rows, (y.double() - ref).abs().max())\n"
        "print('ok')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and "ok" in run.stdout, run.stderr[-2000:]


@pytest.mark.slow
@needs_kernels
def test_embedded_bf16_logprobs_and_greedy_agreement(embedded, widening):
    """The embedded SmolLM2-135M: sampled tokens' log-probs with bf16 weights within EMBEDDED_*_TOL of the fp32
    model's teacher-forced ones, and the greedy agreement with fp32 decoding (printed; most tokens agree)."""
    model, tok = embedded
    bf16 = get_backend("fast", model, tok, max_batch_size=8, dtype="bfloat16")
    fp32 = get_backend("fast", model, tok, max_batch_size=8, dtype="float32")
    p = SamplingParams(n=2, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=0)
    gaps = [g for out in bf16.generate(prompts(), p) for c in out.completions for g in logprob_gaps(model, c)]
    worst, mean = max(gaps), sum(gaps) / len(gaps)
    g = SamplingParams(max_new_tokens=24)
    rate = agreement(bf16.generate(prompts(), g), fp32.generate(prompts(), g))
    print(f"embedded: greedy agreement bf16 vs fp32 {rate:.0%}; sampled |dlogp| max {worst:.3f} mean {mean:.4f}")
    assert worst < EMBEDDED_MAX_TOL and mean < EMBEDDED_MEAN_TOL, (worst, mean)
    assert rate >= 0.5, rate


@needs_kernels
def test_load_backend_passes_dtype_to_the_fast_backend(tiny, tmp_path):
    """`tulu eval --dtype` and the pipeline build backends with load_backend: on CPU with the fast backend the
    model loads in fp32 and dtype is the weight precision; hf (and float16) keep the model-dtype meaning."""
    from tulu.models import save_model
    from tulu.rollout import load_backend

    path = save_model(*tiny, tmp_path / "tiny")
    bf16 = load_backend(str(path), "fast", "cpu", "bfloat16")
    assert bf16.engine.bf16_panels and bf16.engine.weight_choice.source == "explicit"
    auto = load_backend(str(path), "auto", "cpu", "auto")  # the tiny model: fp32 without measuring
    assert auto.name == "fast" and auto.engine.weight_choice.dtype == "float32"
    assert "too small" in auto.engine.weight_choice.reason
    hf = load_backend(str(path), "hf", "cpu", "bfloat16")
    assert next(hf.model.parameters()).dtype == torch.bfloat16
    half = load_backend(str(path), "fast", "cpu", "float16")  # not a weight precision: the model's dtype
    assert half.engine.dtype == torch.float16 and not half.engine.compiled
