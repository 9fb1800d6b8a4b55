"""The compiled decode step's three panel matmuls at a model's shapes: fp32 panels (FMA), bf16 panels widened
to fp32 (bf16 storage, fp32 FMA) and bf16 pair panels on vdpbf16ps (bf16 products, fp32 accumulation; only
where the build targets AVX512-BF16). Alternating, best of ``--repeats`` per kernel after a warm-up.

    python benchmarks/panel_kernels.py                      # the embedded model's shapes, 8 and 32 rows, 2 threads
    python benchmarks/panel_kernels.py --rows 1 8 32 64 --repeats 30

Shapes (SmolLM2-135M): q/k/v fused 960x576, o 576x576, gate/up fused 3072x576, down 576x1536, head 49152x576.
Prints milliseconds per call, GB/s of weights streamed and GFLOP/s, and the ratios to the fp32 kernel.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

SHAPES = {"qkv": (960, 576), "o": (576, 576), "gate_up": (3072, 576), "down": (576, 1536), "head": (49152, 576)}


def main() -> None:
    from tulu.rollout import kernels

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not kernels.available():
        sys.exit("the compiled kernels are not available (see the log)")
    ops = torch.ops.tulu
    dp = ops.has_dpbf16()
    print(f"threads {torch.get_num_threads()}; vdpbf16ps kernel in this build: {dp}")
    g = torch.Generator().manual_seed(0)
    for name in args.shapes:
        n, k = SHAPES[name]
        w = torch.randn(n, k, generator=g) * 0.05
        packed = {"fp32": ops.pack_panels(w), "bf16-widen": ops.pack_panels_bf16(w)}
        if dp:
            packed["bf16-dot"] = ops.pack_panels_dpbf16(w)
        for rows in args.rows:
            x = torch.randn(rows, k, generator=g)
            for p in packed.values():  # warm-up
                ops.panel_linear(x, p, None)
            best = {key: float("inf") for key in packed}
            for _ in range(args.repeats):
                for key, p in packed.items():
                    t0 = time.perf_counter()
                    ops.panel_linear(x, p, None)
                    best[key] = min(best[key], time.perf_counter() - t0)
            parts = []
            for key, s in best.items():
                gbs = packed[key].numel() * packed[key].element_size() / s / 1e9
                parts.append(f"{key} {1e3 * s:7.3f} ms ({gbs:5.1f} GB/s, {2 * rows * n * k / s / 1e9:6.1f} GFLOP/s, "
                             f"{best['fp32'] / s:.2f}x)")
            print(f"{name:8s} {n}x{k} rows {rows:3d}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
