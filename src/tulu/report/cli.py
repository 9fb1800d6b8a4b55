"""`tulu report RUN_DIR [RUN_DIR ...]`: compare eval runs side by side (markdown, HTML page, plot)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tulu.report import Run, load_results, markdown_table, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="eval output folders (or results.json files), in stage order, "
                        "e.g. base sft dpo rlvr")
    parser.add_argument("--labels", default=None, help="comma-separated column labels (default: folder names)")
    parser.add_argument("--output", "-o", default="report", help="folder for report.md/.html/.png (default: report)")
    parser.add_argument("--title", default="tulu evaluation")
    parser.add_argument("--no-plot", action="store_true", help="skip the matplotlib figure")


def main(args: argparse.Namespace) -> int:
    labels = args.labels.split(",") if args.labels else [Path(r).name if Path(r).is_dir() else Path(r).parent.name
                                                          for r in args.runs]
    if len(labels) != len(args.runs):
        print(f"tulu report: error: --labels has {len(labels)} labels for {len(args.runs)} runs", file=sys.stderr)
        return 2
    try:
        runs = [Run(label, load_results(path)) for label, path in zip(labels, args.runs)]
    except ValueError as exc:
        print(f"tulu report: error: {exc}", file=sys.stderr)
        return 2
    paths = write_report(runs, args.output, title=args.title, plot=not args.no_plot)
    print(markdown_table(runs), end="")
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    return 0
