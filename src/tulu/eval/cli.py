"""`tulu eval --model PATH_OR_ID --suite dev|unseen|all [--tasks a,b] [--limit N] --output DIR`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from tulu.data.benchmarks import BenchmarkChecksumError, BenchmarkUnavailable
from tulu.eval.suites import SUITES, suite_tasks
from tulu.eval.tasks import TASKS, get_task

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
    parser.add_argument("--dtype", default="auto", help="float32 / bfloat16 / auto (fp32 on CPU)")
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


def make_backend(model: str, backend: str, device: str | None, dtype: str):
    """A generation backend from the rollout engine. Local/embedded models are loaded here with the
    requested device and dtype; ``vllm`` and ``openai`` take the name as it is."""
    from tulu.rollout import get_backend

    if backend in ("vllm", "openai"):
        return get_backend(backend, model)
    from tulu.models import load_model_and_tokenizer

    kwargs = {"dtype": dtype}
    if device:
        kwargs["device"] = device
    mdl, tok = load_model_and_tokenizer(model, **kwargs)
    return get_backend(backend, mdl, tok)


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


def build_tasks(names: list[str], args: argparse.Namespace) -> list:
    tasks = []
    for name in names:
        task = get_task(name)
        if args.max_new_tokens is not None:
            task.sampling = dataclasses.replace(task.sampling,
                                                max_new_tokens=min(task.sampling.max_new_tokens, args.max_new_tokens))
        if name == "humaneval" and args.samples is not None:
            task.sampling = dataclasses.replace(task.sampling, n=args.samples)
            task.k = tuple(k for k in task.k if k <= args.samples) or (1,)
        if name == "alpaca_eval":
            from tulu.eval.tasks.alpaca_eval import LocalJudge, OpenAIJudge

            if args.judge_url:
                task.judge = OpenAIJudge(args.judge_url, model=args.judge_name)
            elif args.judge_model:
                task.judge = LocalJudge(make_backend(args.judge_model, args.backend, args.device, args.dtype))
        tasks.append(task)
    return tasks


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
        tasks = build_tasks(names, args)
        backend = make_backend(args.model, args.backend, args.device, args.dtype)
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
