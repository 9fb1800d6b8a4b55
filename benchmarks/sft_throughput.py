"""SFT training throughput: tulu's loop vs TRL's SFTTrainer, same model, data and hyperparameters, one run.

Both train the embedded model (SmolLM2-135M-Instruct, fp32 weights on CPU) for one epoch over the same procedural
chat examples, tokenized once by tulu (assistant-only labels), with the same learning rate, linear schedule,
warmup, AdamW settings, gradient clipping and seed:

* **tulu**: the step engine (``tulu.train.engine``) + ``SFTTask``: micro-batches of ``--per-device`` sequences packed
  into one padding-free row, causal attention per sequence inside the row (``packed_sdpa``: the exact
  ``sum(len²)`` work, where a masked SDPA over the row does ``T²``), LM head only at label positions,
  loss_reduction=mean (TRL's normalisation, so the losses compare).
* **TRL** (1.16) ``SFTTrainer`` at its fastest CPU settings: the same pre-tokenized rows (``input_ids`` +
  ``completion_mask``, completion-only loss), ``packing=True`` with BFD packing into rows of about the same
  number of tokens as ours (which makes it padding-free), no gradient checkpointing (TRL defaults it on), no
  logging/saving/reporting, no dataloader workers, and ``bf16=True`` where the CPU has native bf16
  (``avx512_bf16`` / AMX: its best setting there; ``--trl-bf16 off`` for fp32).

**Precision.** Ours runs ``train.mixed_precision`` from ``--dtype`` (default ``auto``: bf16 autocast where
``tulu.precision`` detects native bf16 and measures it faster, fp32 elsewhere). Every line names the dtype that
ran and the share of the measured matmul peak of *that* dtype (fp32 and bf16 peaks are both measured; the
FLOPs are the same yardstick for both sides: the work of the examples, LM head at label positions only).

**Allocator.** When training on CPU our loop tells glibc malloc to keep large freed blocks
(``tulu.train.cpu.tune_malloc``; by default every tensor above 32 MB is a fresh mmap that page-faults on
first write). That setting is process-wide and any TRL user could set it too (``GLIBC_TUNABLES``), so TRL
runs twice: first as shipped (before our trainer touches the allocator), then again after it, with the same
malloc settings as ours. Both ratios are printed; the second is the like-for-like one.

It prints tokens/s for both (real tokens: no padding exists in either), the ratio as ``1.73×``, the
achieved FLOP/s of each side against the measured peak of its dtype, and each side's final training loss per
token, and both trained models' NLL per token on the same held-out examples (the check that both
learned the same amount; per-step training losses are not comparable, as TRL's BFD packing reorders).

    python benchmarks/sft_throughput.py                                  # 128 examples, both trainers
    python benchmarks/sft_throughput.py --examples 32 --per-device 4     # quick
    python benchmarks/sft_throughput.py --allocator jemalloc             # re-exec under LD_PRELOAD=jemalloc
    python benchmarks/sft_throughput.py --only tulu                      # skip TRL
    python benchmarks/sft_throughput.py --dtype fp32 --trl-bf16 off      # both in fp32
    python benchmarks/sft_throughput.py --no-shipped-trl --rounds 2      # busy host: alternate ours / TRL
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TULU_PROGRESS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (current_allocator, fmt_ratio, matmul_peak_gflops, reexec_with_allocator,  # noqa: E402
                     reset_accelerate, train_flops)


OUR_PRECISION = {"auto": "auto", "fp32": "no", "bf16": "bf16"}


def build_data(n: int, seed: int, max_len: int, tokenizer):
    from tulu.data import synthetic
    from tulu.data.templates import encode_chat

    half = n // 2
    recs = synthetic.records("math", half, kind="sft", seed=seed) + \
        synthetic.records("constraints", n - half, kind="sft", seed=seed)
    return [encode_chat(r["messages"], tokenizer, max_length=max_len) for r in recs]


def load(model_name: str, tokenizer):
    from tulu.models import load_model, tiny_model

    if model_name == "tiny":
        return tiny_model(seed=0, tokenizer=tokenizer)[0].train()
    return load_model(model_name, dtype="float32", device="cpu").train()


@__import__("torch").no_grad()
def heldout_nll(model, items) -> float:
    """Mean NLL per target token of ``model`` on ``items`` (one sequence at a time, full logits): the same
    yardstick for both trainers' final weights."""
    import torch
    import torch.nn.functional as F

    model.eval()
    total, count = 0.0, 0
    for e in items:
        logits = model(input_ids=torch.tensor([e.input_ids]), use_cache=False).logits[0, :-1].float()
        labels = torch.tensor(e.labels[1:])
        total += F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum").item()
        count += int((labels != -100).sum())
    return total / max(count, 1)


