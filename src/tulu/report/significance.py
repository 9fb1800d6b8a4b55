"""Stage-to-stage deltas with paired significance on the same items, for the report's eval tables.

Each row has the delta of every stage against the one before it and, with three or more stages, of the final
model against the first (``overall``: did the recipe as a whole move the score?). Every delta compares two
models on the items both answered (matched by item id in ``generations/<task>.jsonl``):

* the p-value comes from :func:`tulu.eval.stats.paired_test` (exact McNemar for 0/1 scores, the paired
  bootstrap for graded ones);
* the 95% interval is always the paired bootstrap's (:func:`tulu.eval.stats.paired_bootstrap`), so 0/1 metrics
  get an interval too;
* a suite average's delta resamples the pooled items of its tasks, each item weighted so that the weighted mean
  is the average of the task means (the suite average); the same paired bootstrap gives its interval and p.

Per-item values are the task's headline metric per item; for the few tasks whose headline is not a plain mean
over items (MMLU's macro average over subjects, IFEval's instruction-level rates) the test is on the per-item
mean, which the row says."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tulu.eval.stats import paired_bootstrap, paired_test
from tulu.report.rundata import EvalOutput, RunData
from tulu.report.tables import SUITE_ORDER

ALPHA = 0.05
BOOTSTRAP_SAMPLES = 2000


@dataclass
class Delta:
    """``after - before`` in percentage points on ``n`` shared items."""

    n: int
    delta: float
    low: float
    high: float
    p_value: float
    test: str
    discordant: tuple[int, int] | None = None
    note: str | None = None

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def compare_items(before: dict[str, float], after: dict[str, float], *, seed: int = 0,
                  weights: dict[str, float] | None = None) -> Delta | None:
    """Paired test over the ids both sides scored (values 0..1); None when they share no item."""
    ids = sorted(set(before) & set(after))
    if not ids:
        return None
    w = weights or {}
    b = [before[i] * w.get(i, 1.0) for i in ids]
    a = [after[i] * w.get(i, 1.0) for i in ids]
    test = paired_test(b, a, samples=BOOTSTRAP_SAMPLES, seed=seed)
    boot = test if test.test == "paired bootstrap" else paired_bootstrap(b, a, samples=BOOTSTRAP_SAMPLES, seed=seed)
    note = None
    if len(ids) < max(len(before), len(after)):
        note = f"on the {len(ids)} items both answered"
    return Delta(len(ids), 100 * test.delta, 100 * boot.low, 100 * boot.high, test.p_value, test.test,
                 test.discordant, note)


def _metric_items(ev: EvalOutput, task: str, metric: str | None = None) -> dict[str, float]:
    """Per-item values of ``metric`` (default: the task's headline) for ``task`` in one stage's eval."""
    t = ev.results["tasks"].get(task)
    if not t or t.get("skipped"):
        return {}
    return ev.item_scores(task, metric or t.get("headline") or "")


def _group_metrics(run: RunData, task: str, headline: str) -> list[str]:
    """The task's per-group headline metrics (``<headline>/<group>``, e.g. heldout_gen's ``accuracy/arith``)
    whose per-item scores are in the generations files, so each gets its own paired row."""
    names = sorted({m for e in run.evals for m in (e.results["tasks"].get(task) or {}).get("metrics", {})
                    if m.startswith(headline + "/")})
    return [m for m in names if any(_metric_items(e, task, m) for e in run.evals)]


def _row(run: RunData, name: str, ts: list[dict | None], metric: str, items: list[dict[str, float]]) -> dict:
    """One table row for ``metric`` of task ``name``: value per stage, stage-to-stage deltas and ``overall``."""
    values, notes = [], []
    for t, it in zip(ts, items):
        if not t or t.get("skipped"):
            values.append(None)
            notes.append((t or {}).get("skipped") or "not run")
            continue
        m = t.get("metrics", {}).get(metric)
        n = t.get("n") if metric == t.get("headline") or not it else len(it)  # a group: its own items
        values.append({"value": m["value"], "stderr": m["stderr"], "n": n} if m else None)
        notes.append(None if m else f"no {metric} metric")

    def delta(i: int, j: int, seed: int) -> dict | None:
        d = compare_items(items[i], items[j], seed=seed) if items[i] and items[j] else None
        if d is None and values[i] and values[j]:
            return untested(values[j]["value"] - values[i]["value"])
        return d.to_dict() if d else None

    mean_note = None
    for t, it in zip(ts, items):
        if t and it and t.get("metrics", {}).get(metric):
            per_item = 100 * sum(it.values()) / len(it)
            if abs(per_item - t["metrics"][metric]["value"]) > 0.05:
                mean_note = "the test is on the per-item mean, the headline aggregates otherwise"
    any_t = next(t for t in ts if t)
    return {"task": name, "suite": any_t.get("suite") or "", "metric": metric, "values": values, "notes": notes,
            "deltas": [None] + [delta(k - 1, k, k) for k in range(1, len(run.evals))],
            "overall": delta(0, len(run.evals) - 1, 99) if has_overall(run) else None, "test_note": mean_note}


def task_rows(run: RunData, contamination: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per task: headline per stage, the delta of each stage against the one before and, with three or
    more stages, of the final model against the first (``overall``), paired on the same items. A task whose
    per-item scores carry per-group headlines (``accuracy/arith``) gets one more row per group (``group``: the
    group's name; not part of the suite averages)."""
    from tulu.report.tables import task_order

    runs_like = [_RunView(e) for e in run.evals]
    rows = []
    for name in task_order(runs_like):  # type: ignore[arg-type]
        ts = [e.results["tasks"].get(name) for e in run.evals]
        headline = next(t for t in ts if t).get("headline") or ""
        row = _row(run, name, ts, headline, [_metric_items(e, name) for e in run.evals])
        rows.append({**row, "contamination": (contamination or {}).get(name)})
        for metric in _group_metrics(run, name, headline):
            sub = _row(run, name, ts, metric, [_metric_items(e, name, metric) for e in run.evals])
            rows.append({**sub, "task": f"{name} · {metric.split('/', 1)[1]}", "group": metric.split("/", 1)[1],
                         "contamination": None})
    return rows


