"""DPO training throughput: tulu vs TRL's DPOTrainer (precompute_ref_log_probs=True), same pairs, one run.

Both start from the same weights, train with dpo_norm (TRL: sigmoid_norm), beta 5, AdamW lr 5e-7, no
gradient checkpointing, fp32 weights on CPU, the same number of pairs per optimizer step, on the same procedural
preference pairs. Both compute reference log-probs once before training (TRL in ``__init__``, tulu in
``cached_reference`` with no cache file). Timing: the reference pass, and the training steps after the first
(warm-up) step. Prints pairs/s for each and the ratio.

Compute dtype: ours follows ``--dtype`` (default ``auto``: ``train.mixed_precision=auto``, bf16 autocast where
``tulu.precision`` measures it faster); TRL gets ``bf16=True`` where the CPU has native bf16 (``--trl-bf16
auto``), its best setting there. Each line names the dtype that ran and the share of the measured matmul
peak of that dtype (FLOPs of the average pair's forward + backward, head at response positions only, the
same yardstick for both sides).

Our loop tunes glibc malloc when training on CPU (``tulu.train.cpu.tune_malloc``, process-wide), so TRL runs
twice: first as shipped, then after our run under the same malloc settings; both ratios are printed.

    python benchmarks/dpo_throughput.py --model embedded --pairs 64 --batch 8 --threads 2
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TULU_PROGRESS", "0")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import matmul_peak_gflops, reset_accelerate, train_flops  # noqa: E402

OUR_PRECISION = {"auto": "auto", "fp32": "no", "bf16": "bf16"}


def load(model_name: str, tokenizer=None):
    from tulu.models import load_model_and_tokenizer, tiny_model

    if model_name == "tiny":
        return tiny_model(0, tokenizer=tokenizer)
    return load_model_and_tokenizer(model_name, dtype="float32", device="cpu")


def records(n: int, seed: int) -> list[dict]:
    from tulu.data import synthetic

    half = n // 2
    return (synthetic.records("math", half, kind="preference", seed=seed)
            + synthetic.records("constraints", n - half, kind="preference", seed=seed))


def run_trl(args, recs, out_dir: str) -> dict:
    reset_accelerate()
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    model, tok = load(args.model)
    ds = Dataset.from_list([{"prompt": r["messages"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in recs])
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            times.append(time.perf_counter())

    cfg = DPOConfig(output_dir=out_dir, loss_type=["sigmoid_norm"], beta=5.0, learning_rate=5e-7,
                    lr_scheduler_type="linear", warmup_steps=0.1, per_device_train_batch_size=args.batch,
                    gradient_accumulation_steps=1, max_steps=args.steps, precompute_ref_log_probs=True,
                    precompute_ref_batch_size=args.batch, max_length=args.max_length, report_to=[], use_cpu=True,
                    bf16=args.trl_bf16, logging_steps=10_000, save_strategy="no", dataloader_num_workers=0,
                    gradient_checkpointing=False, seed=123, disable_tqdm=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        trainer = DPOTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok, callbacks=[Clock()])
        t_ref = time.perf_counter() - t0
        with args.train_ctx("trl"):
            trainer.train()
    return {"ref_s": t_ref, "step_times": [b - a for a, b in zip(times, times[1:])],
            "dtype": "bf16" if args.trl_bf16 else "fp32", "why": "TRL bf16=%s" % args.trl_bf16}


def run_ours(args, recs, out_dir: str) -> dict:
    reset_accelerate()
    from tulu.data.preferences import encode_pairs
    from tulu.train.common import TrainConfig
    from tulu.train.dpo import DPOLossConfig, DPOTask
    from tulu.train.engine import Engine, train_epochs
    from tulu.train.reference import cached_reference

    from tulu.train.attention import set_packed_attention

    model, tok = load(args.model)
    if args.layout == "packed":  # as `tulu dpo` does
        set_packed_attention(model)
    cfg = TrainConfig(learning_rate=5e-7, warmup_ratio=0.1, num_epochs=1, max_steps=args.steps,
                      effective_batch_size=args.batch, per_device_batch_size=args.micro or args.batch,
                      gradient_checkpointing=False, seed=123, resume="never",
                      mixed_precision=OUR_PRECISION[args.dtype])
    d = DPOLossConfig(loss_type="dpo_norm", beta=5.0, layout=args.layout, max_row_tokens=args.max_row_tokens)
    engine = Engine(cfg, out_dir, desc="dpo")
    t0 = time.perf_counter()
    pairs, _ = encode_pairs(recs, tok, max_length=args.max_length)
    max_row = args.max_row_tokens or None
    prec = engine.resolve_precision(model)  # as `tulu dpo`: the reference pass in the training precision
    with engine.autocast():
        ref, _, _ = cached_reference(model, pairs, tok.pad_token_id, None, batch_pairs=args.batch,
                                     layout=args.layout, max_row_tokens=max_row, precision=prec.compute)
    t_ref = time.perf_counter() - t0
    engine.prepare(model, DPOTask(tok.pad_token_id, ref, d))
    with args.train_ctx("tulu"):
        result = train_epochs(engine, pairs)
    seqs = [e for p in pairs for e in (p.chosen, p.rejected)]
    args.flops_per_pair = train_flops(model.config, [len(e.input_ids) for e in seqs],
                                      sum(e.num_label_tokens for e in seqs)) / len(pairs)
    return {"ref_s": t_ref, "step_times": [h["step_time_s"] for h in result.history][1:],
            "dtype": engine.precision.compute, "why": engine.precision.reason}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="embedded | tiny | a model folder")
    ap.add_argument("--pairs", type=int, default=64, help="preference pairs (half math, half constraints)")
    ap.add_argument("--batch", type=int, default=8, help="pairs per optimizer step (both trainers)")
    ap.add_argument("--micro", type=int, default=0, help="tulu micro-batch in pairs (0: = --batch)")
    ap.add_argument("--steps", type=int, default=0, help="optimizer steps (0: one epoch)")
    ap.add_argument("--max-length", type=int, default=2048)
    ap.add_argument("--layout", default="packed", choices=["packed", "padded"])
    ap.add_argument("--max-row-tokens", type=int, default=1024, help="tulu packed row cap (0: one row)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["ours", "trl"], default=None)
    ap.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                    help="ours: train.mixed_precision (auto: bf16 autocast where tulu.precision measures it faster)")
    ap.add_argument("--trl-bf16", choices=["auto", "on", "off"], default="auto",
                    help="TRL's bf16 flag; auto: on where the CPU has native bf16 (TRL at its best on this host)")
    ap.add_argument("--no-shipped-trl", action="store_true",
                    help="skip the first TRL run with malloc as shipped (saves time on a busy host)")
    return ap


def main() -> None:
    run(parser().parse_args())


def run(args) -> None:
    """Both trainers on the same pairs; ``args.train_ctx(name)`` (default: nothing) wraps each training loop,
    after the reference pass (benchmarks/profile_step.py puts a profiler there)."""
    if not hasattr(args, "train_ctx"):
        args.train_ctx = lambda name: contextlib.nullcontext()
    torch.set_num_threads(args.threads)
    from tulu.precision import cpu_flags, host_bf16

    host = host_bf16()
    args.trl_bf16 = host.native if args.trl_bf16 == "auto" else args.trl_bf16 == "on"
    args.flops_per_pair = 0.0
    peaks = {"fp32": matmul_peak_gflops(2048), "bf16": matmul_peak_gflops(2048, torch.bfloat16)}
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2", "fma"))))
    print(f"host: {flags or 'flags unknown'}; native bf16: {host.native} ({host.evidence})", flush=True)
    print(f"matmul peak (2048x2048, {args.threads} threads): fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 "
          f"{peaks['bf16']:.1f} GFLOP/s", flush=True)
    args.steps = args.steps or args.pairs // args.batch
    if args.steps < 2 or args.steps * args.batch > args.pairs:
        raise SystemExit("need at least 2 steps and steps * batch <= pairs")
    import tempfile

    recs = records(args.pairs, seed=7)
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("trl", run_trl), ("tulu", run_ours), ("trl_tuned", run_trl)):
            if args.only and args.only != name.replace("tulu", "ours") or name == "trl_tuned" and args.only:
                continue
            if name == "trl" and args.no_shipped_trl:
                continue
            if name == "trl_tuned":
                from tulu.train.cpu import tune_malloc

                tune_malloc()  # already applied by our trainer on CPU; explicit for clarity
            torch.manual_seed(0)
            res[name] = fn(args, recs, os.path.join(tmp, name))
            gc.collect()  # free the first trainer's model before the second loads its own
    print(f"model={args.model} pairs/step={args.batch} steps={args.steps} threads={args.threads} "
          f"layout={args.layout} max_row_tokens={args.max_row_tokens}")
    rates = {}
    for name, r in res.items():
        st = r["step_times"]
        rates[name] = args.batch * len(st) / sum(st)
        ref_rate = args.pairs / r["ref_s"]
        share = rates[name] * args.flops_per_pair / 1e9 / peaks[r["dtype"]]
        print(f"{name:9s} [{r['dtype']}] train {rates[name]:7.2f} pairs/s (mean of {len(st)} steps after the first) "
              f"= {share:.0%} of the {r['dtype']} peak   reference pass {ref_rate:7.2f} pairs/s "
              f"({r['ref_s']:.1f}s incl. tokenization)   [{r['why']}]")
    for trl, label in (("trl", "TRL as shipped"), ("trl_tuned", "TRL with the same malloc settings")):
        if "tulu" in rates and trl in rates:
            ratio = rates["tulu"] / rates[trl]
            ref_ratio = res[trl]["ref_s"] / res["tulu"]["ref_s"]
            print(f"train throughput tulu [{res['tulu']['dtype']}] / {label} [{res[trl]['dtype']}]: {ratio:.2f}×   "
                  f"reference pass: {ref_ratio:.2f}×")


if __name__ == "__main__":
    main()
