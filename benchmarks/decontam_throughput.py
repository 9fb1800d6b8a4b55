"""Decontamination throughput: training instances/s against the full offline eval suite.

Runs, in the same process, on the same generated JSONL and with the same number of worker processes:

* **tulu**: ``tulu.decontam.scan.scan`` (hashed 8-grams, numpy, bitmap prefilter);
* **floor**: reading + JSON parsing + our tokenisation only (lowercase, split on punctuation/whitespace):
  the work every decontaminator of this rule must do per instance, so the physical floor of this job;
* **baseline**: a straightforward Python implementation: a dict of eval 8-gram tuples, a set of 8-gram
  tuples per training instance, coverage counted in Python loops.

It checks that tulu and the baseline find exactly the same matches, then prints instances/s, the projected
time for 1M instances of this size, and the ratios as ``1.73×``.

    python benchmarks/decontam_throughput.py                     # 20k instances, 2 workers
    python benchmarks/decontam_throughput.py --instances 2000 --baseline-instances 500   # quick

The training data mixes English paragraphs (the Python docs' topic texts, shipped with CPython),
reasoning-gym problems of several tasks, and 1% GSM-Symbolic problems (which contaminate GSM8K), in
user turns of ~300 tokens.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from tulu.decontam.evalsets import load_benchmarks  # noqa: E402
from tulu.decontam.ngrams import build_index, tokenize  # noqa: E402
from tulu.decontam.scan import (Settings, TrainSource, iter_range, plan_chunks, record_segments,  # noqa: E402
                                scan)


# ------------------------------------------------------------------------------------------ data
def make_pool(seed: int) -> tuple[list[str], list[str]]:
    import pydoc_data.topics as topics
    import reasoning_gym

    paras = [p.strip() for t in topics.topics.values() for p in t.split("\n\n") if len(p.split()) > 15]
    for task in ("basic_arithmetic", "family_relationships", "syllogism", "word_sorting", "letter_counting",
                 "number_sorting", "spell_backward", "simple_equations"):
        paras += [x["question"] for x in reasoning_gym.create_dataset(task, size=300, seed=seed)]
    gsm = [x["question"] for x in reasoning_gym.create_dataset("gsm_symbolic", size=500, seed=seed)]
    return paras, gsm


def write_data(path: Path, n: int, target_tokens: int, seed: int) -> float:
    rng = random.Random(seed)
    paras, gsm = make_pool(seed)
    ntoks = {p: len(tokenize(p)) for p in paras + gsm}
    total = 0
    with open(path, "w") as fh:
        for _ in range(n):
            parts, k = [], 0
            if rng.random() < 0.01:
                parts.append(rng.choice(gsm))
                k += ntoks[parts[-1]]
            while k < target_tokens:
                parts.append(rng.choice(paras))
                k += ntoks[parts[-1]]
            rng.shuffle(parts)
            total += k
            fh.write(json.dumps({"messages": [{"role": "user", "content": "\n\n".join(parts)},
                                              {"role": "assistant", "content": "OK."}]}) + "\n")
    return total / n


# ------------------------------------------------------------------------------------------ floor + baseline
_G: dict = {}


def _floor_chunk(chunk) -> int:
    n = 0
    for loc, rec in iter_range(chunk.path, chunk.start, chunk.end, chunk.first_line):
        for s in record_segments(rec, loc, ("user",)):
            tokenize(s)
        n += 1
    return n


def build_baseline_index(eval_segments: list[list[str]], n: int) -> tuple[dict, list[list[list[str]]]]:
    index: dict[tuple[str, ...], set[int]] = defaultdict(set)
    toks = []
    for e, segs in enumerate(eval_segments):
        ts = [tokenize(s) for s in segs]
        toks.append(ts)
        for t in ts:
            for i in range(len(t) - n + 1):
                index[tuple(t[i:i + n])].add(e)
    return dict(index), toks


def _baseline_chunk(chunk) -> tuple[int, list[tuple[int, int, int]]]:
    index, eval_toks, n, thr = _G["index"], _G["eval_toks"], _G["n"], _G["thr"]
    out = []
    count = 0
    for loc, rec in iter_range(chunk.path, chunk.start, chunk.end, chunk.first_line):
        grams = set()
        for s in record_segments(rec, loc, ("user",)):
            t = tokenize(s)
            grams.update(tuple(t[i:i + n]) for i in range(len(t) - n + 1))
        cands = set()
        for g in grams:
            cands.update(index.get(g, ()))
        for e in sorted(cands):
            covered = total = 0
            for t in eval_toks[e]:
                flags = [False] * len(t)
                for i in range(len(t) - n + 1):
                    if tuple(t[i:i + n]) in grams:
                        flags[i:i + n] = [True] * n
                covered += sum(flags)
                total += len(t)
            if total and covered / total > thr:
                out.append((count, e, covered))
        count += 1
    return count, out


def cpu_seconds() -> float:
    """User+system CPU time of this process and of its finished (reaped) children."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_pool(fn, chunks, workers: int) -> list:
    if workers == 1:
        return [fn(c) for c in chunks]
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(fn, chunks)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instances", type=int, default=20000)
    ap.add_argument("--baseline-instances", type=int, default=2000,
                    help="the baseline is slow: it runs on the first N instances only")
    ap.add_argument("--tokens", type=int, default=300, help="target tokens per user turn")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    evals, skipped = load_benchmarks()
    segs = [e.segments(("prompt",)) for e in evals]
    index = build_index(segs, 8)
    t_index = time.perf_counter() - t0
    print(f"eval side: {len(evals)} instances from {len(set(e.benchmark for e in evals))} benchmarks "
          f"({', '.join(sorted(set(e.benchmark for e in evals)))}); {len(index.gram_hash)} distinct 8-grams; "
          f"index built in {t_index:.1f}s; not loadable offline: {', '.join(skipped) or 'none'}")

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        avg = write_data(data, args.instances, args.tokens, args.seed)
        small = Path(tmp) / "train_small.jsonl"
        with open(data) as src, open(small, "w") as dst:
            for i, line in enumerate(src):
                if i >= args.baseline_instances:
                    break
                dst.write(line)
        mb = data.stat().st_size / 1e6
        print(f"training side: {args.instances} instances, {avg:.0f} tokens/instance on average, {mb:.1f} MB; "
              f"{args.workers} worker processes; cpu_count={os.cpu_count()}")
        src = [TrainSource("bench", data)]

        t, c = time.perf_counter(), cpu_seconds()
        n_floor = sum(run_pool(_floor_chunk, list(plan_chunks(src)), args.workers))
        floor_rate, floor_cpu = n_floor / (time.perf_counter() - t), n_floor / (cpu_seconds() - c)

        t, c = time.perf_counter(), cpu_seconds()
        res = scan(index, src, Settings(("user",), 0.5), workers=args.workers)
        ours_rate, ours_cpu = sum(res.n_records) / (time.perf_counter() - t), sum(res.n_records) / (cpu_seconds() - c)

        t = time.perf_counter()
        b_index, b_toks = build_baseline_index(segs, 8)
        t_bindex = time.perf_counter() - t
        _G.update(index=b_index, eval_toks=b_toks, n=8, thr=0.5)
        t, c = time.perf_counter(), cpu_seconds()
        b_chunks = list(plan_chunks([TrainSource("small", small)], 256 << 10))
        b_res = run_pool(_baseline_chunk, b_chunks, args.workers)
        n_base = sum(r[0] for r in b_res)
        base_rate, base_cpu = n_base / (time.perf_counter() - t), n_base / (cpu_seconds() - c)

    # same matches on the instances both saw
    base_matches, off = [], 0
    for cnt, ms in b_res:
        base_matches += [(off + i, e, c) for i, e, c in ms]
        off += cnt
    ours_small = sorted((rec, e, c) for _, rec, _, e, c in res.matches if rec < off)
    agree = ours_small == sorted(base_matches)
    hit_bench = sorted({evals[e].benchmark for _, _, _, e, _ in res.matches})
    print(f"matches: {len(res.matches)} (instance, eval) pairs, {len(res.removed(0))} contaminating instances, "
          f"benchmarks hit: {', '.join(hit_bench) or 'none'}; baseline agrees on first {off}: {agree}")

    def proj(rate: float) -> str:
        s = 1e6 / rate
        return f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h"

    w = args.workers
    print()
    print("wall: instances/s as run; cpu: instances per CPU-second x workers (less sensitive to other load)")
    print(f"{'':34}{'wall inst/s':>12}{'1M (wall)':>11}{'cpu inst/s':>12}{'1M (cpu)':>10}")
    for name, r, rc in (("floor (read+parse+tokenize only)", floor_rate, floor_cpu), ("tulu decontam", ours_rate, ours_cpu),
                        ("baseline (Python sets)", base_rate, base_cpu)):
        print(f"{name:34}{r:12.0f}{proj(r):>11}{rc * w:12.0f}{proj(rc * w):>10}")
    print(f"(baseline index build: {t_bindex:.1f}s; tulu index build: {t_index:.1f}s)")
    print()
    print(f"tulu vs baseline: {ours_rate / base_rate:.2f}× faster (wall), {ours_cpu / base_cpu:.2f}× (cpu)")
    print(f"tulu vs tokenizer-only floor: {ours_rate / floor_rate:.2f}× of the floor's throughput (wall), "
          f"{ours_cpu / floor_cpu:.2f}× (cpu)")
    print(f"goal (1M in <= 10 min on {w} cores): {'met' if 1e6 / ours_rate <= 600 else 'NOT met'} "
          f"({proj(ours_rate)} wall, {proj(ours_cpu * w)} cpu)")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
