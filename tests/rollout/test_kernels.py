"""The compiled CPU decode step (csrc/decode.cpp): its matmul and its layers against plain torch, and how
it is built, cached and refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tulu.rollout import kernels
from tulu.rollout.llama import FastLlama

needs_kernels = pytest.mark.usefixtures("compiled_kernels")  # fails, not skips, where a compiler exists (conftest)


@needs_kernels
@pytest.mark.parametrize("rows", [1, 3, 8, 9, 13, 32, 50, 101])
@pytest.mark.parametrize("bias", [False, True])
def test_panel_linear_matches_f_linear(rows, bias):
    g = torch.Generator().manual_seed(rows)
    w = torch.randn(48, 40, generator=g)
    b = torch.randn(48, generator=g) if bias else None
    x = torch.randn(rows, 40, generator=g)
    y = torch.ops.tulu.panel_linear(x, torch.ops.tulu.pack_panels(w), b)
    assert y.shape == (rows, 48)
    assert torch.allclose(y, F.linear(x, w, b), atol=1e-5, rtol=1e-5)
    # a non-contiguous input is accepted (made contiguous first)
    xt = torch.randn(40, rows, generator=g).t()
    assert torch.allclose(torch.ops.tulu.panel_linear(xt, torch.ops.tulu.pack_panels(w), b), F.linear(xt, w, b),
                          atol=1e-5, rtol=1e-5)


@needs_kernels
def test_panel_packing_refuses_bad_shapes():
    with pytest.raises(RuntimeError, match="multiple of 16"):
        torch.ops.tulu.pack_panels(torch.randn(24, 8))
    packed = torch.ops.tulu.pack_panels(torch.randn(32, 8))
    with pytest.raises(RuntimeError, match=r"x must be \[M, 8\]"):
        torch.ops.tulu.panel_linear(torch.randn(2, 9), packed, None)
    with pytest.raises(RuntimeError, match="bias has 5 elements"):
        torch.ops.tulu.panel_linear(torch.randn(2, 8), packed, torch.randn(5))


def _llama(tokenizer, *, head_dim_heads=(4, 2), hidden=64, bias=False, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    heads, kv = head_dim_heads
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=heads, num_key_value_heads=kv, attention_bias=bias,
                      max_position_embeddings=256)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    if bias:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("bias"):
                    p.normal_(0, 0.1)
    return model


@needs_kernels
@pytest.mark.parametrize("shape", [
    {"head_dim_heads": (4, 2), "hidden": 64},                # head_dim 16: vectorized q.k / p.v paths
    {"head_dim_heads": (4, 1), "hidden": 48, "bias": True},  # head_dim 12: scalar tails, q/k/v biases (and
                                                             # a q/k/v matmul of 72 columns: oneDNN inside)
    {"head_dim_heads": (6, 6), "hidden": 48},                # no grouping
])
def test_compiled_decode_equals_the_python_step(tokenizer, shape):
    model = _llama(tokenizer, **shape)
    eng = FastLlama(model, batch_hint=4)
    assert eng.compiled
    torch.manual_seed(1)
    rows = 5
    lengths = torch.tensor([1, 7, 8, 23, 40])  # rows at different lengths, around multiples of 8
    cache = eng.new_cache(rows, 64)
    cache.normal_()
    tokens = torch.randint(0, 1000, (rows,))
    ref_cache = cache.clone()
    got = eng.decode(cache, tokens, lengths)
    eng.compiled = False
    ref = eng.decode(ref_cache, tokens, lengths)
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4), (got - ref).abs().max()
    assert torch.allclose(cache, ref_cache, atol=1e-5)  # the same keys/values written at the same places


@needs_kernels
def test_decode_layers_checks_its_inputs(tiny):
    model, _ = tiny
    eng = FastLlama(model, batch_hint=2)
    cache = eng.new_cache(2, 16)
    cos, sin = eng._rope(torch.tensor([3, 4]))
    x = eng.embed[torch.tensor([1, 2])]
    with pytest.raises(RuntimeError, match="outside the cache"):
        torch.ops.tulu.decode_layers(x, eng._flat, cache, torch.tensor([3, 16]), cos[:, 0], sin[:, 0],
                                     eng.num_heads, eng.num_kv_heads, eng.eps, eng.scale)
    with pytest.raises(RuntimeError, match="8 tensors per layer"):
        torch.ops.tulu.decode_layers(x, eng._flat[:-1], cache, torch.tensor([3, 4]), cos[:, 0], sin[:, 0],
                                     eng.num_heads, eng.num_kv_heads, eng.eps, eng.scale)


def test_without_kernels_the_python_step_runs(tiny, monkeypatch):
    model, _ = tiny
    monkeypatch.setattr(kernels, "available", lambda: False)
    eng = FastLlama(model, batch_hint=2)
    assert not eng.compiled and eng.linear_kind == "mkldnn"
    logits, _ = eng.prefill([[5, 6, 7]])
    with torch.no_grad():
        ref = model(torch.tensor([[5, 6, 7]])).logits[0, -1]
    assert torch.allclose(logits[0], ref, atol=1e-5)


def test_build_is_cached_atomic_and_reports_compiler_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("TULU_CACHE", str(tmp_path))
    monkeypatch.setenv("CXX", "false")  # a "compiler" that always fails
    with pytest.raises(kernels.KernelBuildError, match="false failed on .*decode.cpp"):
        kernels.build()
    built = list((tmp_path / "kernels").rglob("*.so*"))
    assert built == []  # nothing half-written left behind
    # a library already built for this key is reused without compiling
    target = tmp_path / "kernels" / kernels._key("false") / "tulu_decode.so"
    target.write_bytes(b"stub")
    assert kernels.build() == target
    monkeypatch.setattr(kernels, "_compiler", lambda: None)
    with pytest.raises(kernels.KernelBuildError, match="no C\\+\\+ compiler"):
        kernels.build()


def test_kernels_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("TULU_KERNELS", "0")
    assert kernels.available.__wrapped__() is False


def test_compiled_can_be_refused_or_required(tiny):
    model, _ = tiny
    eng = FastLlama(model, batch_hint=2, compiled=False)
    assert not eng.compiled and eng.linear_kind == "mkldnn"
    with pytest.raises(ValueError, match="compiled=True needs CPU float32"):
        FastLlama(model.to(torch.bfloat16), batch_hint=2, compiled=True)


@needs_kernels
def test_compiled_step_is_batch_invariant(tiny):
    """With the compiled kernels a sequence's results do not depend on its batch at all: every matmul
    output is one FMA chain in a fixed order whatever the number of rows, so even a flat distribution
    (the unscaled tiny model) draws the same tokens with bitwise-equal log-probs in 1, 3 or 16 slots."""
    from tulu.rollout import SamplingParams
    from tulu.rollout.fast import FastBackend

    model, tok = tiny
    prompts = [[{"role": "user", "content": q}] for q in ("Hi", "Write a poem about the sea.", "2+2?", "Name it")]
    p = SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=10, seed=5)
    runs = [FastBackend(model, tok, max_batch_size=b).generate(prompts, p) for b in (1, 3, 16)]
    flat = [[(c.token_ids, c.logprobs) for o in r for c in o.completions] for r in runs]
    assert flat[0] == flat[1] == flat[2]
