"""Reports: the run report (``write_run_report``: one self-contained HTML page plus markdown and JSON, over one or
several pipeline runs; see docs/report.md) and the plain eval comparison (``write_report``) that ``tulu eval``
prints."""

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


def write_run_report(paths: list[str | os.PathLike], output: str | os.PathLike, *, labels: list[str] | None = None,
                     title: str = "tulu run report", samples_per_task: int = 3, plot: bool = True) -> dict[str, Path]:
    """The run report over pipeline run folders (side by side) or eval output folders (one run, in stage order)."""
    from tulu.report.rundata import load_runs
    from tulu.report.runreport import write

    return write(load_runs(paths, labels), output, title, samples_per_task, plot)


__all__ = ["Run", "load_results", "markdown_table", "write_report", "write_run_report"]
