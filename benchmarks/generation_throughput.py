"""Generation throughput: HF ``generate`` against our fast backend, same prompts, same run.

For batch 1, 8 and 32, greedy and sampled (T=1, top-p 0.95), 128 new tokens per sample:

* HF: ``tulu.rollout.hf.HFBackend`` (``model.generate`` with left padding, ``batch_size`` prompts at
  a time, dynamic cache, log-probs on) - the way the rest of the project called generation before;
* ours: ``tulu.rollout.fast.FastBackend`` with ``max_batch_size`` equal to the batch (on CPU fp32: the
  compiled decode step of ``csrc/decode.cpp``; the header says whether it loaded);
* with ``--ablation``, also ours without the compiled kernels (``compiled=False``: the Python step on
  oneDNN pre-packed weights and torch's sampling ops, the engine before the compiled step existed) and
  ours without prefilling the prompts' shared prefix once (``share_prefix=False``; here the chat
  template's 31-token start, system prompt included, of ~41 tokens per prompt).

Tokens/s counts generated tokens (each sample up to its stop token or 128) over wall time including
prefill. Greedy outputs are compared token for token. The physical bound per decode step is
``max(weight_bytes / bandwidth, batch * 2 * params / matmul_peak)`` with both measured here. The
"matmul floor" column times only the fast engine's own matrix multiplies for one decode step at that batch
(its panel-packed kernel, or oneDNN without the compiled kernels; weights streamed from memory): no
implementation built on these kernels can beat it, whatever it does about attention, norms or sampling.

    python benchmarks/generation_throughput.py            # full: batch 1, 8, 32 (several minutes)
    python benchmarks/generation_throughput.py --quick    # batch 1 and 8, 32 tokens (about a minute)
    python benchmarks/generation_throughput.py --bf16     # fp32 vs bf16 weights vs HF, batch 8 and 32

``--bf16`` (see :func:`bf16_main`): one run times our decode with fp32 weights, our decode with bf16 weights
(``FastBackend(dtype="bfloat16")``, :mod:`tulu.rollout.weights`) and HF ``generate`` at its faster dtype on
this host (probed: fp32 and bf16 model, batch 8, 16 tokens), for each batch and mode, ``--repeats`` times
with the order of the three reversed every other time (the same prompts each time); it prints tokens/s,
each side's dtype, the ratios, the greedy agreement of bf16 vs fp32 (share of generated tokens before which
the two outputs are identical) and the max/mean |Δ log-prob| of the bf16 run's sampled tokens against a
teacher-forced fp32 forward pass of the same model.

On a machine shared with other busy processes, prefix ``OMP_WAIT_POLICY=PASSIVE``: with spinning
OpenMP threads on oversubscribed cores a decode step measured 10-30x slower for both backends.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TULU_PROGRESS", "0")

import torch

TOPICS = ["the ocean", "a lighthouse keeper", "the history of bread", "how rain forms", "a robot learning to paint",
          "the moon landing", "a city at night", "why cats purr", "a long train journey", "the invention of paper",
          "a mountain village", "the life of a bee", "an old library", "volcanoes", "a chess tournament",
          "the northern lights", "a desert caravan", "coral reefs", "a jazz musician", "the first computers",
          "a snowstorm", "ancient Rome", "a garden in spring", "deep sea creatures", "a lost key", "the wind",
          "a bakery at dawn", "black holes", "a fishing boat", "the Silk Road", "a forest fire", "music and memory"]


def prompts(count: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Write a long, detailed essay about {TOPICS[i % len(TOPICS)]}."}]
            for i in range(count)]


def measure_matmul_gflops(size: int = 1024, reps: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * size ** 3 * reps / best / 1e9


def measure_bandwidth_gbs(mbytes: int = 512, reps: int = 5) -> float:
    """Read bandwidth: summing a buffer much larger than the caches."""
    x = torch.ones(mbytes * 2**20 // 4)
    x.sum()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return x.numel() * 4 / best / 1e9


def linear_floor_tok_s(engine, batch: int, reps: int = 5) -> float:
    """Tokens/s if a decode step were only the engine's matmuls (every layer's qkv, o, gate_up, down and the
    LM head at ``batch`` rows): the ceiling of this kernel choice."""
    x = torch.randn(batch, engine.hidden_size)
    xi = torch.randn(batch, engine.layers[0].down.in_features)

    def step() -> None:
        for layer in engine.layers:
            layer.qkv(x)
            layer.o(x)
            layer.gate_up(x)
            layer.down(xi)
        engine.lm_head(x)

    for _ in range(2):
        step()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t)
    return batch / best


def bound_tok_s(batch: int, weight_bytes: int, params: int, bw_gbs: float, gflops: float) -> float:
    step = max(weight_bytes / (bw_gbs * 1e9), batch * 2 * params / (gflops * 1e9))
    return batch / step


def run(backend, ps, params) -> tuple[float, list[list[int]], int]:
    t = time.perf_counter()
    outs = backend.generate(ps, params)
    secs = time.perf_counter() - t
    ids = [c.token_ids for o in outs for c in o.completions]
    ntok = sum(len(x) for x in ids)
    return ntok / secs, ids, ntok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=1, help="batches of prompts per setting (batch 1: 2x this)")
    ap.add_argument("--modes", default="greedy,sampled")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="batch 1 and 8, 32 new tokens")
    ap.add_argument("--ablation", action="store_true",
                    help="also time our backend without the compiled kernels (compiled=False) and without "
                         "the shared-prefix prefill (share_prefix=False)")
    ap.add_argument("--bf16", action="store_true", help="ours fp32 vs ours bf16 weights vs HF at its best dtype")
    ap.add_argument("--repeats", type=int, default=2, help="--bf16: timed repeats per setting, order alternating")
    ap.add_argument("--hf-dtype", default="auto", help="--bf16: float32, bfloat16 or auto (the faster, probed)")
    args = ap.parse_args(argv)
    if args.bf16:
        if args.batches == "1,8,32":
            args.batches = "8,32"
        return bf16_main(args)
    if args.quick:
        args.batches, args.max_new_tokens = "1,8", 32
    torch.set_num_threads(args.threads)

    from tulu.models import load_model_and_tokenizer
    from tulu.rollout import SamplingParams, kernels
    from tulu.rollout.fast import FastBackend
    from tulu.rollout.hf import HFBackend

    model, tok = load_model_and_tokenizer(args.model, dtype="float32", device="cpu")
    n_params = sum(p.numel() for p in model.parameters())  # tied head counted once
    weight_bytes = n_params * 4
    gflops, bw = measure_matmul_gflops(), measure_bandwidth_gbs()
    print(f"model {args.model}: {n_params / 1e6:.1f}M params, {weight_bytes / 2**20:.0f} MiB fp32; "
          f"threads {args.threads} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); measured fp32 matmul peak {gflops:.0f} GFLOP/s, read bandwidth {bw:.1f} GB/s")
    print(f"compiled decode step (csrc/decode.cpp): {'loaded' if kernels.available() else 'NOT available'}")
    ablation = f" {'no-kernels':>10} {'gain':>6} {'no-share':>8} {'gain':>6}" if args.ablation else ""
    print(f"{'batch':>5} {'mode':>8} {'HF tok/s':>9} {'ours tok/s':>10} {'ratio':>7} {'bound tok/s':>11} "
          f"{'ours/bound':>10} {'matmul floor':>12} {'ours/floor':>10}{ablation}  greedy identical")
    ok = True
    for batch in (int(b) for b in args.batches.split(",")):
        count = batch * args.rounds * (2 if batch == 1 else 1)
        ps = prompts(count)
        hf = HFBackend(model, tok, batch_size=batch)
        fast = FastBackend(model, tok, max_batch_size=batch)
        fast.generate(ps[:1], SamplingParams(max_new_tokens=2))  # warm-up (allocator, kernels)
        plain = noshare = None
        if args.ablation:
            plain = FastBackend(model, tok, max_batch_size=batch, compiled=False)
            plain.generate(ps[:1], SamplingParams(max_new_tokens=2))
            noshare = FastBackend(model, tok, max_batch_size=batch, share_prefix=False)
        floor = linear_floor_tok_s(fast.engine, batch)
        for mode in args.modes.split(","):
            sp = (SamplingParams(max_new_tokens=args.max_new_tokens) if mode == "greedy" else
                  SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0))
            hf_rate, hf_ids, _ = run(hf, ps, sp)
            our_rate, our_ids, _ = run(fast, ps, sp)
            extra = ""
            if plain is not None:
                plain_rate = run(plain, ps, sp)[0]
                noshare_rate, noshare_ids, _ = run(noshare, ps, sp)
                extra = (f" {plain_rate:>10.1f} {our_rate / plain_rate:>5.2f}× {noshare_rate:>8.1f} "
                         f"{our_rate / noshare_rate:>5.2f}×")
                if mode == "greedy":
                    ok &= noshare_ids == our_ids
            same = "-"
            if mode == "greedy":
                same = "yes" if hf_ids == our_ids else f"NO ({sum(a != b for a, b in zip(hf_ids, our_ids))} differ)"
                ok &= hf_ids == our_ids
            bound = bound_tok_s(batch, weight_bytes, n_params, bw, gflops)
            print(f"{batch:>5} {mode:>8} {hf_rate:>9.1f} {our_rate:>10.1f} {our_rate / hf_rate:>6.2f}× "
                  f"{bound:>11.0f} {our_rate / bound:>9.0%} {floor:>12.0f} {our_rate / floor:>9.0%}{extra}  {same}",
                  flush=True)
    return 0 if ok else 1


def _teacher_forced_gap(model, outs) -> list[float]:
    """|log p(token)| differences: each sampled token's log-prob as returned against a teacher-forced fp32
    forward pass of ``model`` over prompt + completion (temperature 1)."""
    gaps: list[float] = []
    with torch.no_grad():
        for out in outs:
            for c in out.completions:
                if not c.token_ids or c.logprobs is None:
                    continue
                ids = list(c.prompt_token_ids) + list(c.token_ids)
                logits = model(torch.tensor([ids])).logits[0, len(c.prompt_token_ids) - 1:-1].float()
                ref = torch.log_softmax(logits, -1)[torch.arange(len(c.token_ids)), torch.tensor(c.token_ids)]
                gaps += (ref - torch.tensor(c.logprobs)).abs().tolist()
    return gaps


def _agreement(a, b) -> tuple[int, int]:
    """(tokens generated before the first difference, tokens generated) summed over sample pairs."""
    same = total = 0
    for x, y in zip(a, b):
        n = next((i for i, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y)))
        same += n
        total += max(len(x), len(y))
    return same, total


def bf16_main(args) -> int:
    from tulu.models import load_model_and_tokenizer
    from tulu.precision import cpu_flags
    from tulu.rollout import SamplingParams, kernels
    from tulu.rollout.fast import FastBackend
    from tulu.rollout.hf import HFBackend

    torch.set_num_threads(args.threads)
    model, tok = load_model_and_tokenizer(args.model, dtype="float32", device="cpu")
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "fma", "amx"))))
    print(f"model {args.model}; threads {args.threads} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}); "
          f"compiled decode step: {'loaded' if kernels.available() else 'NOT available'}; CPU flags: {flags}")
    hf_models = {"float32": model}
    if args.hf_dtype in ("auto", "bfloat16"):
        import copy

        hf_models["bfloat16"] = copy.deepcopy(model).to(torch.bfloat16)
    if args.hf_dtype == "auto":
        probe, rates = prompts(8), {}
        for _ in range(2):
            for name, m in hf_models.items():
                r = run(HFBackend(m, tok, batch_size=8), probe, SamplingParams(max_new_tokens=16))[0]
                rates[name] = max(rates.get(name, 0.0), r)
        hf_dtype = max(rates, key=rates.get)
        print("HF probe (batch 8, 16 tokens, greedy): " + ", ".join(f"{k} {v:.1f} tok/s" for k, v in rates.items())
              + f" -> HF runs {hf_dtype}")
    else:
        hf_dtype = args.hf_dtype
    print(f"{'batch':>5} {'mode':>8} {'HF tok/s':>9} {'fp32 tok/s':>10} {'bf16 tok/s':>10} {'bf16/fp32':>9} "
          f"{'fp32/HF':>8} {'bf16/HF':>8}  dtypes (HF / ours / ours)   greedy agree   |Δ logp| max / mean")
    for batch in (int(b) for b in args.batches.split(",")):
        ps = prompts(batch * args.rounds)
        sides = {"hf": HFBackend(hf_models[hf_dtype], tok, batch_size=batch),
                 "fp32": FastBackend(model, tok, max_batch_size=batch, dtype="float32"),
                 "bf16": FastBackend(model, tok, max_batch_size=batch, dtype="bfloat16")}
        for name in ("fp32", "bf16"):
            sides[name].generate(ps[:1], SamplingParams(max_new_tokens=2))  # warm-up
        for mode in args.modes.split(","):
            sp = (SamplingParams(max_new_tokens=args.max_new_tokens) if mode == "greedy" else
                  SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=0))
            toks, secs, ids = {k: 0 for k in sides}, {k: 0.0 for k in sides}, {}
            outs_bf16 = None
            for rep in range(args.repeats):
                order = list(sides) if rep % 2 == 0 else list(reversed(sides))
                for name in order:
                    t = time.perf_counter()
                    outs = sides[name].generate(ps, sp)
                    secs[name] += time.perf_counter() - t
                    ids[name] = [c.token_ids for o in outs for c in o.completions]
                    toks[name] += sum(len(x) for x in ids[name])
                    if name == "bf16":
                        outs_bf16 = outs
            rate = {k: toks[k] / secs[k] for k in sides}
            agree = "-"
            if mode == "greedy":
                same, total = _agreement(ids["bf16"], ids["fp32"])
                agree = f"{same / max(total, 1):.1%}"
            gap = "-"
            if mode == "sampled":
                g = _teacher_forced_gap(model, outs_bf16)
                gap = f"{max(g):.4f} / {sum(g) / len(g):.5f} ({len(g)} tok)"
            print(f"{batch:>5} {mode:>8} {rate['hf']:>9.1f} {rate['fp32']:>10.1f} {rate['bf16']:>10.1f} "
                  f"{rate['bf16'] / rate['fp32']:>8.2f}× {rate['fp32'] / rate['hf']:>7.2f}× {rate['bf16'] / rate['hf']:>7.2f}×"
                  f"  {hf_dtype} / float32 / bfloat16   {agree:>12}   {gap}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
