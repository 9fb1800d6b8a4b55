"""Held-out preference accuracy of a pipeline's DPO stage, before -> after, on the same pairs: how often the model
prefers the chosen response by its own mean per-token log-prob (the quantity length-normalised DPO moves),
for the starting model and for the trained one, with an exact McNemar test on the paired wins.

The DPO stage's own "implicit-reward accuracy" starts at 0 by construction (the untrained policy equals the
reference, so every implicit reward is 0 and no pair is a strict win); this measure has a real "before".

    python benchmarks/prefs_heldout.py runs/prefs_demo/pipeline
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TULU_PROGRESS", "0")

import torch  # noqa: E402


def heldout_pairs(run: Path, tokenizer):
    """The DPO stage's held-out pairs, rebuilt as `tulu dpo` split them (same file, seed and fraction)."""
    from tulu.data.mixing import build_mixture, split_records
    from tulu.data.preferences import encode_pairs

    cfg = json.loads((run / "pipeline_config.json").read_text())["dpo"]
    files = json.loads((run / "decontam" / "DONE.json").read_text())["files"] if (run / "decontam").is_dir() else {}
    source = files.get("prefs") or str(run / "data" / "prefs.jsonl")
    seed = cfg["train"]["seed"]
    records = build_mixture({source: 1.0}, kind="preference", seed=seed).records
    _, held = split_records(records, cfg["data"]["eval_fraction"], seed)
    pairs, dropped = encode_pairs(held, tokenizer, cfg["data"]["template"], cfg["data"]["max_length"])
    return pairs, dropped, source


@torch.no_grad()
def wins(model_path: str, pairs, pad_token_id: int) -> list[int]:
    """1 where the model's mean log-prob per response token is higher for chosen than for rejected."""
    from tulu.models import load_model_and_tokenizer
    from tulu.train.reference import collate_pairs, policy_logps

    model, _ = load_model_and_tokenizer(model_path, dtype="float32", device="cpu")
    model.eval()
    out = []
    for i in range(0, len(pairs), 8):
        lp = policy_logps(model, collate_pairs(pairs[i:i + 8], pad_token_id, None, "padded"))
        c, r = lp.chosen / lp.chosen_tokens, lp.rejected / lp.rejected_tokens
        out += [int(x > y) for x, y in zip(c.tolist(), r.tolist())]
    return out


def main(run_dir: str) -> None:
    from tulu.eval.stats import mcnemar_exact
    from tulu.models import load_model_and_tokenizer

    run = Path(run_dir)
    done = json.loads((run / "dpo" / "DONE.json").read_text())
    start = done.get("start_model") or json.loads((run / "pipeline_config.json").read_text())["base_model"]
    _, tok = load_model_and_tokenizer(start, dtype="float32", device="cpu")
    pairs, dropped, source = heldout_pairs(run, tok)
    before = wins(start, pairs, tok.pad_token_id)
    after = wins(str(run / "dpo" / "model"), pairs, tok.pad_token_id)
    res = mcnemar_exact(before, after)
    print(f"held-out pairs: {len(pairs)} from {source} ({dropped} dropped by truncation)")
    print(f"prefers chosen by mean log-prob per token: {start}: {100 * res.before:.1f}% -> DPO model: "
          f"{100 * res.after:.1f}%  ({res.discordant[0]} pairs gained, {res.discordant[1]} lost; exact McNemar "
          f"p = {res.p_value:.3g})")


if __name__ == "__main__":
    main(sys.argv[1])
