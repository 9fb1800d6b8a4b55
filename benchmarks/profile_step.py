"""Where a DPO training step's time goes, ours against TRL's: torch.profiler around each trainer's training loop
(after its reference pass), on the same pairs and settings as benchmarks/dpo_throughput.py, whose options it
takes. Prints, per trainer, the ops with the most self CPU time and the share of the loop they take, then the
same op families side by side, so a gap can be read op by op.

    python benchmarks/profile_step.py --pairs 16 --batch 8 --no-shipped-trl --max-length 512
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpo_throughput  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

FAMILIES = (("matmul", ("mm", "addmm", "bmm", "linear", "matmul")), ("attention", ("attention", "sdpa", "softmax")),
            ("copies/casts", ("copy_", "to", "_to_copy", "contiguous", "clone", "cat", "index", "gather", "scatter")),
            ("elementwise", ("mul", "add", "sub", "exp", "silu", "rsqrt", "pow", "mean", "neg", "div", "sum")),
            ("optimizer", ("adam", "_foreach", "lerp", "sqrt")), ("allocation", ("empty", "zeros", "fill_", "resize")))


def family(op: str) -> str:
    name = op.removeprefix("aten::").lower()
    for fam, keys in FAMILIES:
        if any(name == k or name.startswith(k + "_") or k in name for k in keys):
            return fam
    return "other"


def main() -> None:
    ap = dpo_throughput.parser()
    ap.add_argument("--top", type=int, default=18, help="ops listed per trainer")
    args = ap.parse_args()
    tables: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def profiled(name):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            yield
        ev = [e for e in prof.key_averages() if e.key.startswith("aten::")]
        total = sum(e.self_cpu_time_total for e in ev) / 1e6
        tables[name] = fam = defaultdict(float)
        print(f"\n== {name}: training loop, aten self CPU {total:.1f} s", flush=True)
        print(f"{'op':40s} {'self s':>8s} {'share':>6s} {'calls':>7s}")
        for e in sorted(ev, key=lambda e: -e.self_cpu_time_total)[:args.top]:
            print(f"{e.key:40s} {e.self_cpu_time_total / 1e6:8.2f} {e.self_cpu_time_total / 1e6 / total:6.1%} "
                  f"{e.count:7d}")
        for e in ev:
            fam[family(e.key)] += e.self_cpu_time_total / 1e6

    args.train_ctx = profiled
    dpo_throughput.run(args)
    names = list(tables)
    print("\nself CPU seconds by op family (all steps of each loop):")
    print(f"{'family':14s}" + "".join(f"{n:>12s}" for n in names))
    for fam in [f for f, _ in FAMILIES] + ["other"]:
        print(f"{fam:14s}" + "".join(f"{tables[n].get(fam, 0.0):12.2f}" for n in names))


if __name__ == "__main__":
    main()
