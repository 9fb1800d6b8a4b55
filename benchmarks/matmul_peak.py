"""Measured matmul peak of this machine (the denominator of our FLOP/s utilisation figures).

    python benchmarks/matmul_peak.py                 # fp32 on CPU, torch's thread count
    python benchmarks/matmul_peak.py --threads 2 --sizes 1024 2048 3072
    python benchmarks/matmul_peak.py --device cuda --dtype bf16
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import matmul_peak_gflops  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 3072])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    best = 0.0
    for n in args.sizes:
        g = matmul_peak_gflops(n, dtype, args.repeats, args.device)
        best = max(best, g)
        print(f"{args.dtype} matmul {n}x{n} on {args.device} ({torch.get_num_threads()} threads): {g:8.1f} GFLOP/s")
    print(f"peak: {best:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
