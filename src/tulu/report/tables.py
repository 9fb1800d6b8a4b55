"""Tables over one or several eval runs (``results.json`` from ``tulu eval``): headline metrics per task,
side by side, with the change from the previous run (e.g. base -> SFT -> DPO -> RLVR)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUITE_ORDER = {"dev": 0, "extra": 1, "unseen": 2}


@dataclass
class Run:
    label: str
    results: dict[str, Any]


def load_results(path: str | os.PathLike) -> dict[str, Any]:
    """``results.json`` from a run folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no results.json (run `tulu eval ... --output DIR` first)")
    with open(p, encoding="utf-8") as fh:
        data = json.load(fh)
    if "tasks" not in data:
        raise ValueError(f"{p}: not a tulu eval results file (no 'tasks' field)")
    return data


def task_order(runs: list[Run]) -> list[str]:
    seen: dict[str, tuple[int, int]] = {}
    for run in runs:
        for i, (name, t) in enumerate(run.results["tasks"].items()):
            seen.setdefault(name, (SUITE_ORDER.get(t.get("suite") or "", 3), i))
    return sorted(seen, key=lambda n: seen[n])


def headline(task: dict | None) -> tuple[float, float] | None:
    if not task or task.get("skipped"):
        return None
    m = task.get("metrics", {}).get(task.get("headline"))
    return (m["value"], m["stderr"]) if m else None


@dataclass
class Row:
    task: str
    suite: str
    metric: str
    n: list[int | None]
    values: list[tuple[float, float] | None]  # (value, stderr) per run; None when skipped / absent
    deltas: list[float | None]  # value minus the previous run's value
    notes: list[str | None]  # skip reasons per run


def _deltas(values: list[tuple[float, float] | None]) -> list[float | None]:
    out: list[float | None] = [None]
    for prev, cur in zip(values, values[1:]):
        out.append(cur[0] - prev[0] if prev is not None and cur is not None else None)
    return out


def comparison_rows(runs: list[Run]) -> list[Row]:
    rows = []
    for name in task_order(runs):
        ts = [run.results["tasks"].get(name) for run in runs]
        any_t = next(t for t in ts if t)
        values = [headline(t) for t in ts]
        rows.append(Row(name, any_t.get("suite") or "", any_t.get("headline") or "",
                        [t.get("n") if t and not t.get("skipped") else None for t in ts], values, _deltas(values),
                        [t.get("skipped") if t else "not run" for t in ts]))
    return rows


def average_rows(runs: list[Run]) -> list[Row]:
    suites = sorted({s for run in runs for s in run.results.get("averages", {})}, key=lambda s: SUITE_ORDER.get(s, 3))
    rows = []
    for s in suites:
        avs = [run.results.get("averages", {}).get(s) for run in runs]
        values = [(a["value"], a["stderr"]) if a else None for a in avs]
        notes = [(f"over {len(a['tasks'])} tasks" + (f"; missing {', '.join(a['missing'])}" if a["missing"] else ""))
                 if a else None for a in avs]
        rows.append(Row(f"{s} average", s, "mean of headlines", [None] * len(runs), values, _deltas(values), notes))
    return rows


def fmt_value(v: tuple[float, float] | None) -> str:
    return "—" if v is None else f"{v[0]:.1f} ± {v[1]:.1f}"


def fmt_delta(d: float | None) -> str:
    return "" if d is None else f" ({d:+.1f})"


def markdown_table(runs: list[Run]) -> str:
    """Headline metric per task and suite averages, one column per run, deltas against the column before."""
    head = "| task | suite | metric | " + " | ".join(r.label for r in runs) + " |"
    sep = "|---|---|---|" + "---:|" * len(runs)
    lines = [head, sep]
    for row in comparison_rows(runs) + average_rows(runs):
        cells = [fmt_value(v) + fmt_delta(d) for v, d in zip(row.values, row.deltas)]
        lines.append(f"| {row.task} | {row.suite} | {row.metric} | " + " | ".join(cells) + " |")
    skipped = sorted({(row.task, note) for row in comparison_rows(runs) for v, note in zip(row.values, row.notes)
                      if v is None and note})
    if skipped:
        lines += ["", "Not run:"] + [f"- {task}: {note.removeprefix(task + ': ')}" for task, note in skipped]
    return "\n".join(lines) + "\n"


def detail_table(results: dict[str, Any]) -> str:
    """Every metric of every task of one run (markdown)."""
    lines = ["| task | metric | value | n |", "|---|---|---:|---:|"]
    for name, t in results["tasks"].items():
        if t.get("skipped"):
            continue
        for k, m in t["metrics"].items():
            lines.append(f"| {name} | {k} | {m['value']:.2f} ± {m['stderr']:.2f} | {t['n']} |")
    return "\n".join(lines) + "\n"
