"""Reports over eval results: markdown tables, matplotlib plots and an HTML page comparing runs."""

from __future__ import annotations

import os
from pathlib import Path

from tulu.report.tables import Run, load_results, markdown_table
from tulu.utils import atomic_write_text


def write_report(runs: list[Run], output: str | os.PathLike, title: str = "tulu evaluation",
                 plot: bool = True) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` (and ``report.png``) into ``output``; returns their paths."""
    from tulu.report.html import render_html

    out = Path(output)
    png = None
    paths = {"markdown": atomic_write_text(out / "report.md", f"# {title}\n\n" + markdown_table(runs))}
    if plot:
        from tulu.report.plots import headline_bars
        from tulu.utils import atomic_path

        png = headline_bars(runs)
        with atomic_path(out / "report.png") as tmp:
            tmp.write_bytes(png)
        paths["plot"] = out / "report.png"
    paths["html"] = atomic_write_text(out / "report.html", render_html(runs, png, title))
    return paths


__all__ = ["Run", "load_results", "markdown_table", "write_report"]
