"""GPU checks and throughput figures, in one run on one CUDA device (the lead runs this on an H100).

Weights are RANDOM (the embedded model's 540 MB of weights cannot travel to the GPU machine); the model
shapes are the real ones: SmolLM2-135M's config (from ``--config-dir``, with its tokenizer) and a ~1B
Llama config. Throughput does not depend on weight values; generation ignores EOS so every sequence
produces the same number of tokens.

Sections (each prints one line per measurement and goes into the JSON written to ``--out``):

1. **SFT step, bf16 mixed precision**, through our step engine (``tulu.train.engine`` +
   ``tulu.train.sft.SFTTask``: packed rows, LM head only at label positions) against the standard HF
   step on the same rows (padded batch, ``model(..., labels=...)`` full-vocabulary logits, same
   optimizer). Tokens/s, the ratio, and MFU against the H100's dense bf16 peak.
2. **Generation**: HF ``generate`` vs our ``fast`` backend, bf16, batch 1/8/32, 128 new tokens.
3. **Greedy parity on CUDA** (fp32): fast backend tokens == HF greedy tokens.

    python benchmarks/gpu_checks.py --config-dir .gpu_assets/smollm2-135m-config --out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

H100_BF16_DENSE = 989e12  # NVIDIA H100 SXM dense bf16 tensor-core peak, FLOP/s (datasheet)
DEVICE = "cuda"
VARIANTS: list[str] = []  # --variants: a subset of the SFT attention variants
SMOKE = False  # --smoke: tiny shapes on CPU, to check the script itself before spending GPU time


def build_model(config_dir: str, which: str, dtype=torch.float32, attn: str = "sdpa"):
    from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM

    base = AutoConfig.from_pretrained(config_dir)
    if which == "1b":  # Llama-3.2-1B shapes with SmolLM2's vocabulary
        cfg = LlamaConfig(vocab_size=base.vocab_size, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                          num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                          tie_word_embeddings=True, rope_theta=500000.0, bos_token_id=base.bos_token_id,
                          eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id)
    else:
        cfg = base
    if SMOKE:
        cfg = LlamaConfig(vocab_size=base.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                          bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id, pad_token_id=base.pad_token_id)
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(cfg).to(dtype)
    return model


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def train_flops_per_token(model, seq_len: int) -> float:
    """6N (dense matmuls, head included: every position is a target here) + attention scores/values
    (12 * layers * hidden * seq_len / 2 for causal), PaLM appendix B style."""
    c = model.config
    return 6 * n_params(model) + 6 * c.num_hidden_layers * c.hidden_size * seq_len


def random_items(vocab: int, n: int, seq_len: int, seed: int = 0):
    from tulu.data.templates import Encoded

    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (seq_len,), generator=g).tolist()
        items.append(Encoded(ids, list(ids)))  # every token a target: 6N is then the exact matmul count
    return items


def bench_sft_ours(model, items, per_device: int, steps: int, accumulation: int = 1) -> float:
    from tulu.train.common import TrainConfig
    from tulu.train.engine import fit
    from tulu.train.sft import SFTTask

    cfg = TrainConfig(seed=0, learning_rate=1e-5, warmup_ratio=0.0, num_epochs=1, max_steps=steps,
                      effective_batch_size=per_device * accumulation, per_device_batch_size=per_device,
                      mixed_precision="bf16",
                      log_every=1)
    with tempfile.TemporaryDirectory() as out:
        fit(cfg, model, SFTTask("sum"), items, out, run_config={}, desc="ours")
        rows = [json.loads(x) for x in (Path(out) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    rows = [r for r in rows if "tokens_per_s" in r][2:]  # skip warm-up steps
    return sum(r["tokens"] for r in rows) / sum(r["step_time_s"] for r in rows)


def bench_sft_hf(model, items, per_device: int, steps: int) -> float:
    """The transformers-standard step: padded batch, full-vocabulary logits, mean loss, bf16 autocast."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    times, toks = [], []
    for s in range(steps):
        batch = items[(s * per_device) % len(items):][:per_device]
        ids = torch.tensor([b.input_ids for b in batch], device=DEVICE)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(DEVICE, dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - t0)
        toks.append(ids.numel())
    return sum(toks[2:]) / sum(times[2:])


