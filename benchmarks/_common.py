"""Helpers shared by the benchmark scripts: fp32 matmul peak, model FLOP counts, allocator re-exec.

FLOPs of one training step on a packed SFT micro-batch (forward + backward = 3x forward, the usual
convention; no recomputation counted):

* body: ``2 * P_body`` per token, ``P_body`` = the parameters of the decoder layers (embedding lookups are
  free, the LM head is counted separately);
* attention scores and values: ``4 * len * d_attn / 2`` per token and layer for a causal sequence of length
  ``len`` (Q·Kᵀ and A·V, half of the square is masked), i.e. ``2 * n_layers * d_attn * sum(len²)`` per row;
* LM head: ``2 * hidden * vocab`` per position that is projected. Our SFT step projects only label positions;
  a full-logits trainer projects every position.
"""

from __future__ import annotations

import os
import sys
import time

import torch


def matmul_peak_gflops(n: int = 2048, dtype: torch.dtype = torch.float32, repeats: int = 10,
                       device: str = "cpu") -> float:
    """Best achieved GFLOP/s of an ``n x n @ n x n`` matmul over ``repeats`` runs (after a warm-up)."""
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    out = torch.empty(n, n, dtype=dtype, device=device)
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def model_dims(config) -> dict:
    cfg = getattr(config, "get_text_config", lambda: config)()
    h = cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or h // heads
    kv = getattr(cfg, "num_key_value_heads", heads)
    inter = cfg.intermediate_size
    layers = cfg.num_hidden_layers
    per_layer = h * heads * head_dim * 2 + h * kv * head_dim * 2 + 3 * h * inter
    return {"hidden": h, "layers": layers, "vocab": cfg.vocab_size, "d_attn": heads * head_dim,
            "body_params": per_layer * layers}


def train_flops(config, seq_lens: list[int], head_positions: int) -> float:
    """FLOPs of forward + backward for sequences of ``seq_lens`` with ``head_positions`` projected positions."""
    d = model_dims(config)
    tokens = sum(seq_lens)
    fwd = 2 * d["body_params"] * tokens
    fwd += 2 * d["layers"] * d["d_attn"] * sum(n * n for n in seq_lens)
    fwd += 2 * d["hidden"] * d["vocab"] * head_positions
    return 3.0 * fwd


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}×"


JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"


def reexec_with_allocator(name: str) -> None:
    """Re-run this script with ``LD_PRELOAD`` set to jemalloc/tcmalloc (once; a no-op when already set)."""
    if name in ("", "default") or os.environ.get("TULU_BENCH_ALLOCATOR") == name:
        return
    lib = {"jemalloc": JEMALLOC, "tcmalloc": TCMALLOC}[name]
    if not os.path.exists(lib):
        sys.exit(f"{name}: {lib} not found (Debian: apt-get install -y "
                 f"{'libjemalloc2' if name == 'jemalloc' else 'libtcmalloc-minimal4'})")
    env = dict(os.environ, LD_PRELOAD=lib, TULU_BENCH_ALLOCATOR=name)
    if name == "jemalloc":  # give freed pages back lazily, so big short-lived tensors reuse mapped memory
        env.setdefault("MALLOC_CONF", "background_thread:true,dirty_decay_ms:10000,muzzy_decay_ms:10000")
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def current_allocator() -> str:
    return os.environ.get("TULU_BENCH_ALLOCATOR", "default (glibc)")


def reset_accelerate() -> None:
    """Forget the process-wide accelerate state, so the next trainer in the same process may choose another
    mixed precision (TRL with ``bf16=True`` and then ours, which on a CPU runs its own autocast and tells
    accelerate 'no')."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    PartialState._reset_state()
