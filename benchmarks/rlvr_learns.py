"""Did an RLVR run learn? Reads a `tulu rlvr` run folder and prints the evidence.

- The training reward per quarter of the run, overall and per verifier, with the stop rate and response length.
- Held-out verifiable accuracy before and after, per verifier. The prompts come from the same generators but
  never equal a training prompt. Each row carries an exact McNemar test on the same prompts (tulu.eval.stats).
- With ``--eval BEFORE AFTER``: two `tulu eval` output folders (the starting model and the trained one), compared
  item by item on every task both ran (IFEval, IFBench, ...): each metric's change with a paired test.

    tulu rlvr recipes/embedded_cpu_rlvr.yaml
    tulu eval --model embedded --tasks ifeval,ifbench --output runs/ifeval_rlvr/base
    tulu eval --model runs/embedded_cpu_rlvr/model --tasks ifeval,ifbench --output runs/ifeval_rlvr/rlvr
    python benchmarks/rlvr_learns.py runs/embedded_cpu_rlvr --eval runs/ifeval_rlvr/base runs/ifeval_rlvr/rlvr
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


def per_item(eval_dir: Path, task: str) -> dict[str, dict]:
    """Item id -> per-item scores, from a `tulu eval` output's ``generations/<task>.jsonl``."""
    path = eval_dir / "generations" / f"{task}.jsonl"
    return {r["id"]: r["scores"] for r in map(json.loads, path.read_text().splitlines()) if r}


def compare_evals(before_dir: Path, after_dir: Path) -> None:
    """Every task both folders ran, item by item: the 0/1 prompt-level metrics with McNemar's exact test."""
    b_res = json.loads((before_dir / "results.json").read_text())["tasks"]
    a_res = json.loads((after_dir / "results.json").read_text())["tasks"]
    print(f"\n`tulu eval` before ({before_dir}) → after ({after_dir}), paired on the same items:")
    print("| task | metric | n | before | after | delta | test | improved / worsened | p |")
    print("|---|---|---:|---:|---:|---:|---|---:|---:|")
    for task in sorted(set(b_res) & set(a_res)):
        if b_res[task].get("skipped") or a_res[task].get("skipped"):
            continue
        b, a = per_item(before_dir, task), per_item(after_dir, task)
        ids = sorted(set(b) & set(a))
        keys = [k for k, v in b[ids[0]].items() if isinstance(v, (int, float)) and not k.startswith("inst_")]
        for k in keys:
            r = paired_test([float(b[i][k]) for i in ids], [float(a[i][k]) for i in ids])
            flips = f"{r.discordant[0]} / {r.discordant[1]}" if r.discordant else "—"
            print(f"| {task} | {k} | {r.n} | {100 * r.before:.1f} | {100 * r.after:.1f} | {100 * r.delta:+.1f} | "
                  f"{r.test} | {flips} | {r.p_value:.3g} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a `tulu rlvr` output folder")
    ap.add_argument("--eval", nargs=2, type=Path, metavar=("BEFORE", "AFTER"),
                    help="two `tulu eval` output folders to compare item by item")
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
    if args.eval:
        compare_evals(*args.eval)
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
