"""Tiny pipeline run folders on disk, written by hand (no model), for the run report's tests.

The eval outputs have the files `tulu eval` writes (results.json, generations/<task>.jsonl with id, prompt, gold,
responses, scores, finish_reasons); the training stages have metrics.jsonl and summary.json; the decontam stage a
report.json; the run its pipeline_config.json, run_facts.json and DONE.json markers."""

from __future__ import annotations

import json
from pathlib import Path

# who is right on which item (ids "0".."19"): hand-picked so the tests can compute the statistics by hand
GSM8K_RIGHT = {"base": {0, 1}, "sft": set(range(1, 10))}  # sft: 8 improved (2..9), 1 worsened (0)
IFEVAL_RIGHT = {"base": {0, 1, 2}, "sft": {0, 1, 3}}  # 1 improved (3), 1 worsened (2)
N = 20
IFEVAL_IDS = [str(1000 + i) for i in range(N)]


def _write_jsonl(path: Path, recs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def write_eval(folder: Path, stage: str, gsm_right: set[int], ife_right: set[int], limit: int = N) -> None:
    def metric(right, n):
        p = len(right) / n
        return {"value": 100 * p, "stderr": 100 * (p * (1 - p) / (n - 1)) ** 0.5}

    tasks = {
        "gsm8k": {"suite": "dev", "headline": "exact_match", "n": N, "skipped": None,
                  "metrics": {"exact_match": metric(gsm_right, N)}},
        "ifeval": {"suite": "dev", "headline": "prompt_loose", "n": N, "skipped": None,
                   "metrics": {"prompt_loose": metric(ife_right, N)}},
        "ifbench": {"suite": "unseen", "headline": "prompt_loose", "n": 0, "skipped": "ifbench: not asked for",
                    "metrics": {}},
    }
    avg = (tasks["gsm8k"]["metrics"]["exact_match"]["value"] + tasks["ifeval"]["metrics"]["prompt_loose"]["value"]) / 2
    results = {"version": 1, "model": f"runs/x/{stage}/model", "limit": limit, "max_new_tokens_cap": 256,
               "tasks": tasks, "averages": {"dev": {"value": avg, "stderr": 1.0, "tasks": ["gsm8k", "ifeval"],
                                                     "missing": {}}}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results))
    _write_jsonl(folder / "generations" / "gsm8k.jsonl", [
        {"id": str(i), "prompt": f"Question: what is {i} + 1?\nAnswer:", "gold": str(i + 1),
         "responses": [f"{stage} says {i + 1 if i in gsm_right else i}"],
         "scores": {"exact_match": float(i in gsm_right)}, "finish_reasons": ["stop"]} for i in range(N)])
    _write_jsonl(folder / "generations" / "ifeval.jsonl", [
        {"id": IFEVAL_IDS[i], "prompt": f"Write {i} words in lowercase.",
         "gold": {"instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
         "responses": [f"{stage} answer {i}"], "scores": {"prompt_loose": float(i in ife_right), "prompt_strict": 0.0},
         "finish_reasons": ["length" if i == 5 else "stop"]} for i in range(N)])


def decontam_report(with_ids: bool = True) -> dict:
    """sft hits ifeval items 1000 and 1005, prefs 1005 and 1012 (union: 3 of 541)."""
    def row(ids, total=541):
        r = {"hit": len(ids), "total": total, "percent": round(100 * len(ids) / total, 4), "flagged": False,
             "train_instances": len(ids), "max_overlap": 1.0, "mean_overlap": 1.0,
             "examples": [{"eval_id": i, "overlap": 1.0} for i in ids[:1]]}
        if with_ids:
            r["hit_ids"] = list(ids)
        return r

    empty = {"hit": 0, "total": 1319, "percent": 0.0, "flagged": False, "train_instances": 0, "max_overlap": 0.0,
             "mean_overlap": 0.0, "examples": [], **({"hit_ids": []} if with_ids else {})}
    return {"settings": {"ngram": 8, "threshold": 0.5, "flag_threshold": 0.02},
            "benchmarks": {"gsm8k": {"instances": 1319, "too_short": 0}, "ifeval": {"instances": 541, "too_short": 0}},
            "skipped_benchmarks": {"bbh": "bbh: needs the hub"},
            "datasets": [
                {"name": "sft", "instances": 100, "contaminating_instances": 4, "flagged": False, "flagged_by": [],
                 "benchmarks": {"gsm8k": empty, "ifeval": row(["1000", "1005"])}},
                {"name": "prefs", "instances": 50, "contaminating_instances": 2, "flagged": False, "flagged_by": [],
                 "benchmarks": {"gsm8k": empty, "ifeval": row(["1005", "1012"])}}],
            "output": {"mode": "remove", "datasets": [
                {"name": "sft", "dropped": False, "removed": 4, "kept": 96, "path": "data/sft.jsonl"},
                {"name": "prefs", "dropped": False, "removed": 2, "kept": 48, "path": "data/prefs.jsonl"}]}}


SFT_METRICS = [{"step": s, "loss": loss, "nll_per_token": nll, "lr": 1e-5}
               for s, loss, nll in ((1, 4.0, 2.0), (2, 3.0, 1.5), (3, 2.0, 1.2), (4, 1.0, 1.0))]
RLVR_METRICS = [{"step": s, "loss": 0.0, "reward": r, "reward/gsm8k": g, "reward/ifeval": f, "approx_kl": 1e-4 * s,
                 "kl_loss": 0.0, "response_length": 100 + s, "stop_rate": 0.5}
                for s, r, g, f in ((1, 1.0, 0.0, 2.0), (2, 1.5, 1.0, 2.0))]


def make_run(root: Path, *, sft_gsm: set[int] | None = None, with_ids: bool = True,
             more: dict[str, tuple[set[int], set[int]]] | None = None, base_gsm: set[int] | None = None) -> Path:
    """A pipeline run folder with base and sft evaluated (and the stages in ``more``: stage -> (gsm8k right,
    ifeval right)), SFT/DPO/RLVR logs and a decontam report."""
    root.mkdir(parents=True, exist_ok=True)
    write_eval(root / "eval" / "base", "base", base_gsm if base_gsm is not None else GSM8K_RIGHT["base"],
               IFEVAL_RIGHT["base"])
    write_eval(root / "eval" / "sft", "sft", sft_gsm if sft_gsm is not None else GSM8K_RIGHT["sft"], IFEVAL_RIGHT["sft"])
    for stage, (gsm, ife) in (more or {}).items():
        write_eval(root / "eval" / stage, stage, gsm, ife)
    (root / "pipeline_config.json").write_text(json.dumps({"seed": 7, "base_model": "tiny",
                                                           "sft": {"train": {"seed": 11}}}))
    (root / "run_facts.json").write_text(json.dumps({
        "collected": "2026-12-01 12:00:00 UTC", "git": {"commit": "abc123", "dirty": False},
        "versions": {"python": "3.11", "torch": "2.13.0"}, "cpu": {"model": "Test CPU", "flags": ["avx2"], "cores": 2},
        "threads": 2, "seed": 7}))
    _write_jsonl(root / "sft" / "metrics.jsonl", SFT_METRICS)
    _write_jsonl(root / "rlvr" / "metrics.jsonl", RLVR_METRICS)
    (root / "dpo").mkdir(exist_ok=True)
    (root / "dpo" / "summary.json").write_text(json.dumps({
        "stage": "dpo", "heldout_before": {"rewards/accuracies": 0.0, "rewards/margins": 0.0},
        "heldout_after": {"rewards/accuracies": 0.9, "rewards/margins": 2.5}, "details": {"eval_pairs": 10}}))
    _write_jsonl(root / "dpo" / "metrics.jsonl", [
        {"step": 1, "loss": 0.69, "rewards/chosen": 0.1, "rewards/rejected": -0.1, "rewards/margins": 0.2,
         "rewards/accuracies": 0.5}, {"step": 2, "loss": 0.5, "rewards/chosen": 0.3, "rewards/rejected": -0.4,
                                      "rewards/margins": 0.7, "rewards/accuracies": 0.75}])
    (root / "rlvr" / "summary.json").write_text(json.dumps({
        "stage": "rlvr", "details": {"heldout": {"prompts": 6, "before": [0, 0, 1, 0, 1, 0], "after": [1, 1, 1, 0, 1, 0],
                                                 "verifiers": ["gsm8k", "gsm8k", "gsm8k", "ifeval", "ifeval", "ifeval"]}}}))
    (root / "decontam").mkdir(exist_ok=True)
    (root / "decontam" / "report.json").write_text(json.dumps(decontam_report(with_ids)))
    for stage, secs in (("data", 1.0), ("decontam", 2.0), ("sft", 30.0), ("eval", 120.0)):
        (root / stage).mkdir(exist_ok=True)
        (root / stage / "DONE.json").write_text(json.dumps({"seconds": secs}))
    return root
