"""bf16 MFU of tulu's SFT training step on one CUDA GPU (for the H100 runs).

Runs the real step engine (``tulu.train.engine`` + ``SFTTask``: packed padding-free rows, LM head at label
positions only, AdamW, bf16 autocast over fp32 master weights) on random-initialised models of two shapes:

* ``smollm2-135m``: the embedded model's architecture (SmolLM2-135M: 30 layers, hidden 576, vocab 49152);
* ``llama-1b``: a ~1.2B Llama (Llama-3.2-1B's shape: 16 layers, hidden 2048, GQA 32/8, vocab 128256).

Weights are random (MFU does not depend on them), so it needs only torch + transformers + tulu: no model
download, no data download. Each micro-batch packs random "conversations" (lengths drawn around
``--seq-len``, a prompt part with labels -100 and a response part with labels) into one row of
``--row-tokens`` tokens.

MFU = model FLOPs per second / peak dense bf16 FLOP/s of the GPU. Model FLOPs use the standard
``3 x forward`` count of benchmarks/_common.py (body 2·P per token, causal attention, LM head at the projected
positions only). The peak is taken from the GPU name (H100 SXM 989 TFLOP/s, H100 PCIe 756, H200 989,
A100 312) or ``--peak-tflops``; a measured bf16 matmul peak is printed as well.

    python benchmarks/sft_mfu_gpu.py                                  # both models
    python benchmarks/sft_mfu_gpu.py --models llama-1b --row-tokens 16384 --steps 20
    python benchmarks/sft_mfu_gpu.py --attention flash_attention_2    # if flash-attn is installed
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TULU_PROGRESS", "0")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from _common import matmul_peak_gflops, train_flops  # noqa: E402

SHAPES = {
    "smollm2-135m": dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True,
                         max_position_embeddings=8192, rope_theta=100000.0),
    "llama-1b": dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                     num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True,
                     max_position_embeddings=8192, rope_theta=500000.0),
}
SHAPES["smoke"] = dict(vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                       max_position_embeddings=2048)
PEAKS_TFLOPS = {"H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def peak_tflops(name: str) -> float | None:
    for key, val in PEAKS_TFLOPS.items():
        if key in name:
            return val
    if "H100" in name:
        return 989.0
    return None


def make_items(n: int, seq_len: int, vocab: int, seed: int):
    from tulu.data.templates import IGNORE_INDEX, Encoded

    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        length = int(torch.randint(seq_len // 2, seq_len * 3 // 2 + 1, (1,), generator=g))
        ids = torch.randint(0, vocab, (length,), generator=g).tolist()
        prompt = length // 3
        items.append(Encoded(ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    return items


def bench(name: str, args) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from tulu.train.common import TrainConfig
    from tulu.train.engine import fit
    from tulu.train.plan import make_plan, step_items
    from tulu.train.sft import SFTTask

    cfg = LlamaConfig(**SHAPES[name])
    torch.manual_seed(0)
    with torch.device(args.device):
        model = LlamaForCausalLM(cfg)
    attn = args.attention
    if attn == "packed_sdpa":
        from tulu.train.attention import register

        attn = register()
    model.set_attn_implementation(attn)
    per_row = max(1, args.row_tokens // args.seq_len)
    steps = args.steps + args.warmup_steps
    items = make_items(per_row * args.accumulation * steps, args.seq_len, cfg.vocab_size, seed=1)
    tcfg = TrainConfig(learning_rate=1e-5, warmup_ratio=0.0, num_epochs=1, effective_batch_size=per_row * args.accumulation,
                       per_device_batch_size=per_row,
                       mixed_precision="bf16" if args.device == "cuda" else "no", max_grad_norm=1.0,
                       gradient_checkpointing=args.gradient_checkpointing, resume="never")
    with tempfile.TemporaryDirectory() as out:
        engine, result = fit(tcfg, model, SFTTask("sum", args.head_chunk), items, out, desc=name)
        hist = result.history
    plan = make_plan(len(items), tcfg, 1)
    # per-step wall times come from the loop's own records (it synchronises through .item() on the loss)
    measured = hist[args.warmup_steps:]
    t = sum(r["step_time_s"] for r in measured)
    seqs, labels = [], 0
    for s in range(args.warmup_steps, len(hist)):
        for i in step_items(plan, tcfg.seed, s):
            seqs.append(len(items[i].input_ids))
            labels += sum(1 for x in items[i].labels[1:] if x != -100)
    flops = train_flops(cfg, seqs, labels)
    tokens = sum(seqs)
    if args.device == "cuda":
        peak = args.peak_tflops or peak_tflops(torch.cuda.get_device_name())
        mem = torch.cuda.max_memory_allocated() / 2**30
    else:
        peak, mem = args.peak_tflops or matmul_peak_gflops(1024) / 1e3, 0.0
    achieved = flops / t / 1e12
    mfu = f"{achieved / peak:.1%}" if peak else "n/a (pass --peak-tflops)"
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params / 1e6:.0f}M params, rows of ~{per_row * args.seq_len} tokens x {args.accumulation} "
          f"accumulation, {len(measured)} timed steps: {tokens / t:,.0f} tokens/s, {achieved:.1f} TFLOP/s, "
          f"MFU {mfu} (peak {peak} TFLOP/s bf16 dense), max memory {mem:.1f} GiB, "
          f"last loss/token {hist[-1]['nll_per_token']:.3f}", flush=True)
    del engine, model  # free the GPU memory before the next model's run
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "llama-1b"], choices=list(SHAPES))
    ap.add_argument("--seq-len", type=int, default=1024, help="mean sequence length")
    ap.add_argument("--row-tokens", type=int, default=8192, help="tokens per packed micro-batch row")
    ap.add_argument("--accumulation", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup-steps", type=int, default=3)
    ap.add_argument("--attention", default="packed_sdpa", help="packed_sdpa | sdpa | flash_attention_2")
    ap.add_argument("--head-chunk", type=int, default=0)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--smoke", action="store_true", help="check the script on CPU with a tiny shape (fp32, no MFU claim)")
    args = ap.parse_args()
    args.device = "cuda"
    if args.smoke:
        args.device, args.models, args.seq_len, args.row_tokens, args.steps, args.warmup_steps = \
            "cpu", ["smoke"], 64, 256, 2, 1
        print("smoke run on CPU (tiny shape, fp32): checks the script, measures nothing meaningful")
        for m in args.models:
            bench(m, args)
        return
    if not torch.cuda.is_available():
        sys.exit("sft_mfu_gpu.py needs a CUDA device")
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    mm = matmul_peak_gflops(8192, torch.bfloat16, 20, "cuda") / 1e3
    print(f"GPU: {name}; measured bf16 matmul (8192^3): {mm:.0f} TFLOP/s; spec peak used for MFU: "
          f"{args.peak_tflops or peak_tflops(name)} TFLOP/s", flush=True)
    for m in args.models:
        bench(m, args)


if __name__ == "__main__":
    main()
