"""`tulu report RUN [RUN ...]`: the run report. Pipeline run folders are put side by side (e.g. a CPU and a GPU run
of the same recipe); eval output folders are read as the stages of one run, in the order given."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="pipeline run folders (side by side), or eval output folders / "
                        "results.json files in stage order, e.g. base sft dpo rlvr")
    parser.add_argument("--labels", default=None, help="comma-separated labels: of the runs (pipeline folders) or of "
                        "the stages (eval folders); default: folder names")
    parser.add_argument("--output", "-o", default="report", help="folder for report.html/.md/.json and the PNGs "
                        "(default: report)")
    parser.add_argument("--title", default="tulu run report")
    parser.add_argument("--no-plot", action="store_true", help="skip the matplotlib figures")
    parser.add_argument("--samples", type=int, default=3, help="sample prompts per task (default 3)")


def main(args: argparse.Namespace) -> int:
    from tulu.report.markdown import eval_table
    from tulu.report.rundata import load_runs
    from tulu.report.runreport import write

    labels = args.labels.split(",") if args.labels else None
    try:
        runs = load_runs(args.runs, labels)
    except (ValueError, FileNotFoundError) as exc:
        print(f"tulu report: error: {exc}", file=sys.stderr)
        return 2
    paths = write(runs, args.output, title=args.title, samples_per_task=args.samples,
                  plot=not args.no_plot)
    import json

    report = json.loads(Path(paths["json"]).read_text())
    for sec in report["runs"]:
        print(f"## {sec['label']}\n")
        print("\n".join(eval_table(sec)))
        for line in sec["verdict"]:
            print(f"- {line}")
        print()
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
