"""How often a judge's pairs agree with the verifiers: for pairs.jsonl from `tulu data prefs` on prompts that
carry a ground truth, verify chosen and rejected and count the pairs where the verifier prefers chosen (chosen
passes, rejected fails), prefers rejected, or cannot tell (both pass or both fail).

    python benchmarks/prefs_agreement.py runs/prefs_demo/prefs synthetic:constraints=200   (the same --prompts)
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from tulu.curate import load_prompts
from tulu.verifiers.base import verify


def main(folder: str, sources: list[str], seed: int = 0) -> None:
    pairs = [json.loads(x) for x in (Path(folder) / "pairs.jsonl").read_text().splitlines() if x.strip()]
    prompts = {rec["id"]: rec for rec in load_prompts(sources, seed)}
    verdict = Counter()
    for p in pairs:
        rec = prompts.get(p["id"])
        if rec is None or "ground_truth" not in rec:
            verdict["no ground truth"] += 1
            continue
        c = verify(rec["verifier"], p["chosen"][0]["content"], rec["ground_truth"]).score
        r = verify(rec["verifier"], p["rejected"][0]["content"], rec["ground_truth"]).score
        verdict["verifier prefers chosen" if c > r else "verifier prefers rejected" if r > c else "verifier tie"] += 1
    total = sum(verdict.values())
    for k, v in sorted(verdict.items()):
        print(f"{k}: {v}/{total} ({100 * v / max(total, 1):.1f}%)")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
