"""`tulu data`: validate, convert, inspect and generate chat datasets."""

from __future__ import annotations

import argparse
import json
import statistics

from tulu.data.formats import DataError, load_records
from tulu.utils import atomic_write_jsonl


def add_arguments(p: argparse.ArgumentParser):
    """Add the data actions to ``p``; returns the sub-parsers object so that the top-level ``tulu data``
    (:mod:`tulu.data_cli`) can add the actions that need models (persona, prefs, ifpairs)."""
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    v = sub.add_parser("validate", help="check every record; print file:line: field: problem for each bad one")
    v.add_argument("path", help="JSONL, JSON, Parquet or a datasets folder")
    v.add_argument("--kind", choices=["sft", "preference", "rl", "rlvr"], default="sft",
                   help="rlvr: Tulu 3 RLVR prompts (messages + ground_truth + dataset naming the verifier); "
                        "the ground truth is parsed by that verifier")
    v.add_argument("--max-errors", type=int, default=0, help="print at most this many errors (0: all)")
    c = sub.add_parser("convert", help="convert Alpaca/ShareGPT/HH/prompt-completion data to canonical JSONL")
    c.add_argument("path", help="input: JSONL, JSON, Parquet or a datasets folder, in any shape tulu recognises")
    c.add_argument("out", help="output JSONL (written atomically)")
    c.add_argument("--kind", choices=["sft", "preference", "rl", "rlvr"], default="sft", help="record kind (default sft)")
    s = sub.add_parser("stats", help="record count and token statistics under a tokenizer and template")
    s.add_argument("path", help="SFT data file")
    s.add_argument("--model", default="embedded", help="tokenizer to count with (default: embedded)")
    s.add_argument("--template", choices=["tokenizer", "tulu"], default="tokenizer",
                   help="chat template: the tokenizer's own (default) or Tulu's")
    g = sub.add_parser("synth", help="write procedural data (math word problems, IFEval-style constraints)")
    g.add_argument("family", choices=["math", "constraints", "ifeval"], help="generator family (docs/data.md)")
    g.add_argument("out", help="output JSONL")
    g.add_argument("-n", type=int, default=1000, help="records to write (default 1000)")
    g.add_argument("--kind", choices=["sft", "preference", "rl"], default="sft", help="record kind (default sft)")
    g.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    r = sub.add_parser("prompts", help="write RLVR prompts from generators and/or files (rlvr:constraints, "
                                       "rlvr:math, rlvr:arith, rlvr:<reasoning-gym task>, FILE)")
    r.add_argument("out", help="output JSONL")
    r.add_argument("sources", nargs="+", metavar="SOURCE=N",
                   help="a source and its count (> 1) or fraction (<= 1), e.g. rlvr:math=500")
    r.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    r.add_argument("--split", choices=["train", "heldout"], default="train",
                   help="the generators' train or held-out split (default train)")
    return sub


def main(args: argparse.Namespace) -> int:
    if args.data_command == "validate":
        # Every bad record is listed (a line that is not JSON does not stop the scan), then a count.
        if args.kind == "rlvr":
            from tulu.data.rlvr import check_rlvr_file

            recs, errors, _ = check_rlvr_file(args.path)
        else:
            errors = []
            recs = load_records(args.path, args.kind, on_error="skip", errors=errors)
        shown = errors[:args.max_errors] if args.max_errors > 0 else errors
        for e in shown:
            print(e)
        if len(shown) < len(errors):
            print(f"... and {len(errors) - len(shown)} more")
        print(f"{args.path}: {len(recs)} valid {args.kind} records, {len(errors)} rejected")
        return 1 if errors else 0
    if args.data_command == "convert":
        if args.kind == "rlvr":
            from tulu.data.rlvr import load_rlvr_file

            recs = load_rlvr_file(args.path)
        else:
            recs = load_records(args.path, args.kind)
        atomic_write_jsonl(args.out, recs)
        print(f"wrote {len(recs)} canonical {args.kind} records to {args.out}")
        return 0
    if args.data_command == "stats":
        from tulu.data.templates import encode_chat
        from tulu.models import load_tokenizer

        tok = load_tokenizer(args.model)
        recs = load_records(args.path, "sft")
        if not recs:
            raise DataError(f"{args.path}: no records")
        encs = [encode_chat(r["messages"], tok, args.template) for r in recs]
        lens = [len(e.input_ids) for e in encs]
        trained = [e.num_label_tokens for e in encs]
        print(json.dumps({"records": len(recs), "tokens": sum(lens), "trained_tokens": sum(trained),
                          "mean_len": round(statistics.mean(lens), 1), "max_len": max(lens)}, indent=2))
        return 0
    if args.data_command == "synth":
        from tulu.data.synthetic import records

        recs = records(args.family, args.n, kind=args.kind, seed=args.seed)
        atomic_write_jsonl(args.out, recs)
        print(f"wrote {len(recs)} {args.family} {args.kind} records to {args.out}")
        return 0
    if args.data_command == "prompts":
        from tulu.data.rlvr import load_rlvr_prompts

        mixture = {}
        for item in args.sources:
            source, sep, want = item.rpartition("=")
            if not sep or not source:
                raise DataError(f"{item}: expected SOURCE=N (a count > 1 or a fraction <= 1)")
            try:
                mixture[source] = float(want)
            except ValueError:
                raise DataError(f"{item}: {want!r} is not a number") from None
        recs = load_rlvr_prompts(mixture, seed=args.seed, split=args.split)
        atomic_write_jsonl(args.out, recs)
        print(f"wrote {len(recs)} {args.split} RLVR prompts to {args.out}")
        return 0
    raise AssertionError(args.data_command)