def section_sft(config_dir: str, results: dict, steps: int) -> None:
    """Our loop with each attention path for packed rows, against the HF-standard step on the same tokens."""
    from tulu.train import attention
    from tulu.train.attention import register

    shapes = (("smollm2-135m", 16, 1024), ("1b", 8, 1024)) if not SMOKE else (("smollm2-135m", 2, 32),)
    variants = [("packed_sdpa", "sdpa"), ("sdpa_mask", "sdpa")]
    if DEVICE == "cuda":  # the per-sequence SDPA fallback (what packed_sdpa did on CUDA before varlen), and flex
        variants += [("per_seq_sdpa", "sdpa"), ("flex", "flex_attention")]
    if VARIANTS:
        variants = [v for v in variants if v[0] in VARIANTS]
    for which, per_device, seq in shapes:
        items = random_items(49152, per_device * (steps + 1), seq)
        model = build_model(config_dir, which)
        hf = bench_sft_hf(model, items, per_device, steps)
        fpt = train_flops_per_token(model, seq)
        row = {"model": which, "params": n_params(model), "tokens_per_step": per_device * seq, "hf_tok_s": hf,
               "hf_mfu": hf * fpt / H100_BF16_DENSE}
        del model
        for name, attn in variants:
            if DEVICE == "cuda":
                torch.cuda.empty_cache()
            try:
                model = build_model(config_dir, which, attn=attn)
                if name in ("packed_sdpa", "per_seq_sdpa"):  # packed_sdpa: `tulu sft`'s default attention
                    model.set_attn_implementation(register())
                saved = attention._VARLEN
                if name == "per_seq_sdpa":
                    attention._VARLEN = None
                try:
                    rate = bench_sft_ours(model, items, per_device, steps)
                finally:
                    attention._VARLEN = saved
                del model
            except Exception as exc:  # noqa: BLE001 - report, keep the other figures
                print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            row[f"ours_{name}_tok_s"] = rate
            row[f"ours_{name}_mfu"] = rate * fpt / H100_BF16_DENSE
            row[f"ratio_{name}"] = rate / hf
        results.setdefault("sft", []).append(row)
        parts = [f"{n} {row[f'ours_{n}_tok_s']:,.0f} tok/s (MFU {row[f'ours_{n}_mfu']:.1%}, {row[f'ratio_{n}']:.2f}×)"
                 for n, _ in variants if f"ours_{n}_tok_s" in row]
        print(f"SFT bf16 {which:13s} ({row['params'] / 1e6:.0f}M params, {per_device}x{seq} tokens/step): "
              f"HF step {hf:,.0f} tok/s (MFU {row['hf_mfu']:.1%}); ours: " + "; ".join(parts), flush=True)


