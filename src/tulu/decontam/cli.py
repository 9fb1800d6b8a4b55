"""`tulu decontam`: find benchmark test items in training data by 8-gram overlap, report, filter.

Example::

    tulu decontam data/sft.jsonl mix=data/other.parquet --output-dir out/decontam
    tulu decontam data/sft.jsonl --benchmarks gsm8k,math --mode drop --engine ray
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tulu.data.formats import DataError
from tulu.decontam.output import MODES
from tulu.decontam.run import DecontamOptions, decontaminate, parse_source, summary_lines


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("train", nargs="+", metavar="[NAME=]PATH",
                        help="training dataset(s): JSONL, JSON, Parquet or a datasets folder, in any record "
                             "shape `tulu data` accepts; NAME defaults to the file name")
    parser.add_argument("--benchmarks", type=_csv, default=None,
                        help="comma-separated benchmarks to index (default: every dev/unseen benchmark that "
                             "loads here); 'none' for only --eval-file sets")
    parser.add_argument("--eval-file", action="append", default=[], metavar="NAME=PATH",
                        help="extra eval set: JSONL with prompt (and optional answer, id) per line; repeatable")
    parser.add_argument("--train-fields", type=_csv, default=["user"],
                        help="roles of training turns to match: user, assistant, system (default: user)")
    parser.add_argument("--eval-fields", type=_csv, default=["prompt"],
                        help="eval fields to index: prompt, answer (gold answer/solution) (default: prompt)")
    parser.add_argument("--ngram", type=int, default=8, help="n-gram length (Tulu 3: 8)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="an eval instance is contaminated when more than this fraction of its tokens is "
                             "covered by n-grams shared with one training instance (Tulu 3: 0.5)")
    parser.add_argument("--flag-threshold", type=float, default=0.02,
                        help="a dataset is flagged when it contaminates more than this fraction of any "
                             "benchmark (Tulu 3: 0.02)")
    parser.add_argument("--mode", choices=MODES, default="remove",
                        help="output: remove matching instances (default); drop flagged datasets whole; "
                             "both; or none (report only)")
    parser.add_argument("--output-dir", "-o", type=Path, default=Path("decontam_out"),
                        help="report.{json,md,html} and data/<NAME>.jsonl go here (default: decontam_out)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes / Ray actors (default: CPUs)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local process pool (default) or Ray Data")
    parser.add_argument("--ray-address", default=None,
                        help="Ray cluster to join (e.g. auto); default starts a local one")
    parser.add_argument("--examples", type=int, default=3, help="example matches per dataset x benchmark")
    parser.add_argument("--fail-on-flag", action="store_true", help="exit with status 1 when a dataset is flagged")


def main(args: argparse.Namespace) -> int:
    benchmarks = args.benchmarks
    if benchmarks is not None and [b.lower() for b in benchmarks] == ["none"]:
        benchmarks = []
    eval_files = []
    for spec in args.eval_file:
        if "=" not in spec:
            raise DataError(f"--eval-file {spec}: expected NAME=PATH")
        name, path = spec.split("=", 1)
        eval_files.append((name, Path(path)))
    opts = DecontamOptions(
        train=[parse_source(s) for s in args.train], benchmarks=benchmarks, eval_files=eval_files,
        train_fields=tuple(args.train_fields), eval_fields=tuple(args.eval_fields), ngram=args.ngram,
        threshold=args.threshold, flag_threshold=args.flag_threshold, mode=args.mode,
        output_dir=args.output_dir, workers=args.workers, engine=args.engine, ray_address=args.ray_address,
        examples=args.examples)
    report, timings = decontaminate(opts)
    for line in summary_lines(report):
        print(line)
    print(f"scanned {timings['train_instances']} training instances in {timings['scan_s']:.1f}s "
          f"({timings['instances_per_s']:.0f}/s); index built in {timings['index_s']:.1f}s")
    print(f"report: {args.output_dir / 'report.md'} (also .json, .html)")
    for d in report.get("output", {}).get("datasets", []):
        where = "dropped (flagged)" if d["dropped"] else args.output_dir / d["path"]
        print(f"  {d['name']}: kept {d['kept']}, removed {d['removed']} -> {where}")
    flagged = any(d["flagged"] for d in report["datasets"])
    return 1 if flagged and args.fail_on_flag else 0