def has_overall(run: RunData) -> bool:
    """Whether the report adds a first-to-last delta (the first stage against the final model): with three or
    more stages, where it is not one of the stage-to-stage deltas already."""
    return len(run.evals) >= 3


def _pooled_delta(run: RunData, tasks: list[dict[str, Any]], i: int, j: int, seed: int) -> Delta | None:
    """Stage ``j`` against stage ``i`` on the pooled items of ``tasks``, each item weighted so that the weighted
    mean is the mean of the task means (the suite average)."""
    before, after, weights = {}, {}, {}
    per_task = []
    for r in tasks:
        b = _metric_items(run.evals[i], r["task"])
        a = _metric_items(run.evals[j], r["task"])
        ids = set(a) & set(b)
        if ids:
            per_task.append((r["task"], b, a, ids))
    total = sum(len(ids) for *_, ids in per_task)
    for task, b, a, ids in per_task:
        for item in ids:
            key = f"{task}\x00{item}"
            before[key], after[key] = b[item], a[item]
            weights[key] = total / (len(per_task) * len(ids))
    return compare_items_bootstrap_only(before, after, weights, seed) if before else None


def average_rows(run: RunData, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per suite with at least two tasks that ran in every stage: the mean of their headlines and its paired
    delta."""
    out = []
    suites = sorted({r["suite"] for r in rows if r["suite"]}, key=lambda s: SUITE_ORDER.get(s, 3))
    for suite in suites:
        tasks = [r for r in rows if r["suite"] == suite and not r.get("group")
                 and all(v is not None for v in r["values"])]
        if len(tasks) < 2:  # the average of one task is that task (and its test is already in its row)
            continue
        values = []
        for k in range(len(run.evals)):
            vals = [r["values"][k]["value"] for r in tasks]
            values.append({"value": sum(vals) / len(vals), "stderr": None, "n": None})
        deltas = [None] + [_pooled_delta(run, tasks, k - 1, k, 100 + k) for k in range(1, len(run.evals))]
        overall = _pooled_delta(run, tasks, 0, len(run.evals) - 1, 199) if has_overall(run) else None
        out.append({"task": f"{suite} average", "suite": suite, "metric": f"mean of {len(tasks)} headlines",
                    "tasks": [r["task"] for r in tasks], "values": values,
                    "deltas": [d.to_dict() if d else None for d in deltas],
                    "overall": overall.to_dict() if overall else None,
                    "notes": [None] * len(run.evals), "test_note": None, "contamination": None})
    return out


def compare_items_bootstrap_only(before: dict[str, float], after: dict[str, float], weights: dict[str, float],
                                 seed: int) -> Delta:
    """The paired bootstrap alone (weighted pooled items are not 0/1, McNemar does not apply)."""
    ids = sorted(before)
    b = [before[i] * weights[i] for i in ids]
    a = [after[i] * weights[i] for i in ids]
    boot = paired_bootstrap(b, a, samples=BOOTSTRAP_SAMPLES, seed=seed)
    return Delta(len(ids), 100 * boot.delta, 100 * boot.low, 100 * boot.high, boot.p_value,
                 "paired bootstrap (pooled items)")


def untested(delta: float) -> dict[str, Any]:
    """A difference of headlines without per-item scores on both sides (no generations files): no test."""
    return {"n": 0, "delta": delta, "low": None, "high": None, "p_value": None, "test": "none",
            "discordant": None, "note": "no per-item scores (generations files) on both sides: not tested",
            "significant": False}


def heldout_rlvr_delta(run: RunData) -> dict[str, Any] | None:
    """The RLVR stage's own held-out check (greedy verdicts on held-out generator prompts before and after
    RLVR, from ``rlvr/summary.json``), per verifier and overall, with McNemar."""
    held = (run.summaries.get("rlvr") or {}).get("details", {}).get("heldout") or {}
    before, after, verifiers = held.get("before") or [], held.get("after") or [], held.get("verifiers") or []
    if not before or len(before) != len(after):
        return None
    out = {"prompts": len(before), "rows": []}
    groups = [("all", list(range(len(before))))]
    for v in sorted(set(verifiers)):
        groups.append((v, [i for i, x in enumerate(verifiers) if x == v]))
    for name, idx in groups:
        d = compare_items({str(i): before[i] for i in idx}, {str(i): after[i] for i in idx}, seed=7)
        if d is not None:
            out["rows"].append({"group": name, "n": len(idx), "before": 100 * sum(before[i] for i in idx) / len(idx),
                                "after": 100 * sum(after[i] for i in idx) / len(idx), **d.to_dict()})
    return out


def cross_run_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """Runs side by side: per task and stage present in every run, the headline of each run and the paired
    delta of each run against the first (on the items both answered)."""
    rows = []
    first = runs[0]
    for ev in first.evals:
        others = [next((e for e in r.evals if e.stage == ev.stage), None) for r in runs[1:]]
        if any(o is None for o in others):
            continue
        for task, t in ev.results["tasks"].items():
            if t.get("skipped"):
                continue
            outs = [ev, *others]
            values, deltas = [], [None]
            for e in outs:
                tt = e.results["tasks"].get(task)
                m = (tt or {}).get("metrics", {}).get((tt or {}).get("headline")) if tt and not tt.get("skipped") else None
                values.append({"value": m["value"], "stderr": m["stderr"], "n": tt.get("n")} if m else None)
            base_items = _metric_items(ev, task)
            for e in others:
                d = compare_items(base_items, _metric_items(e, task), seed=3) if base_items else None
                deltas.append(d.to_dict() if d else None)
            rows.append({"stage": ev.stage, "task": task, "suite": t.get("suite") or "",
                         "metric": t.get("headline") or "", "values": values, "deltas": deltas})
    return rows


def noise_summary(rows: list[dict[str, Any]], stages: list[str]) -> dict[str, list[str]]:
    """Which stage-to-stage deltas are significant at 0.05 and which are within noise (for the plain sentence)."""
    sig, noise = [], []
    for r in rows:
        for k, d in enumerate(r["deltas"]):
            if not d or d["p_value"] is None:
                continue
            label = f"{r['task']} {stages[k - 1]}→{stages[k]} ({d['delta']:+.1f}, p={fmt_p(d['p_value'])}, n={d['n']})"
            (sig if d["significant"] else noise).append(label)
    return {"significant": sig, "within_noise": noise}


def overall_summary(rows: list[dict[str, Any]], stages: list[str]) -> dict[str, list[str]] | None:
    """The first stage against the final model, per task: significant rises, significant falls, within noise."""
    if len(stages) < 3:
        return None
    out: dict[str, list[str]] = {"rose": [], "fell": [], "within_noise": []}
    for r in rows:
        d = r.get("overall")
        if not d or d["p_value"] is None:
            continue
        label = f"{r['task']} ({d['delta']:+.1f}, p={fmt_p(d['p_value'])}, n={d['n']})"
        out["within_noise" if not d["significant"] else "rose" if d["delta"] > 0 else "fell"].append(label)
    return out


def fmt_p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}" if p < 0.1 else f"{p:.2f}"


def fmt_delta(d: dict | None) -> str:
    """``+15.0 [+5.0, +25.0] p=0.021 significant`` (markdown)."""
    if not d:
        return ""
    if d["p_value"] is None:
        return f"{d['delta']:+.1f} (untested: no per-item scores)"
    mark = "**significant**" if d["significant"] else "within noise"
    return f"{d['delta']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] p={fmt_p(d['p_value'])} {mark}"


class _RunView:
    """Adapter so :func:`tulu.report.tables.task_order` orders an eval output's tasks."""

    def __init__(self, ev: EvalOutput):
        self.results = ev.results