def section_generation(config_dir: str, results: dict, new_tokens: int) -> None:
    from transformers import AutoTokenizer

    from tulu.rollout import SamplingParams, get_backend

    tok = AutoTokenizer.from_pretrained(config_dir)
    model = build_model(config_dir, "smollm2-135m", torch.bfloat16).eval()
    prompts = [[{"role": "user", "content": f"Write a story about the number {i}."}] for i in range(32)]
    fast = get_backend("fast", model, tok, max_batch_size=32)
    params = SamplingParams(max_new_tokens=new_tokens, temperature=0.0, stop_token_ids=[])
    for bs in (1, 8, 32):
        batch = prompts[:bs]
        # HF generate: left-padded batch, static length (min_new_tokens) so both produce new_tokens each.
        tok.padding_side = "left"
        texts = [tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in batch]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(DEVICE)
        times = {}
        for name in ("hf", "fast"):
            for rep in range(2):  # first rep warms up kernels / cache allocation
                sync()
                t0 = time.perf_counter()
                if name == "hf":
                    out = model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                                         pad_token_id=tok.pad_token_id)
                    n = (out.shape[1] - enc["input_ids"].shape[1]) * bs
                else:
                    outs = fast.generate(batch, params)
                    n = sum(len(c.token_ids) for o in outs for c in o.completions)
                sync()
                times[name] = (n, time.perf_counter() - t0)
        hf_rate = times["hf"][0] / times["hf"][1]
        fast_rate = times["fast"][0] / times["fast"][1]
        row = {"batch": bs, "new_tokens": new_tokens, "hf_tok_s": hf_rate, "fast_tok_s": fast_rate,
               "fast_tokens": times["fast"][0], "ratio": fast_rate / hf_rate}
        results.setdefault("generation", []).append(row)
        print(f"generate bf16 batch {bs:2d}: HF {hf_rate:8,.0f} tok/s  fast {fast_rate:8,.0f} tok/s  "
              f"ratio {row['ratio']:.2f}× ({times['fast'][0]} tokens)", flush=True)
    fast.close()


def section_parity(config_dir: str, results: dict) -> None:
    from transformers import AutoTokenizer

    from tulu.rollout import SamplingParams, get_backend

    tok = AutoTokenizer.from_pretrained(config_dir)
    model = build_model(config_dir, "smollm2-135m", torch.float32).eval()
    prompts = [[{"role": "user", "content": f"Count to {i} and explain."}] for i in range(1, 9)]
    params = SamplingParams(max_new_tokens=32, temperature=0.0)
    hf = get_backend("hf", model, tok).generate(prompts, params)
    fast = get_backend("fast", model, tok).generate(prompts, params)
    same = sum(a.completions[0].token_ids == b.completions[0].token_ids for a, b in zip(hf, fast))
    results["greedy_parity_fp32"] = {"prompts": len(prompts), "identical": same}
    print(f"greedy parity on CUDA (fp32, random SmolLM2 weights): {same}/{len(prompts)} identical", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-dir", required=True, help="folder with SmolLM2's config.json + tokenizer")
    ap.add_argument("--out", default=None)
    ap.add_argument("--sections", default="parity,generation,sft")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--variants", default="", help="comma-separated subset of packed_sdpa,sdpa_mask,per_seq_sdpa,flex")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes on CPU (checks the script, no figures)")
    args = ap.parse_args()
    global DEVICE, SMOKE, VARIANTS
    VARIANTS = [v for v in args.variants.split(",") if v]
    if args.smoke:
        DEVICE, SMOKE = "cpu", True
        args.steps, args.new_tokens = 4, 4
    elif not torch.cuda.is_available():
        raise SystemExit("gpu_checks.py needs a CUDA device (or --smoke)")
    results = {"device": torch.cuda.get_device_name(0) if DEVICE == "cuda" else "cpu (smoke)", "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%d"), "peak_bf16_flops": H100_BF16_DENSE}
    import transformers

    results["transformers"] = transformers.__version__
    print(f"device: {results['device']}  torch {torch.__version__}  transformers {transformers.__version__}", flush=True)
    for section in args.sections.split(","):
        t0 = time.perf_counter()
        try:
            {"sft": lambda: section_sft(args.config_dir, results, args.steps),
             "generation": lambda: section_generation(args.config_dir, results, args.new_tokens),
             "parity": lambda: section_parity(args.config_dir, results)}[section]()
        except Exception as exc:  # report and go on: one broken section must not hide the others
            import traceback

            traceback.print_exc()
            results.setdefault("errors", {})[section] = f"{type(exc).__name__}: {exc}"
        print(f"[{section} took {time.perf_counter() - t0:.0f}s]", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