def warm_up(args, items, tokenizer) -> None:
    """Two plain forward/backward passes on one row, untimed: the first training in a process pays one-time
    costs (kernel selection, first touch of memory; ~10 s here) that would otherwise land on whichever
    trainer runs first."""
    import torch

    model = load(args.model, tokenizer)
    ids = torch.tensor([[t for e in items[: args.per_device] for t in e.input_ids]])
    for _ in range(2):
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        model.zero_grad(set_to_none=True)
    del model
    gc.collect()


def run_tulu(args, items, tokenizer) -> dict:
    reset_accelerate()

    from tulu.train.common import TrainConfig
    from tulu.train.engine import fit
    from tulu.train.sft import SFTTask

    from tulu.train.attention import register

    model = load(args.model, tokenizer)
    if args.attention == "packed_sdpa":
        model.set_attn_implementation(register())
    cfg = TrainConfig(seed=args.seed, learning_rate=args.lr, warmup_ratio=args.warmup_ratio, num_epochs=1,
                      effective_batch_size=args.per_device * args.accumulation, per_device_batch_size=args.per_device,
                      max_grad_norm=1.0, resume="never", mixed_precision=OUR_PRECISION[args.dtype])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        engine, result = fit(cfg, model, SFTTask("mean", args.head_chunk), items, out, desc="tulu")
        dt = time.perf_counter() - t0
    prec = engine.precision
    used = [i for s in range(result.total_steps) for i in _step_indices(items, cfg, s)]
    tokens = sum(len(items[i].input_ids) for i in used)
    labels = sum(sum(1 for x in items[i].labels[1:] if x != -100) for i in used)
    flops = train_flops(model.config, [len(items[i].input_ids) for i in used], labels)
    losses = [r["nll_per_token"] for r in result.history]
    trained = engine.unwrapped_model()
    trained.set_attn_implementation("sdpa")
    held = heldout_nll(trained, args.heldout) if args.heldout else float("nan")
    del engine, model
    gc.collect()
    return {"time": dt, "tokens": tokens, "flops": flops, "first": losses[0], "last": losses[-1],
            "steps": len(losses), "heldout": held, "dtype": prec.compute, "why": prec.reason}


def _step_indices(items, cfg, step):
    from tulu.train.plan import make_plan, step_items

    return step_items(make_plan(len(items), cfg, 1), cfg.seed, step)


