"""The run report: everything a reader needs about one or several runs, as one JSON-able dict plus PNG plots,
rendered to ``report.md``, ``report.json`` and one self-contained ``report.html`` (plots inlined as base64).

Sections: a plain verdict (which deltas are significant, which within noise), eval tables per suite with
paired significance and a contamination column, the RLVR stage's held-out check, training curves per stage,
the decontamination matrix, samples side by side, run facts, and (for several runs) the runs side by side."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from tulu.report import contamination, curves, samples, significance
from tulu.report.facts import facts_rows
from tulu.report.rundata import RunData
from tulu.report.tables import SUITE_ORDER, Run
from tulu.utils import atomic_path, atomic_write_json, atomic_write_text

PIPELINE_KEYS = {"data": None, "decontam": ("summary",), "sft": ("steps", "examples", "first_nll_per_token",
                                                                 "final_nll_per_token"),
                 "dpo": ("train_pairs", "eval_pairs", "accuracy_before", "accuracy_after", "steps"),
                 "rlvr": ("algorithm", "steps", "prompts", "final_reward", "heldout_before", "heldout_after")}


def size_phrase(results: dict) -> str:
    """How many items of each task an eval ran, in words ("" when every item): "first 20 items of each task",
    "first 300 items of gsm8k; every item of the other tasks"."""
    limit, per = results.get("limit"), results.get("task_limits") or {}
    if not per:
        return f"first {limit} items of each task" if limit else ""
    parts = [f"first {n} items of {t}" if n else f"every item of {t}" for t, n in sorted(per.items())]
    rest = f"first {limit} items of the other tasks" if limit else "every item of the other tasks"
    return "; ".join(parts + [rest])


def _eval_ids(run: RunData, task: str) -> list[str]:
    for e in run.evals:
        g = e.generations(task)
        if g:
            return list(g)
    return []


def run_section(run: RunData, samples_per_task: int = 3) -> dict[str, Any]:
    """The per-run part of the report (JSON-able)."""
    stages = run.stages
    overlap = contamination.benchmark_overlap(run.decontam) if run.decontam else None
    tasks = list(dict.fromkeys(t for e in run.evals for t in e.results["tasks"]))
    contam = {t: contamination.column(t, _eval_ids(run, t), run.decontam, overlap) for t in tasks}
    rows = significance.task_rows(run, contam)
    avgs = significance.average_rows(run, rows)
    suites = []
    for suite in sorted({r["suite"] for r in rows}, key=lambda s: SUITE_ORDER.get(s, 3)):
        suites.append({"suite": suite or "other", "rows": [r for r in rows if r["suite"] == suite]
                       + [a for a in avgs if a["suite"] == suite]})
    limits = sorted({size_phrase(e.results) for e in run.evals} - {""})
    caps = sorted({e.results.get("max_new_tokens_cap") for e in run.evals if e.results.get("max_new_tokens_cap")})
    section = {
        "label": run.label, "root": str(run.root) if run.root else None, "stages": stages,
        "eval": {"suites": suites, "noise": significance.noise_summary(rows + avgs, stages),
                 "overall": significance.overall_summary(rows + avgs, stages),
                 "limit": limits, "max_new_tokens_cap": caps},
        "rlvr_heldout": significance.heldout_rlvr_delta(run),
        "dpo_heldout": curves.dpo_heldout_points({run.label: run.summaries["dpo"]}).get(run.label)
        if "dpo" in run.summaries else None,
        "contamination": contamination.matrix(run.decontam) if run.decontam else None,
        "samples": samples.samples(run, samples_per_task),
        "facts": facts_rows(run.facts) if run.facts else [],
        "pipeline": {s: {k: run.done[s].get(k) for k in keys} if keys else
                     {k: v.get("records") for k, v in run.done[s].items() if isinstance(v, dict)}
                     for s, keys in PIPELINE_KEYS.items() if s in run.done},
    }
    section["verdict"] = verdict(section)
    return section


def verdict(section: dict[str, Any]) -> list[str]:
    """Plain sentences, most telling first: the whole recipe (final model against the first stage), the
    significant stage-to-stage deltas and any significant fall, the training stages' own held-out checks, then
    the deltas within noise at this eval size."""
    out = []
    noise = section["eval"]["noise"]
    overall = section["eval"].get("overall")
    if overall and any(overall.values()):
        stages = section["stages"]
        parts = [f"{what}: {'; '.join(overall[key])}" for key, what in (
            ("rose", "significantly higher"), ("fell", "significantly LOWER"), ("within_noise", "within noise"))
            if overall[key]]
        out.append(f"{stages[-1]} (the final model) against {stages[0]}: " + " · ".join(parts) + ".")
    total = len(noise["significant"]) + len(noise["within_noise"])
    if total and noise["significant"]:
        out.append("Significant stage-to-stage deltas (p < 0.05): " + "; ".join(noise["significant"]) + ".")
        hurt = [s for s in noise["significant"] if "(-" in s]
        if hurt:
            out.append("A stage significantly lowered a score: " + "; ".join(hurt) + ".")
    elif total:
        out.append("No delta is significant at 0.05: at this size the eval cannot tell these models apart.")
    h = section.get("rlvr_heldout")
    if h and h["rows"]:
        r = h["rows"][0]
        out.append(f"RLVR's own held-out check ({r['n']} generator prompts, greedy): {r['before']:.1f} → "
                   f"{r['after']:.1f} ({r['delta']:+.1f}, McNemar p={significance.fmt_p(r['p_value'])}, "
                   f"{'significant' if r['significant'] else 'within noise'}).")
    d = section.get("dpo_heldout")
    if d:
        out.append(f"DPO's held-out preference accuracy {d['before']:.2f} → {d['after']:.2f} (implicit reward of "
                   "chosen above rejected on held-out pairs; before training every reward is 0, so only strict wins count).")
    if total:
        ns = sorted({r["values"][k]["n"] for s in section["eval"]["suites"] for r in s["rows"]
                     for k in range(len(r["values"])) if r["values"][k] and r["values"][k].get("n")})
        size = f"{ns[0]}–{ns[-1]}" if len(ns) > 1 else (str(ns[0]) if ns else "?")
        out.append(f"{len(noise['within_noise'])} of {total} stage-to-stage deltas are within noise at this size "
                   f"({size} items a task; p ≥ 0.05): " + ("; ".join(noise["within_noise"]) or "none") + ".")
    return out


def build(runs: list[RunData], title: str = "tulu run report", samples_per_task: int = 3,
          plot: bool = True) -> tuple[dict, dict[str, bytes]]:
    """The report dict and its plots (file name -> PNG bytes; none with ``plot=False``)."""
    from tulu.report.plots import headline_bars

    report: dict[str, Any] = {"title": title, "generated": time.strftime("%Y-%m-%d %H:%M %Z"),
                              "alpha": significance.ALPHA, "runs": [], "curves": {}, "cross_run": None}
    plots: dict[str, bytes] = {}
    for k, run in enumerate(runs):
        sec = run_section(run, samples_per_task)
        ran = [e for e in run.evals if any(not t.get("skipped") for t in e.results["tasks"].values())]
        if ran and plot:
            name = f"headline_{k}.png"
            plots[name] = headline_bars([Run(e.stage, e.results) for e in ran])
            sec["headline_plot"] = name
        report["runs"].append(sec)
    for stage in ("sft", "dpo", "rlvr"):
        hists = {r.label: r.histories[stage] for r in runs if r.histories.get(stage)}
        extra = curves.dpo_heldout_points({r.label: r.summaries["dpo"] for r in runs if "dpo" in r.summaries}) \
            if stage == "dpo" else None
        rows = curves.summary_rows(stage, hists)
        png = curves.stage_figure(stage, hists, extra) if hists and plot else None
        if png is None and not rows:
            continue
        name = f"curves_{stage}.png" if png else None
        if png:
            plots[name] = png
        report["curves"][stage] = {"plot": name, "rows": rows}
    if len(runs) > 1:
        report["cross_run"] = {"labels": [r.label for r in runs], "rows": significance.cross_run_rows(runs)}
    return report, plots


def write(runs: list[RunData], output: str | os.PathLike, title: str = "tulu run report",
          samples_per_task: int = 3, plot: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` (+ its PNGs) and the self-contained ``report.html`` into ``output``."""
    from tulu.report.markdown import render_markdown
    from tulu.report.page import render_page

    out = Path(output)
    report, plots = build(runs, title, samples_per_task, plot)
    paths = {"json": atomic_write_json(out / "report.json", report)}
    for name, png in plots.items():
        with atomic_path(out / name) as tmp:
            tmp.write_bytes(png)
    paths["markdown"] = atomic_write_text(out / "report.md", render_markdown(report))
    paths["html"] = atomic_write_text(out / "report.html", render_page(report, plots))
    return paths
