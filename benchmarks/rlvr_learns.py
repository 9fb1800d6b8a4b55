"""Did an RLVR run learn? Reads a `tulu rlvr` run folder and prints the evidence.

- The training reward per quarter of the run, overall and per verifier, with the stop rate and response length.
- Held-out verifiable accuracy before and after, per verifier. The prompts come from the same generators but
  never equal a training prompt. Each row carries an exact McNemar test on the same prompts (tulu.eval.stats).

    tulu rlvr recipes/embedded_cpu_rlvr.yaml
    python benchmarks/rlvr_learns.py runs/embedded_cpu_rlvr
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tulu.eval.stats import paired_test


def quarters(rows: list[dict], key: str) -> list[float | None]:
    out = []
    n = len(rows)
    for q in range(4):
        part = [r[key] for r in rows[q * n // 4:(q + 1) * n // 4] if key in r]
        out.append(sum(part) / len(part) if part else None)
    return out


def fmt(xs: list[float | None], scale: float = 1.0) -> str:
    return " → ".join("—" if x is None else f"{scale * x:.2f}" for x in xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a `tulu rlvr` output folder")
    args = ap.parse_args()
    batches = [json.loads(x) for x in (args.run / "batches.jsonl").read_text().splitlines() if x.strip()]
    summary = json.loads((args.run / "summary.json").read_text())
    print(f"run {args.run}: {summary['details']['algorithm']}, {len(batches)} batches, {summary['steps']} steps, "
          f"{summary['details'].get('seconds', 0) / 60:.1f} min")
    print("\ntraining, by quarter of the run (first → last):")
    print(f"  reward            {fmt(quarters(batches, 'reward'))}")
    verifiers = sorted({k.split('/', 1)[1] for b in batches for k in b if k.startswith("solve_rate/")})
    for v in verifiers:
        print(f"  solve rate {v:7s} {fmt(quarters(batches, f'solve_rate/{v}'))}")
    print(f"  stop rate         {fmt(quarters(batches, 'stop_rate'))}")
    print(f"  response length   {fmt(quarters(batches, 'response_length'))}")
    held = summary["details"].get("heldout") or {}
    if not held:
        print("\nno held-out prompts in this run (data.heldout)")
        return
    before, after, names = held["before"], held["after"], held["verifiers"]
    print(f"\nheld-out verifiable accuracy ({held['prompts']} prompts never trained on), before → after:")
    print("| prompts | n | before | after | delta | test | improved / worsened | p |")
    print("|---|---:|---:|---:|---:|---|---:|---:|")
    for v in [None, *sorted(set(names))]:
        idx = [i for i, n in enumerate(names) if v is None or n == v]
        r = paired_test([before[i] for i in idx], [after[i] for i in idx])
        flips = f"{r.discordant[0]} / {r.discordant[1]}" if r.discordant else "—"
        print(f"| {v or 'all'} | {r.n} | {100 * r.before:.1f} | {100 * r.after:.1f} | {100 * r.delta:+.1f} | "
              f"{r.test} | {flips} | {r.p_value:.3g} |")


if __name__ == "__main__":
    main()
