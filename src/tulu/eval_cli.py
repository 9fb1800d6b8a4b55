"""`tulu eval --model PATH_OR_ID --suite dev|unseen|all [--tasks a,b] [--limit N] --output DIR`.

A command module on top of the house: it runs tulu.eval and then writes the report with tulu.report (the
eval package itself knows nothing of the report)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tulu.data.benchmarks import BenchmarkChecksumError, BenchmarkUnavailable
from tulu.eval.build import build_tasks
from tulu.eval.suites import SUITES, suite_tasks
from tulu.eval.tasks import TASKS
from tulu.rollout import load_backend

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder, `embedded`, or a hub id")
    parser.add_argument("--suite", default="dev", choices=[*SUITES, "all"], help="task suite (default: dev)")
    parser.add_argument("--tasks", default=None, help=f"comma-separated tasks instead of a suite: {', '.join(TASKS)}")
    parser.add_argument("--limit", type=int, default=None,
                        help="N items of every task, taken round-robin over subjects where a task has them "
                             "(default: all)")
    parser.add_argument("--backend", default="auto",
                        help="generation backend (tulu.rollout): auto (vllm on GPU, else fast, else hf), hf, fast, vllm")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: cuda when available)")
    parser.add_argument("--dtype", default="auto",
                        help="float32 / bfloat16 / auto. CPU fast backend: the decode step's weight precision "
                             "(auto: bf16-rounded weights only where a cached per-machine measurement finds them "
                             "faster; results.json records the choice); elsewhere the model's dtype "
                             "(auto: bf16 on GPUs that have it)")
    parser.add_argument("--output", "-o", default=None, help="output folder (default: eval/<model name>)")
    parser.add_argument("--cache-dir", default=None, help="generation cache (default: OUTPUT/cache); rerun to resume")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per generate call (default: 8)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="cap every task's generation length (a CPU shortcut; changes the scores)")
    parser.add_argument("--samples", type=int, default=None,
                        help="samples per HumanEval problem (default 20 for pass@10)")
    parser.add_argument("--judge-model", default=None, help="AlpacaEval judge: a local model run through --backend")
    parser.add_argument("--judge-url", default=None, help="AlpacaEval judge: an OpenAI-compatible base URL")
    parser.add_argument("--judge-name", default="gpt-4o-mini", help="model name sent to --judge-url")
    parser.add_argument("--list", action="store_true", help="list tasks and whether their data is available here")
    parser.add_argument("--no-report", action="store_true", help="write results.json only (no markdown / HTML)")


def _list_tasks() -> int:
    for name, cls in TASKS.items():
        task = cls()
        reason = task.unavailable()
        if reason is None:
            from tulu.data.benchmarks import unavailable_reason

            reason = unavailable_reason(task.benchmark)
        status = "ok" if reason is None else f"unavailable: {reason}"
        print(f"{name:14s} {task.suite:7s} {status}\n{'':23s}{task.description}")
    return 0


def main(args: argparse.Namespace) -> int:
    if args.list:
        return _list_tasks()
    if not args.model:
        print("tulu eval: error: --model is required (a folder, `embedded`, or a hub id)", file=sys.stderr)
        return 2
    names = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else suite_tasks(args.suite)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        print(f"tulu eval: error: --tasks: unknown {', '.join(unknown)}; known: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    output = Path(args.output or Path("eval") / Path(args.model).name)
    from tulu.eval.runner import evaluate, model_fingerprint
    from tulu.models import ModelSourceError, resolve_model_path

    try:  # key the cache on the resolved folder's weights, so a retrained checkpoint is not served stale
        model_key = model_fingerprint(resolve_model_path(args.model))
    except ModelSourceError as exc:
        print(f"tulu eval: error: {exc}", file=sys.stderr)
        return 2

    try:
        tasks = build_tasks(names, max_new_tokens=args.max_new_tokens, samples=args.samples,
                            judge_url=args.judge_url, judge_name=args.judge_name, judge_model=args.judge_model,
                            backend=args.backend, device=args.device, dtype=args.dtype)
        backend = load_backend(args.model, args.backend, args.device, args.dtype)
        with backend:
            results = evaluate(tasks, backend, model=args.model, output=output, limit=args.limit,
                               batch_size=args.batch_size, cache_dir=args.cache_dir, model_key=model_key,
                               extra={"suite": args.suite if not args.tasks else None,
                                      "max_new_tokens_cap": args.max_new_tokens})
    except (BenchmarkUnavailable, BenchmarkChecksumError) as exc:
        print(f"tulu eval: error: {exc}", file=sys.stderr)
        return 2
    from tulu.report import Run, markdown_table, write_report

    runs = [Run(Path(args.model).name, results)]
    if not args.no_report:
        paths = write_report(runs, output, title=f"tulu eval: {args.model}")
        log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    print(markdown_table(runs), end="")
    print(f"\nresults: {output / 'results.json'}")
    return 0
