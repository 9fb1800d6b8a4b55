"""Estimate how long a bigger recipe takes from the rates a finished pipeline run measured (an estimate, not a
measurement: it assumes each stage's cost grows linearly with its examples, pairs, batches and eval items).

    python benchmarks/estimate_full_recipe.py RUN_DIR recipes/embedded_cpu_full.yaml
    python benchmarks/estimate_full_recipe.py benchmarks/results/full_recipe_rates_2026-12-01.json recipes/embedded_cpu_full.yaml

RUN_DIR is a finished `tulu pipeline recipes/embedded_cpu.yaml` run; a JSON file gives the rates directly (with
their provenance in its "source"). Rates per unit: SFT seconds per training
example, DPO seconds per training pair-epoch (the reference pass included), RLVR seconds per batch (its held-out
passes included), eval seconds per item per task and model (`results.json` generate + score). Tasks the run did
not evaluate borrow the rate of a named stand-in (IFBench: IFEval's; same prompt style and budget)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FULL_SIZES = {"ifeval": 541, "ifbench": 282, "gsm8k": 1319, "heldout_gen": 200}  # IFBench: 18 need NLTK data
STAND_IN = {"ifbench": "ifeval"}
REMOVED_SHARE = 0.05  # decontamination removes a few % of the procedural data (the demo: 20 of 480 SFT records)


def done(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "DONE.json").read_text())


def rates(run: Path) -> dict:
    cfg = json.loads((run / "pipeline_config.json").read_text())
    sft, dpo, rlvr = done(run, "sft"), done(run, "dpo"), done(run, "rlvr")
    epochs = cfg["dpo"]["train"]["num_epochs"]
    batches = rlvr["prompts"] / cfg["rlvr"]["rollout"]["prompts_per_batch"]
    out = {"sft_s_per_example": sft["seconds"] / sft["examples"],
           "dpo_s_per_pair_epoch": dpo["seconds"] / (dpo["train_pairs"] * epochs),
           "rlvr_s_per_batch": rlvr["seconds"] / batches, "fixed_s": done(run, "data")["seconds"]
           + done(run, "decontam")["seconds"], "eval_s_per_item": {}}
    per_task: dict[str, list[float]] = {}
    for res in (run / "eval").glob("*/results.json"):
        for name, t in json.loads(res.read_text())["tasks"].items():
            if not t.get("skipped") and t.get("n"):
                sec = t.get("seconds") or {}
                per_task.setdefault(name, []).append((sec.get("generate", 0) + sec.get("score", 0)) / t["n"])
    out["eval_s_per_item"] = {k: sum(v) / len(v) for k, v in per_task.items()}
    return out


def estimate(r: dict, recipe: Path) -> list[tuple[str, float, str]]:
    from tulu.config import load_config
    from tulu.pipeline import PipelineConfig

    c = load_config(PipelineConfig, recipe)
    n_sft = sum(c.sft_mixture.values()) * (1 - REMOVED_SHARE)
    pairs = sum(c.dpo_mixture.values()) * (1 - REMOVED_SHARE) * (1 - c.dpo.data.eval_fraction)
    batches = sum(c.rlvr.data.prompts.values()) / c.rlvr.rollout.prompts_per_batch
    if c.rlvr.train.max_steps:  # an optimizer-step budget: batches = steps / steps per batch
        per_batch = c.rlvr.rollout.prompts_per_batch * c.rlvr.rollout.samples_per_prompt
        batches = min(batches, c.rlvr.train.max_steps / max(1, per_batch // c.rlvr.train.effective_batch_size))
    rows = [("data + decontam", r["fixed_s"] * 1.5, "demo's time x1.5 (more records to scan)"),
            ("sft", n_sft * c.sft.train.num_epochs * r["sft_s_per_example"],
             f"{n_sft:.0f} examples x {c.sft.train.num_epochs} epochs x {r['sft_s_per_example']:.2f} s"),
            ("dpo", pairs * c.dpo.train.num_epochs * r["dpo_s_per_pair_epoch"],
             f"{pairs:.0f} pairs x {c.dpo.train.num_epochs} epochs x {r['dpo_s_per_pair_epoch']:.2f} s"),
            ("rlvr", batches * r["rlvr_s_per_batch"], f"{batches:.0f} batches x {r['rlvr_s_per_batch']:.0f} s")]
    for task in c.eval.tasks:
        rate = r["eval_s_per_item"].get(task) or r["eval_s_per_item"].get(STAND_IN.get(task, ""))
        if rate is None:
            rows.append((f"eval {task}", float("nan"), "no measured rate"))
            continue
        limit = c.eval.task_limits.get(task, c.eval.limit)
        n = FULL_SIZES.get(task, 0) if not limit else min(limit, FULL_SIZES.get(task, limit))
        src = "" if task in r["eval_s_per_item"] else f" (rate of {STAND_IN[task]})"
        rows.append((f"eval {task}", n * len(c.eval.models) * rate,
                     f"{n} items x {len(c.eval.models)} models x {rate:.2f} s{src}"))
    return rows


def main() -> None:
    run, recipe = Path(sys.argv[1]), Path(sys.argv[2])
    if run.is_file():
        r = json.loads(run.read_text())
        print(f"rates from {run}: {r.pop('source', '')}")
    else:
        r = rates(run)
    print(json.dumps({k: (round(v, 3) if isinstance(v, float) else {a: round(b, 3) for a, b in v.items()})
                      for k, v in r.items()}))
    rows = estimate(r, recipe)
    total = sum(s for _, s, _ in rows if s == s)
    print("\n| stage | estimated | from |\n|---|---:|---|")
    for name, s, how in rows:
        print(f"| {name} | {s / 60:.0f} min | {how} |")
    print(f"| **total** | **{total / 60:.0f} min ({total / 3600:.1f} h)** | an estimate at these rates |")


if __name__ == "__main__":
    main()
