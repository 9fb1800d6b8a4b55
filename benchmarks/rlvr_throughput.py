"""RLVR throughput: `tulu rlvr` vs TRL's `GRPOTrainer`, same model, prompts and settings, one run.

Both sides, per step:

- 4 prompts x 4 samples = 16 episodes, at most ``--max-new-tokens`` new tokens, temperature 1.0;
- the DAPO loss (token-level, clip 0.2 / 0.28), beta 0 (no reference model), one update per batch;
- fp32, 2 threads, the same reward: 10 x our gsm8k verifier on reasoning-gym arithmetic prompts.

TRL runs at its fastest CPU setting: transformers `generate` with a KV cache over all 16 completions at once,
no vLLM (it needs a GPU), `num_iterations=1`, so no separate old-log-prob pass. Ours runs the fast CPU backend
for generation and the step engine for the update.

Printed per side: episodes/s, the generation/training split of a step, and the mean response length (the two
sides sample different responses, so their lengths are shown to compare like with like). The first step of
each side is a warm-up and is not timed. Run it twice with different token caps: 64 (learner-bound) and 256
(generation-bound).

    python benchmarks/rlvr_throughput.py                      # 64 new tokens
    python benchmarks/rlvr_throughput.py --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from _common import fmt_ratio, matmul_peak_gflops


def prompts_file(n: int, seed: int, out: Path) -> tuple[Path, list[dict]]:
    from tulu.data.rlvr import load_rlvr_prompts
    from tulu.utils import atomic_write_jsonl

    recs = load_rlvr_prompts({"rlvr:arith": n}, seed)
    return atomic_write_jsonl(out / "prompts.jsonl", recs), recs


def run_ours(args, path: Path, out: Path) -> dict:
    from tulu.config import load_config
    from tulu.train import rlvr

    steps = args.steps + 1
    overrides = [
        f"output_dir={out / 'ours'}", f"model.path={args.model}", "model.dtype=float32",
        f"data.prompts={{{json.dumps(str(path))}: {4 * steps}}}", "data.max_length=1024",
        "rollout.prompts_per_batch=4", "rollout.samples_per_prompt=4", f"rollout.max_new_tokens={args.max_new_tokens}",
        "rollout.temperature=1.0", "rollout.backend=fast", "reward.nonstop_penalty=0.0",
        "rl.algorithm=dapo", "rl.beta=0.0", "rl.dynamic_sampling=false", "rl.clip_high=0.28",
        "train.learning_rate=1.0e-6", "train.lr_scheduler=constant", "train.warmup_ratio=0.0",
        "train.effective_batch_size=16", f"train.per_device_batch_size={args.micro}", "train.num_epochs=1",
        f"train.num_threads={args.threads}", f"train.seed={args.seed}", "train.max_grad_norm=1.0",
        "train.resume=never", "train.mixed_precision=no",  # fp32, like TRL with bf16=False
    ]
    cfg = load_config(rlvr.RLVRConfig, None, overrides)
    rlvr.run(cfg)
    rows = [json.loads(x) for x in (out / "ours" / "batches.jsonl").read_text().splitlines() if x.strip()]
    rows = rows[1:]  # warm-up
    gen = sum(r["generate_s"] for r in rows)
    train = sum(r["prepare_s"] + r["train_s"] + r["sync_s"] for r in rows)
    return {"episodes": 16 * len(rows), "seconds": gen + train, "generate_s": gen, "train_s": train,
            "length": sum(r["response_length"] for r in rows) / len(rows),
            "reward": sum(r["reward"] for r in rows) / len(rows)}


def run_trl(args, recs: list[dict], out: Path) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from tulu.models import load_model, load_tokenizer
    from tulu.verifiers.base import verify

    torch.set_num_threads(args.threads)
    steps = args.steps + 1
    tok = load_tokenizer(args.model)
    model = load_model(args.model, dtype="float32", device="cpu")
    ds = Dataset.from_list([{"prompt": r["messages"], "ground_truth": r["ground_truth"]}
                            for r in recs[:4 * steps]])

    def reward(completions, ground_truth, **_):
        return [10.0 * verify("gsm8k", c[-1]["content"], gt).score for c, gt in zip(completions, ground_truth)]

    cfg = GRPOConfig(output_dir=str(out / "trl"), per_device_train_batch_size=16, num_generations=4,
                     gradient_accumulation_steps=1, max_completion_length=args.max_new_tokens, temperature=1.0,
                     beta=0.0, loss_type="dapo", epsilon=0.2, epsilon_high=0.28, num_iterations=1,
                     learning_rate=1e-6, lr_scheduler_type="constant", max_steps=steps, logging_steps=1,
                     report_to=[], use_cpu=True, bf16=False, save_strategy="no", seed=args.seed,
                     dataloader_num_workers=0, max_grad_norm=1.0, shuffle_dataset=False)
    times: dict[str, list[float]] = {"step": [], "gen": []}

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times["step"].append(time.perf_counter() - self.t0)

    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=cfg, train_dataset=ds, processing_class=tok,
                          callbacks=[Clock()])
    generate = trainer._generate_and_score_completions

    def timed(*a, **k):
        t0 = time.perf_counter()
        result = generate(*a, **k)
        times["gen"].append(time.perf_counter() - t0)
        return result

    trainer._generate_and_score_completions = timed
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h][1:]
    step, gen = times["step"][1:], times["gen"][1:len(times["step"])]
    length = sum(h.get("completions/mean_length", float("nan")) for h in logs) / max(len(logs), 1)
    return {"episodes": 16 * len(step), "seconds": sum(step), "generate_s": sum(gen),
            "train_s": sum(step) - sum(gen), "length": length,
            "reward": sum(h["reward"] for h in logs) / max(len(logs), 1)}


def report(name: str, r: dict) -> float:
    eps = r["episodes"] / r["seconds"]
    print(f"{name:5s} {eps:6.3f} episodes/s over {r['episodes']} episodes; generation {r['generate_s']:.1f} s "
          f"({100 * r['generate_s'] / r['seconds']:.0f}%), training {r['train_s']:.1f} s; "
          f"mean response {r['length']:.1f} tokens; mean reward {r['reward']:.2f}")
    return eps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="embedded (default) or a model folder")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per side (after one warm-up step)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--micro", type=int, default=16, help="our micro-batch in rollouts (16: the whole minibatch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--only", choices=["tulu", "trl"], default=None)
    args = ap.parse_args()
    os.environ.setdefault("TULU_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    print(f"model {args.model}, 4 prompts x 4 samples, <= {args.max_new_tokens} new tokens, T 1.0, DAPO loss, "
          f"beta 0, one update per batch, fp32, {args.threads} threads, {args.steps} timed steps")
    print(f"fp32 matmul peak (2048x2048, {args.threads} threads): {matmul_peak_gflops():.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        path, recs = prompts_file(4 * (args.steps + 1), args.seed, out)
        res = {}
        if args.only in (None, "tulu"):
            res["tulu"] = run_ours(args, path, out)
        if args.only in (None, "trl"):
            res["trl"] = run_trl(args, recs, out)
    eps = {k: report(k, v) for k, v in res.items()}
    if len(eps) == 2:
        print(f"tulu vs TRL GRPOTrainer: {fmt_ratio(eps['tulu'] / eps['trl'])} episodes/s")


if __name__ == "__main__":
    main()
