"""Contamination for the report: the decontamination stage's matrix (training dataset × benchmark hits, flagged
datasets, removed counts) and the eval tables' contamination column.

The column gives, per evaluated task, the share of its benchmark's items that overlap any training dataset the
run used (the union over datasets, before decontamination), how many of the *evaluated* items are among them,
and what the stage did about it (``remove``: the matching training instances were dropped before training, so
the data the models saw no longer matches; ``none``: they were kept)."""

from __future__ import annotations

from typing import Any


def task_benchmark(task: str) -> str | None:
    """The benchmark (decontamination index name) an eval task draws its items from, or None (generated)."""
    try:
        from tulu.eval.tasks import TASKS
    except ImportError:  # pragma: no cover - the eval package is part of tulu
        return None
    cls = TASKS.get(task)
    bench = getattr(cls, "benchmark", "") if cls else task
    return bench or None


def benchmark_overlap(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """benchmark -> {"ids": set of overlapping eval ids (union over datasets) or None, "hits": count or
    (low, high) bounds, "total": benchmark size, "datasets": names that hit it}.

    Reports written before ``hit_ids`` existed list only a few example ids: the union is exact when every
    dataset's hits are all among its examples, else the count is bounded by (largest single dataset, sum)."""
    out: dict[str, dict[str, Any]] = {}
    for name, info in (report.get("benchmarks") or {}).items():
        out[name] = {"ids": set(), "exact": True, "low": 0, "high": 0, "total": info.get("instances", 0),
                     "datasets": []}
    for ds in report.get("datasets") or []:
        for bench, row in (ds.get("benchmarks") or {}).items():
            entry = out.setdefault(bench, {"ids": set(), "exact": True, "low": 0, "high": 0,
                                           "total": row.get("total", 0), "datasets": []})
            hit = int(row.get("hit", 0))
            if not hit:
                continue
            entry["datasets"].append(ds["name"])
            ids = row.get("hit_ids")
            if ids is None:
                ex = [e["eval_id"] for e in row.get("examples", [])]
                ids = ex if len(ex) == hit else None
            if ids is None:
                entry["exact"] = False
            else:
                entry["ids"].update(str(i) for i in ids)
            entry["low"] = max(entry["low"], hit)
            entry["high"] += hit
    for entry in out.values():
        if entry["exact"]:
            entry["low"] = entry["high"] = len(entry["ids"])
        else:
            entry["low"] = max(entry["low"], len(entry["ids"]))
            entry["ids"] = None
    return out


def column(task: str, eval_ids: list[str], report: dict[str, Any] | None,
           overlap: dict[str, dict[str, Any]] | None = None) -> str:
    """The contamination cell of one eval task."""
    if report is None:
        return "no decontam stage"
    bench = task_benchmark(task)
    if bench is None:
        return "held out by construction (generated items)"
    overlap = overlap if overlap is not None else benchmark_overlap(report)
    if bench not in overlap:
        skipped = (report.get("skipped_benchmarks") or {}).get(bench)
        return "not checked (benchmark not indexed)" if skipped is None else "not checked (did not load offline)"
    e = overlap[bench]
    total = e["total"] or 0
    mode = (report.get("output") or {}).get("mode", "none")
    if e["high"] == 0:
        return f"0% of {bench} ({total} items checked)"
    if e["ids"] is not None:
        share = f"{100 * len(e['ids']) / total:.1f}% of {bench} ({len(e['ids'])}/{total})" if total else "?"
        inside = sum(1 for i in eval_ids if str(i) in e["ids"])
        evaluated = f"; {inside} of the {len(eval_ids)} evaluated items"
    else:
        share = f"{100 * e['low'] / total:.1f}–{100 * e['high'] / total:.1f}% of {bench} ({e['low']}–{e['high']}/{total})"
        evaluated = ""
    did = {"remove": "matching training instances removed before training",
           "drop": "flagged datasets dropped before training", "drop+remove": "removed/dropped before training",
           "none": "kept in the training data (mode none)"}.get(mode, mode)
    return f"{share} overlap {', '.join(e['datasets'])}{evaluated}; {did}"


def matrix(report: dict[str, Any]) -> dict[str, Any]:
    """The dataset × benchmark matrix for the report: per dataset its size, contaminating instances, removed
    count, flagged-by list, and per benchmark ``hit/total (percent)``."""
    removed = {d["name"]: d for d in (report.get("output") or {}).get("datasets", [])}
    benches = list(report.get("benchmarks") or {})
    rows = []
    for ds in report.get("datasets") or []:
        out = removed.get(ds["name"], {})
        cells = {}
        for b in benches:
            r = (ds.get("benchmarks") or {}).get(b) or {}
            cells[b] = {"hit": r.get("hit", 0), "total": r.get("total", 0), "percent": r.get("percent", 0.0),
                        "flagged": bool(r.get("flagged"))}
        rows.append({"dataset": ds["name"], "instances": ds.get("instances"),
                     "contaminating": ds.get("contaminating_instances"), "removed": out.get("removed"),
                     "dropped": out.get("dropped"), "kept": out.get("kept"), "flagged_by": ds.get("flagged_by", []),
                     "cells": cells})
    s = report.get("settings") or {}
    return {"benchmarks": benches, "rows": rows, "mode": (report.get("output") or {}).get("mode", "none"),
            "settings": f"{s.get('ngram', '?')}-gram overlap, an eval item matches when > {s.get('threshold', '?')} "
                        f"of its tokens are covered; a dataset is flagged above "
                        f"{100 * float(s.get('flag_threshold', 0.02)):.0f}% of a benchmark",
            "skipped": report.get("skipped_benchmarks") or {}}
