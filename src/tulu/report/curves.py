"""Training curves per stage from each stage's ``metrics.jsonl`` (one record per optimizer step), as PNG panels
(matplotlib) plus a first/last summary table.

What each trainer logs (src/tulu/train): every stage ``loss``, ``lr``, ``grad_norm``, ``tokens_per_s``; SFT
``nll_per_token``; DPO ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies`` (train
batch) and held-out before/after in ``summary.json``; RLVR ``reward``, ``reward/<verifier>``,
``solve_rate/<verifier>``, ``approx_kl``, ``kl_loss``, ``response_length``, ``stop_rate`` (the batch statistics are
repeated on each optimizer step of the batch)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

# stage -> panels: (title, [metric keys or "prefix/*"], y label)
PANELS: dict[str, list[tuple[str, list[str], str]]] = {
    "sft": [("loss", ["loss"], "loss (as optimised)"),
            ("NLL per target token", ["nll_per_token"], "nats / token")],
    "dpo": [("loss", ["loss"], "DPO loss"),
            ("implicit rewards", ["rewards/chosen", "rewards/rejected"], "β · log-ratio"),
            ("reward margin", ["rewards/margins"], "chosen − rejected"),
            ("preference accuracy (train batch)", ["rewards/accuracies"], "share chosen > rejected")],
    "rlvr": [("reward per verifier", ["reward", "reward/*"], "mean reward"),
             ("KL to the starting policy", ["approx_kl", "kl_loss"], "per token"),
             ("response length", ["response_length"], "tokens"),
             ("stop rate", ["stop_rate"], "share ending with EOS")],
}


@dataclass
class Series:
    run: str
    key: str
    steps: list[float]
    values: list[float]


def expand_keys(history: list[dict[str, Any]], keys: list[str]) -> list[str]:
    """``prefix/*`` -> every logged key under that prefix (sorted); other keys as they are, when logged."""
    logged = list(dict.fromkeys(k for rec in history for k in rec))
    out = []
    for k in keys:
        if k.endswith("/*"):
            out += sorted(x for x in logged if x.startswith(k[:-1]))
        elif k in logged:
            out.append(k)
    return out


def series(history: list[dict[str, Any]], key: str, run: str = "") -> Series:
    """The (step, value) points of ``key``; steps without it, or with a non-finite value, are left out."""
    steps, vals = [], []
    for i, rec in enumerate(history, 1):
        v = rec.get(key)
        if isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
            steps.append(float(rec.get("step", i)))
            vals.append(float(v))
    return Series(run, key, steps, vals)


def quarter_means(values: list[float]) -> tuple[float, float] | None:
    """Mean of the first and of the last quarter of the points (at least one point each)."""
    if not values:
        return None
    q = max(1, len(values) // 4)
    return sum(values[:q]) / q, sum(values[-q:]) / q


def summary_rows(stage: str, histories: dict[str, list[dict]]) -> list[dict[str, Any]]:
    """Per run and curve: points, first, last, first-quarter and last-quarter means."""
    rows = []
    for run, hist in histories.items():
        for _title, keys, _ylabel in PANELS.get(stage, []):
            for key in expand_keys(hist, keys):
                s = series(hist, key, run)
                if not s.values:
                    continue
                qm = quarter_means(s.values)
                rows.append({"run": run, "metric": key, "points": len(s.values), "first": s.values[0],
                             "last": s.values[-1], "first_quarter": qm[0], "last_quarter": qm[1]})
    return rows


def stage_figure(stage: str, histories: dict[str, list[dict]], extra_points: dict[str, dict] | None = None) -> bytes | None:
    """One PNG with a panel per curve of ``stage`` (runs overlaid); None when nothing was logged.

    ``extra_points``: run -> {"title": ..., "before": x, "after": y} drawn as a before/after panel (DPO's
    held-out accuracy, which is measured twice, not per step)."""
    panels = []
    for title, keys, ylabel in PANELS.get(stage, []):
        lines = [series(h, k, run) for run, h in histories.items() for k in expand_keys(h, keys)]
        lines = [s for s in lines if s.values]
        if lines:
            panels.append((title, ylabel, lines))
    extra = {r: p for r, p in (extra_points or {}).items() if p.get("before") is not None and p.get("after") is not None}
    if not panels and not extra:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(panels) + (1 if extra else 0)
    cols = min(n, 3 if n != 4 else 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.9 * rows), dpi=100, squeeze=False)
    multi = len(histories) > 1
    for ax, (title, ylabel, lines) in zip(axes.flat, panels):
        for s in lines:
            label = (f"{s.run}: " if multi else "") + s.key
            ax.plot(s.steps, s.values, marker="." if len(s.values) < 40 else None, lw=1.2, label=label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=7)
    if extra:
        ax = axes.flat[len(panels)]
        for run, p in extra.items():
            ax.plot([0, 1], [p["before"], p["after"]], marker="o", label=run if multi else None)
            ax.annotate(f"{p['before']:.2f}", (0, p["before"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
            ax.annotate(f"{p['after']:.2f}", (1, p["after"]), fontsize=7, xytext=(-24, 4), textcoords="offset points")
        ax.set_xticks([0, 1], ["before", "after"])
        ax.set_xlim(-0.3, 1.3)
        ax.set_title(next(iter(extra.values())).get("title", "held-out"), fontsize=10)
        ax.grid(alpha=0.3)
        if multi:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{stage.upper()} training curves", fontsize=11)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def dpo_heldout_points(summaries: dict[str, dict]) -> dict[str, dict]:
    """run -> DPO held-out implicit-reward accuracy before/after (from dpo/summary.json)."""
    out = {}
    for run, s in summaries.items():
        b, a = (s.get("heldout_before") or {}), (s.get("heldout_after") or {})
        if "rewards/accuracies" in a:
            pairs = (s.get("details") or {}).get("eval_pairs")
            out[run] = {"title": f"held-out preference accuracy ({pairs} pairs)" if pairs else "held-out accuracy",
                        "before": b.get("rewards/accuracies"), "after": a["rewards/accuracies"],
                        "margin_before": b.get("rewards/margins"), "margin_after": a.get("rewards/margins")}
    return out
