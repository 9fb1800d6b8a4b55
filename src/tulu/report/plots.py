"""Matplotlib figures for eval reports (written as PNG; the HTML page embeds them)."""

from __future__ import annotations

import io

from tulu.report.tables import Run, comparison_rows


def headline_bars(runs: list[Run]) -> bytes:
    """Grouped bars: one group per task that ran in at least one run, one bar per run, error bars = 1 s.e."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in comparison_rows(runs) if any(v is not None for v in r.values)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(rows) + 2), 4.0), dpi=110)
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(rows))
    for j, run in enumerate(runs):
        vals = [r.values[j][0] if r.values[j] else 0.0 for r in rows]
        errs = [r.values[j][1] if r.values[j] else 0.0 for r in rows]
        ax.bar(x + (j - (len(runs) - 1) / 2) * width, vals, width, yerr=errs, capsize=2, label=run.label)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{r.task}\n{r.metric}" for r in rows], fontsize=7)
    ax.set_ylabel("score (%)")
    ax.set_title("Headline metric per task")
    if len(runs) > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