def run_trl(args, items, tokenizer, heldout: bool = True) -> dict:
    reset_accelerate()
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    warnings.filterwarnings("ignore")
    model = load(args.model, tokenizer)
    rows = {"input_ids": [e.input_ids for e in items],
            "completion_mask": [[int(x != -100) for x in e.labels] for e in items]}
    ds = Dataset.from_dict(rows)
    mean_len = sum(len(e.input_ids) for e in items) / len(items)
    row_tokens = max(max(len(e.input_ids) for e in items), int(round(args.per_device * mean_len)))
    steps_est = math.ceil(sum(len(e.input_ids) for e in items) / row_tokens / args.accumulation)
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(
            output_dir=out, num_train_epochs=1, per_device_train_batch_size=1,
            gradient_accumulation_steps=args.accumulation, learning_rate=args.lr, lr_scheduler_type="linear",
            warmup_steps=math.ceil(args.warmup_ratio * steps_est), weight_decay=0.0, max_grad_norm=1.0,
            bf16=args.trl_bf16, fp16=False, use_cpu=True, gradient_checkpointing=False, packing=True,
            packing_strategy="bfd", padding_free=True, max_length=row_tokens, completion_only_loss=True,
            logging_steps=1, save_strategy="no", report_to=[], dataloader_num_workers=0, seed=args.seed,
            disable_tqdm=True, use_liger_kernel=False)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tokenizer)
        t0 = time.perf_counter()
        trainer.train()
        dt = time.perf_counter() - t0
        logs = [h for h in trainer.state.log_history if "loss" in h]
        packed = trainer.train_dataset
        tokens = sum(len(x) for x in packed["input_ids"])
        config = model.config
    held = heldout_nll(trainer.model, args.heldout) if args.heldout and heldout else float("nan")
    del trainer, model
    gc.collect()
    # FLOPs of the work itself (the same yardstick as ours: head at label positions only), so the two
    # utilisation figures compare; TRL also projects prompt positions, which this does not count.
    flops = train_flops(config, [len(e.input_ids) for e in items],
                        sum(sum(1 for x in e.labels[1:] if x != -100) for e in items))
    return {"time": dt, "tokens": tokens, "flops": flops,
            "dtype": "bf16" if args.trl_bf16 else "fp32",
            "first": logs[0]["loss"] if logs else float("nan"),
            "last": logs[-1]["loss"] if logs else float("nan"), "steps": len(logs), "row_tokens": row_tokens,
            "heldout": held}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help="embedded (default), tiny, or a model folder")
    ap.add_argument("--examples", type=int, default=128)
    ap.add_argument("--per-device", type=int, default=8, help="sequences per packed micro-batch (ours)")
    ap.add_argument("--accumulation", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=512)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.03)
    ap.add_argument("--head-chunk", type=int, default=0, help="ours: 0 = project label positions at once")
    ap.add_argument("--attention", choices=["packed_sdpa", "sdpa"], default="packed_sdpa",
                    help="ours: per-sequence SDPA inside packed rows (default) or transformers' masked SDPA")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--heldout", type=int, default=16, help="held-out examples to score both trained models on")
    ap.add_argument("--only", choices=["tulu", "trl"], default=None)
    ap.add_argument("--allocator", choices=["default", "jemalloc", "tcmalloc"], default="default")
    ap.add_argument("--no-tuned-trl", action="store_true",
                    help="skip the second TRL run under our malloc settings (the like-for-like ratio)")
    ap.add_argument("--no-shipped-trl", action="store_true",
                    help="skip the first TRL run with malloc as shipped (saves time on a busy host)")
    ap.add_argument("--dtype", choices=["auto", "fp32", "bf16"], default="auto",
                    help="ours: train.mixed_precision (auto: bf16 autocast where tulu.precision measures it faster)")
    ap.add_argument("--trl-bf16", choices=["auto", "on", "off"], default="auto",
                    help="TRL's bf16 flag; auto: on where the CPU has native bf16 (TRL at its best on this host)")
    ap.add_argument("--rounds", type=int, default=1, help="repeat TRL (tuned) and ours alternately this many times")
    args = ap.parse_args()
    reexec_with_allocator(args.allocator)

    import torch

    from tulu.precision import cpu_flags, host_bf16

    host = host_bf16()
    args.trl_bf16 = host.native if args.trl_bf16 == "auto" else args.trl_bf16 == "on"

    torch.set_num_threads(args.threads)
    from tulu.models import load_tokenizer

    tokenizer = load_tokenizer("embedded")
    items = build_data(args.examples, args.seed, args.max_len, tokenizer)
    args.heldout = build_data(args.heldout, args.seed + 1, args.max_len, tokenizer) if args.heldout else []
    n_tok = sum(len(e.input_ids) for e in items)
    n_lab = sum(sum(1 for x in e.labels[1:] if x != -100) for e in items)
    print(f"model {args.model}, {len(items)} examples, {n_tok} tokens ({n_lab / n_tok:.0%} assistant labels), "
          f"{args.threads} threads, our attention {args.attention}, allocator {current_allocator()}", flush=True)
    peaks = {"fp32": matmul_peak_gflops(2048), "bf16": matmul_peak_gflops(2048, torch.bfloat16)}
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2", "fma"))))
    print(f"host: {flags or 'flags unknown'}; native bf16: {host.native} ({host.evidence}); torch ISA "
          f"{host.capability}", flush=True)
    print(f"matmul peak (2048x2048, {args.threads} threads): fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 "
          f"{peaks['bf16']:.1f} GFLOP/s", flush=True)
    warm_up(args, items, tokenizer)
    res = {}

    def show_trl(r: dict, label: str) -> None:
        gflops = r["flops"] / r["time"] / 1e9
        print(f"{label} [{r['dtype']}]: {r['steps']} steps, {r['tokens']} tokens in {r['time']:.1f}s = "
              f"{r['tokens'] / r['time']:.1f} tokens/s (rows of {r['row_tokens']} tokens); {gflops:.1f} GFLOP/s = "
              f"{gflops / peaks[r['dtype']]:.0%} of the {r['dtype']} peak; loss/token {r['first']:.3f} -> "
              f"{r['last']:.3f}; held-out NLL/token after training {r['heldout']:.3f}", flush=True)

    def show_tulu(r: dict) -> None:
        gflops = r["flops"] / r["time"] / 1e9
        print(f"tulu [{r['dtype']}: {r['why']}]: {r['steps']} steps, {r['tokens']} tokens in {r['time']:.1f}s = "
              f"{r['tokens'] / r['time']:.1f} tokens/s; loss/token {r['first']:.3f} -> {r['last']:.3f}; "
              f"{gflops:.1f} GFLOP/s = {gflops / peaks[r['dtype']]:.0%} of the {r['dtype']} matmul peak; held-out "
              f"NLL/token after training {r['heldout']:.3f}", flush=True)

    rate = lambda r: r["tokens"] / r["time"]  # noqa: E731
    if args.only in (None, "trl") and not args.no_shipped_trl:  # first: glibc malloc still as shipped
        res["trl"] = run_trl(args, items, tokenizer)
        show_trl(res["trl"], "TRL (malloc as shipped)")
    ratios = []
    for rnd in range(args.rounds):
        if args.only in (None, "tulu"):
            res["tulu"] = run_tulu(args, items, tokenizer)
            show_tulu(res["tulu"])
        if args.only is None and not args.no_tuned_trl:
            from tulu.train.cpu import tune_malloc

            tune_malloc()  # already applied by our trainer on CPU; explicit for clarity
            res["trl_tuned"] = run_trl(args, items, tokenizer, heldout=False)
            show_trl(res["trl_tuned"], "TRL (malloc tuned as ours)")
            ratios.append(rate(res["tulu"]) / rate(res["trl_tuned"]))
            print(f"round {rnd + 1}: tulu [{res['tulu']['dtype']}] vs TRL SFTTrainer [{res['trl_tuned']['dtype']}] "
                  f"with the same malloc settings: {fmt_ratio(ratios[-1])} tokens/s", flush=True)
    if "tulu" in res and "trl" in res:
        print(f"tulu [{res['tulu']['dtype']}] vs TRL SFTTrainer [{res['trl']['dtype']}] as shipped: "
              f"{fmt_ratio(rate(res['tulu']) / rate(res['trl']))} tokens/s")
    if ratios:
        print(f"tulu vs TRL SFTTrainer with the same malloc settings (like for like), {len(ratios)} round(s): "
              + ", ".join(fmt_ratio(r) for r in ratios))


if __name__ == "__main__":
    main()
