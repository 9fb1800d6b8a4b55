"""`tulu generate`: completions for a JSONL file of prompts.

Each input line holds ``messages`` (chat), ``prompt`` (a string, no chat template) or
``prompt_token_ids``; other fields are copied to the output, which adds ``completions``: a list of
``{"text", "finish_reason", "token_ids", "logprobs"}`` (ids and log-probs with ``--token-ids``).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import time
from pathlib import Path

from tulu.data.formats import DataError, read_jsonl
from tulu.rollout.base import SamplingParams

log = logging.getLogger(__name__)


class InputError(ValueError):
    pass


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="embedded", help="model folder, hub id, or 'embedded' (default)")
    p.add_argument("--input", "-i", required=True, help="JSONL with messages / prompt / prompt_token_ids per line")
    p.add_argument("--output", "-o", required=True, help="JSONL to write (atomically)")
    p.add_argument("--backend", default="auto", choices=["auto", "fast", "hf", "vllm", "openai"])
    p.add_argument("--base-url", default="http://127.0.0.1:8000/v1", help="server URL for --backend openai")
    p.add_argument("--n", type=int, default=1, help="samples per prompt")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=32, help="max running sequences (fast) / batch (hf)")
    p.add_argument("--limit", type=int, default=None, help="only the first N prompts")
    p.add_argument("--token-ids", action="store_true", help="also write token ids and log-probs")


def read_prompts(path: str | Path, limit: int | None = None) -> list[tuple[dict, object]]:
    """(record, prompt) pairs; errors name the file, line and field."""
    out = []
    try:  # islice keeps the read lazy: lines past --limit are never parsed
        for where, rec in itertools.islice(read_jsonl(path), limit):
            if "messages" in rec:
                msgs = rec["messages"]
                if not isinstance(msgs, list) or not msgs or not all(
                        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                        for m in msgs):
                    raise InputError(f"{where}: messages: expected a non-empty list of {{role, content}} strings")
                out.append((rec, msgs))
            elif "prompt" in rec:
                if not isinstance(rec["prompt"], str):
                    raise InputError(f"{where}: prompt: expected a string")
                out.append((rec, rec["prompt"]))
            elif "prompt_token_ids" in rec:
                ids = rec["prompt_token_ids"]
                if not isinstance(ids, list) or not ids or not all(isinstance(t, int) for t in ids):
                    raise InputError(f"{where}: prompt_token_ids: expected a non-empty list of integers")
                out.append((rec, ids))
            else:
                raise InputError(f"{where}: messages: missing (or give prompt / prompt_token_ids)")
    except DataError as exc:
        raise InputError(str(exc)) from None
    return out


def main(args: argparse.Namespace) -> int:
    from tulu.rollout import get_backend
    from tulu.utils import atomic_write_jsonl

    try:
        pairs = read_prompts(args.input, args.limit)
        params = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                max_new_tokens=args.max_new_tokens, stop=list(args.stop), seed=args.seed,
                                logprobs=args.token_ids)
    except (InputError, ValueError, OSError) as exc:
        print(f"tulu generate: error: {exc}", file=sys.stderr)
        return 2
    if args.backend == "openai":
        backend = get_backend("openai", args.model, None, base_url=args.base_url)
    else:
        size = {"hf": {"batch_size": args.batch_size}, "fast": {"max_batch_size": args.batch_size}}
        kw = size.get(args.backend, {})
        if args.backend == "auto":
            from tulu.models import load_model_and_tokenizer
            from tulu.rollout.llama import supports

            model, tok = load_model_and_tokenizer(args.model)
            name = "fast" if supports(model) is None else "hf"
            backend = get_backend(name, model, tok, **size[name])
        else:
            backend = get_backend(args.backend, args.model, None, **kw)
    start = time.perf_counter()
    with backend:
        outs = backend.generate([p for _, p in pairs], params, progress=True)
    secs = time.perf_counter() - start
    ntok = 0
    rows = []
    for (rec, _), out in zip(pairs, outs):
        comps = []
        for c in out.completions:
            ntok += len(c.token_ids)
            item = {"text": c.text, "finish_reason": c.finish_reason}
            if args.token_ids:
                item.update(token_ids=c.token_ids, logprobs=c.logprobs)
            comps.append(item)
        rows.append({**rec, "completions": comps})
    atomic_write_jsonl(args.output, rows)
    print(f"wrote {len(rows)} prompts x {params.n} samples to {args.output} "
          f"({ntok} tokens in {secs:.1f}s, {ntok / max(secs, 1e-9):.1f} tok/s, backend {backend.name})")
    return 0
