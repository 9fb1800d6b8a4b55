"""Does RLVR's held-out check agree with the eval's heldout_gen task? Scores one model through RLVR's check
(render_prompt + heldout_accuracy: fp32 fast backend, greedy, 192 new tokens) on both held-out draws of the
generators: RLVR's (load_rlvr_prompts, the recipe's seed) and heldout_gen's (generate, seed 0).

    python benchmarks/heldout_draws.py runs/embedded_cpu_full/dpo/model [seed]
"""
import sys

from transformers import AutoTokenizer
from tulu.data.rlvr import load_rlvr_prompts
from tulu.data.rlvr_sources import generate
from tulu.data.templates import render_prompt
from tulu.rollout import load_backend
from tulu.train.rl_batch import heldout_accuracy

path = sys.argv[1]
seed = int(sys.argv[2]) if len(sys.argv) > 2 else 123
tok = AutoTokenizer.from_pretrained(path)
draws = {f"rlvr (seed {seed})": load_rlvr_prompts({"rlvr:constraints": 100, "rlvr:arith": 100}, seed, "heldout"),
         "heldout_gen (seed 0)": [r for src in ("rlvr:constraints", "rlvr:arith") for r in generate(src, 100, 0, "heldout")]}
with load_backend(path, "fast", dtype="float32") as backend:
    for name, prompts in draws.items():
        ids = [render_prompt(p["messages"], tok, "tokenizer") for p in prompts]
        acc = heldout_accuracy(backend, ids, prompts, 192)
        by = {}
        for p, a in zip(prompts, acc):
            by.setdefault(p["verifier"], []).append(a)
        print(name, f"all {100*sum(acc)/len(acc):.1f}", {k: f"{100*sum(v)/len(v):.1f} (n={len(v)})" for k, v in by.items()})
