"""Load test of `tulu serve`: N concurrent streaming clients against the same requests served one at a time.

One process starts the server (uvicorn in a thread, the model's continuous-batching engine in its own
thread) on loopback and drives it with asyncio + aiohttp clients. Every request is a streamed
``/v1/chat/completions`` with its own prompt and seed (half greedy, half sampled at T 0.8 / top-p 0.95),
at most ``--max-tokens`` tokens.

1. **one at a time**: each request alone, in turn (the engine decodes a batch of one);
2. **concurrent**: all ``--clients`` requests, their starts spread evenly over ``--arrival-s`` seconds, so
   most arrive while others are decoding and join the running batch.

It checks that every concurrent request completed with exactly the answer (text and finish reason) it
got alone - none lost, none mixed up - and prints p50/p99 time to first token, p50/p99 total latency and
aggregate completion tokens/s of both phases, and their ratio (the gain from batching). Loops are bounded
in count (one request per client per phase) and time (``--timeout-s``); only 127.0.0.1 is contacted.

    python benchmarks/serve_load.py                          # embedded model, 64 clients, 64 tokens (~3 min)
    python benchmarks/serve_load.py --clients 8 --max-tokens 16 --model tiny   # a quick check
    python benchmarks/serve_load.py --json out.json          # also write the figures

Exit status 1 when an answer is lost or differs. Exact equality holds with the compiled CPU kernels (a
row's logits do not depend on its batch); without them, sampled rows may differ by a flipped draw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TULU_PROGRESS", "0")

TOPICS = ["the ocean", "a lighthouse keeper", "the history of bread", "how rain forms", "a robot learning to paint",
          "the moon landing", "a city at night", "why cats purr", "a long train journey", "the invention of paper",
          "a mountain village", "the life of a bee", "an old library", "volcanoes", "a chess tournament",
          "the northern lights"]
KINDS = ["Write a short story about", "Explain to a child", "List three facts about", "Write a poem about"]


def make_requests(model: str, count: int, max_tokens: int) -> list[dict]:
    reqs = []
    for i in range(count):
        body = {"model": model, "stream": True, "max_tokens": max_tokens, "seed": 1000 + i,
                "messages": [{"role": "user", "content": f"{KINDS[i % 4]} {TOPICS[i % len(TOPICS)]}."}]}
        body.update({"temperature": 0.0} if i % 2 == 0 else {"temperature": 0.8, "top_p": 0.95})
        reqs.append(body)
    return reqs


@dataclass
class Result:
    text: str
    finish: str | None
    tokens: int
    ttft: float
    latency: float


async def stream_one(session, url: str, body: dict, delay: float) -> Result:
    await asyncio.sleep(delay)
    t0 = time.perf_counter()
    ttft, text, finish, tokens = None, "", None, 0
    async with session.post(url, json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {(await resp.text())[:300]}")
        async for raw in resp.content:
            line = raw.strip()
            if not line.startswith(b"data: "):
                continue
            if line == b"data: [DONE]":
                break
            obj = json.loads(line[6:])
            if "error" in obj:
                raise RuntimeError(obj["error"]["message"])
            for ch in obj["choices"]:
                if ch["delta"].get("content"):
                    ttft = ttft if ttft is not None else time.perf_counter() - t0
                    text += ch["delta"]["content"]
                finish = ch["finish_reason"] or finish
            if obj.get("usage"):
                tokens = obj["usage"]["completion_tokens"]
    return Result(text, finish, tokens, ttft if ttft is not None else time.perf_counter() - t0,
                  time.perf_counter() - t0)


async def run_phase(url: str, reqs: list[dict], concurrent: bool, arrival_s: float, timeout_s: float):
    import aiohttp

    conn = aiohttp.TCPConnector(limit=len(reqs) + 4)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        t0 = time.perf_counter()
        if concurrent:
            spread = arrival_s / max(len(reqs) - 1, 1)
            results = await asyncio.wait_for(asyncio.gather(
                *(stream_one(session, url, r, i * spread) for i, r in enumerate(reqs)), return_exceptions=True),
                timeout_s)
        else:
            results = []
            for r in reqs:
                try:
                    results.append(await asyncio.wait_for(stream_one(session, url, r, 0.0), timeout_s))
                except Exception as exc:  # noqa: BLE001 - counted as a lost request below
                    results.append(exc)
        return results, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(results: list, wall: float) -> dict:
    ok = [r for r in results if isinstance(r, Result)]
    tokens = sum(r.tokens for r in ok)
    return {"completed": len(ok), "failed": len(results) - len(ok), "wall_s": round(wall, 2),
            "completion_tokens": tokens, "tokens_per_s": round(tokens / wall, 1),
            "ttft_p50_s": round(pct([r.ttft for r in ok], 0.5), 3), "ttft_p99_s": round(pct([r.ttft for r in ok], 0.99), 3),
            "latency_p50_s": round(pct([r.latency for r in ok], 0.5), 3),
            "latency_p99_s": round(pct([r.latency for r in ok], 0.99), 3)}


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
        flags = next((ln.split(":", 1)[1].split() for ln in out.splitlines() if ln.startswith("Flags")), [])
        return f"{model}, {os.cpu_count()} CPUs, avx2={'avx2' in flags}, avx512_bf16={'avx512_bf16' in flags}"
    except OSError:
        return platform.processor() or "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="embedded", help="'embedded', a model folder, or 'tiny' (random, for a quick check)")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--max-batch-size", type=int, default=None, help="engine slots (default: --clients)")
    ap.add_argument("--arrival-s", type=float, default=1.0, help="concurrent starts are spread over this many seconds")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="bound on each phase")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args(argv)

    import torch

    from tulu.models import load_model_and_tokenizer, load_tokenizer, tiny_model
    from tulu.rollout import kernels
    from tulu.serve.app import create_app
    from tulu.serve.engine import FastEngine
    from tulu.serve.server import ServerThread

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "tiny":
        model, tok = tiny_model(0, tokenizer=load_tokenizer("embedded"))
    else:
        model, tok = load_model_and_tokenizer(args.model, dtype="float32", device="cpu")
    slots = args.max_batch_size or args.clients
    engine = FastEngine("bench", model, tok, max_batch_size=slots, max_model_len=512)
    print(f"model {args.model}; {args.clients} clients x <= {args.max_tokens} tokens; engine slots {engine.slots}; "
          f"compiled kernels: {kernels.available()}; torch threads {torch.get_num_threads()}")
    print(f"machine: {cpu_name()}; python {platform.python_version()}, torch {torch.__version__}")
    reqs = make_requests("bench", args.clients, args.max_tokens)
    with ServerThread(create_app({"bench": engine})) as srv:
        url = srv.url + "/v1/chat/completions"
        asyncio.run(run_phase(url, reqs[:2], False, 0, args.timeout_s))  # warm-up (first-call allocations)
        alone, wall_alone = asyncio.run(run_phase(url, reqs, False, 0, args.timeout_s))
        together, wall_together = asyncio.run(run_phase(url, reqs, True, args.arrival_s, args.timeout_s))
        stats = engine.stats()
    engine.close()

    mismatched = [i for i, (a, b) in enumerate(zip(alone, together))
                  if not (isinstance(a, Result) and isinstance(b, Result) and (a.text, a.finish) == (b.text, b.finish))]
    s_alone, s_together = summary(alone, wall_alone), summary(together, wall_together)
    ratio = s_together["tokens_per_s"] / s_alone["tokens_per_s"] if s_alone["tokens_per_s"] else float("nan")
    print("\n| phase | completed | wall s | tokens | tokens/s | TTFT p50 / p99 s | latency p50 / p99 s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, s in (("one at a time", s_alone), (f"{args.clients} concurrent", s_together)):
        print(f"| {name} | {s['completed']}/{args.clients} | {s['wall_s']} | {s['completion_tokens']} | "
              f"{s['tokens_per_s']} | {s['ttft_p50_s']} / {s['ttft_p99_s']} | {s['latency_p50_s']} / {s['latency_p99_s']} |")
    print(f"\naggregate tokens/s, concurrent vs one at a time: {ratio:.2f}×")
    print(f"peak running rows {stats['peak_rows']}; answers equal to the lone run: {args.clients - len(mismatched)}/"
          f"{args.clients}" + (f" (differ: {mismatched[:10]})" if mismatched else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "machine": cpu_name(), "one_at_a_time": s_alone,
                       "concurrent": s_together, "ratio": ratio, "mismatched": mismatched,
                       "peak_rows": stats["peak_rows"],
                       "examples": [asdict(r) for r in together[:2] if isinstance(r, Result)]}, f, indent=2)
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
