"""Run evaluation tasks against one model: batched generation through a rollout backend, generations cached
on disk per (model, task, settings) so an interrupted run resumes, scoring through the verifiers, per-task
metrics with standard errors, and suite averages. Writes ``results.json`` and per-task generation files."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tulu.data.benchmarks import BenchmarkChecksumError, BenchmarkItem, BenchmarkUnavailable
from tulu.eval.suites import EXTERNAL, SUITES, suite_of
from tulu.eval.tasks import Task
from tulu.rollout.base import GenerationBackend
from tulu.utils import atomic_write_json, atomic_write_jsonl, progress, stable_hash

log = logging.getLogger(__name__)

RESULTS_VERSION = 1


def model_fingerprint(model: str) -> str:
    """A cache key for a model: a local folder's resolved path plus the size and mtime of its weight files
    (a retrained checkpoint in the same folder gets a new key); a hub id or alias as given."""
    path = Path(model).expanduser()
    if path.is_dir():
        weights = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".gguf"))
        stats = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in weights]
        return stable_hash(str(path.resolve()), stats)
    return stable_hash(model)


@dataclass
class GenerationCache:
    """One JSONL file per (model, task, settings): ``{"id", "responses", "finish_reasons"}`` per item,
    rewritten atomically after every batch."""

    path: Path
    entries: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def open(cls, path: Path) -> GenerationCache:
        entries: dict[str, dict] = {}
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        rec = json.loads(line)
                        entries[rec["id"]] = rec
        return cls(path, entries)

    def put(self, item_id: str, responses: list[str], finish: list[str]) -> None:
        self.entries[item_id] = {"id": item_id, "responses": responses, "finish_reasons": finish}

    def save(self) -> None:
        atomic_write_jsonl(self.path, self.entries.values())


def _chunks(seq: Sequence, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def _fill_cache(task: Task, items: list[BenchmarkItem], cache: GenerationCache, batch_size: int, doing: str,
                run_batch) -> list[list]:
    """Run ``run_batch(batch) -> [(values, notes) per item]`` on the items not cached yet, in batches of
    ``batch_size``, saving the cache after each batch (an interrupted run resumes); return every item's values."""
    todo = [it for it in items if it.id not in cache.entries]
    if todo:
        log.info("%s: %s %d of %d items (%d cached)", task.name, doing, len(todo), len(items), len(items) - len(todo))
    bar = progress(total=len(todo), desc=f"{task.name}", unit="item")
    try:
        for batch in _chunks(todo, max(1, batch_size)):
            for it, (values, notes) in zip(batch, run_batch(batch)):
                cache.put(it.id, values, notes)
            cache.save()
            bar.update(len(batch))
    finally:
        bar.close()
    return [cache.entries[it.id]["responses"] for it in items]


def generate_cached(task: Task, items: list[BenchmarkItem], backend: GenerationBackend, cache: GenerationCache,
                    batch_size: int) -> list[list[str]]:
    def run_batch(batch):
        outs = backend.generate([task.messages(it) for it in batch], task.sampling)
        return [([c.text for c in out.completions], [c.finish_reason for c in out.completions]) for out in outs]

    return _fill_cache(task, items, cache, batch_size, "generating", run_batch)


def loglik_cached(task: Task, items: list[BenchmarkItem], backend: GenerationBackend, cache: GenerationCache,
                  batch_size: int) -> list[list[float]]:
    """The log-prob of every request of every item (``task.loglik_requests``), cached like generations."""
    def run_batch(batch):
        reqs = [task.loglik_requests(it) for it in batch]
        outs = backend.loglikelihood([r for rs in reqs for r in rs])
        per_item, k = [], 0
        for rs in reqs:
            part = outs[k:k + len(rs)]
            k += len(rs)
            per_item.append(([o.logprob for o in part], ["greedy" if o.greedy else "" for o in part]))
        return per_item

    return _fill_cache(task, items, cache, batch_size, "scoring by log-likelihood", run_batch)


def limit_items(items: list[BenchmarkItem], limit: int) -> list[BenchmarkItem]:
    """The first ``limit`` items, taken round-robin over subjects when the task has several (MATH's 7
    subjects, MMLU's 57, BBH's subsets): a limited run of a macro-averaged task then covers every subject
    instead of the first one only (both MATH and MMLU ship sorted by subject). Order within a subject is
    kept, so the selection is deterministic and a larger limit extends a smaller one per subject."""
    groups: dict[str, list[BenchmarkItem]] = {}
    for it in items:
        groups.setdefault(str(it.meta.get("subject") or it.meta.get("subset") or ""), []).append(it)
    if len(groups) < 2 or limit >= len(items):
        return items[:limit]
    picked: list[BenchmarkItem] = []
    queues = [iter(g) for g in groups.values()]
    while len(picked) < limit and queues:
        alive = []
        for q in queues:
            it = next(q, None)
            if it is not None:
                picked.append(it)
                alive.append(q)
                if len(picked) == limit:
                    break
        queues = alive
    return picked


def _scores_loglik(backend: GenerationBackend) -> bool:
    return type(backend).loglikelihood is not GenerationBackend.loglikelihood


def _prompt_text(task: Task, item: BenchmarkItem) -> str:
    if task.request_type == "loglikelihood":
        reqs = task.loglik_requests(item)
        ctx = reqs[0].context if reqs else ""
        return ctx if isinstance(ctx, str) else _last_user(ctx)
    msgs = task.messages(item)
    return msgs if isinstance(msgs, str) else _last_user(msgs)


def _last_user(messages: list[dict]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


def run_task(task: Task, backend: GenerationBackend, *, model_key: str, cache_dir: Path, out_dir: Path,
             limit: int | None = None, batch_size: int = 8) -> dict[str, Any]:
    """Evaluate one task; returns its entry of ``results.json`` (``skipped`` holds the reason when it did
    not run)."""
    entry: dict[str, Any] = {"suite": task.suite, "headline": task.headline, "description": task.description,
                             "olmes": task.olmes or None, "not_comparable": task.not_comparable(),
                             "settings": task.settings(), "skipped": None, "metrics": {}, "n": 0}
    reason = task.unavailable()
    if reason is None and task.request_type == "loglikelihood" and not _scores_loglik(backend):
        reason = (f"{task.name}: scored by answer log-likelihoods, which backend "
                  f"{getattr(backend, 'name', '?')!r} does not provide (use hf, fast or vllm)")
    items: list[BenchmarkItem] = []
    if reason is None:
        try:
            items = task.load()
        except BenchmarkUnavailable as exc:
            reason = str(exc)
    if reason is not None:
        log.warning("skipping %s: %s", task.name, reason)
        entry["skipped"] = reason
        return entry
    entry["not_comparable"] = task.not_comparable()  # may depend on the item set the load found
    judge = getattr(task, "judge", None)
    if judge is not None:
        entry["judge"] = judge.describe() if hasattr(judge, "describe") else type(judge).__name__
    if limit is not None:
        items = limit_items(items, limit)
    t0 = time.time()
    key = stable_hash(model_key, task.settings())
    cache = GenerationCache.open(cache_dir / f"{task.name}-{key}.jsonl")
    if task.request_type == "loglikelihood":
        responses = loglik_cached(task, items, backend, cache, batch_size)
    else:
        responses = generate_cached(task, items, backend, cache, batch_size)
    t1 = time.time()
    scores = task.score_batch(items, responses)
    metrics = task.aggregate(items, scores)
    entry.update(n=len(items), metrics={k: m.to_dict() for k, m in metrics.items()},
                 seconds={"generate": round(t1 - t0, 2), "score": round(time.time() - t1, 2)},
                 cache=str(cache.path))
    atomic_write_jsonl(out_dir / "generations" / f"{task.name}.jsonl", (
        {"id": it.id, "prompt": _prompt_text(task, it), "gold": it.answer, "responses": r, "scores": s,
         "finish_reasons": cache.entries[it.id]["finish_reasons"]}
        for it, r, s in zip(items, responses, scores)))
    head = metrics.get(task.headline)
    if head is not None:
        log.info("%s: %s = %.2f ± %.2f (n=%d)", task.name, task.headline, head.value, head.stderr, len(items))
    return entry


def suite_averages(tasks: dict[str, dict]) -> dict[str, dict]:
    """Per suite, the unweighted mean of the headline metrics of the tasks that ran, with every task of
    the suite's average that is left out and why (``missing``: name -> reason), and the tasks that ran
    on a stand-in item set (``not_comparable``: name -> reason)."""
    out = {}
    for suite in SUITES.values():
        vals, ses, used = [], [], []
        missing: dict[str, str] = {}
        not_comparable: dict[str, str] = {}
        for name in suite.average:
            t = tasks.get(name)
            m = (t or {}).get("metrics", {}).get((t or {}).get("headline"))
            if name in EXTERNAL:
                missing[name] = EXTERNAL[name]
            elif t is None:
                missing[name] = "not run (not in --tasks / --suite)"
            elif t.get("skipped") or m is None:
                missing[name] = t.get("skipped") or f"no {t.get('headline')} metric"
            else:
                vals.append(m["value"])
                ses.append(m["stderr"])
                used.append(name)
                if t.get("not_comparable"):
                    not_comparable[name] = t["not_comparable"]
        if not used:
            continue  # no average without a task that ran (the skipped ones are listed per task)
        out[suite.name] = {
            "value": sum(vals) / len(vals), "stderr": math.sqrt(sum(s * s for s in ses)) / len(ses),
            "tasks": used, "missing": missing, "not_comparable": not_comparable,
            "aggregation": "unweighted mean of the tasks' headline metrics (each task aggregated as its "
                           "OLMES config does: macro or micro over subjects)",
            "comparable_with_published": not missing and not not_comparable}
    return out


def _weight_precision(backend) -> dict | None:
    """The fast backend's weight precision (``tulu.rollout.weights``) as results.json records it, or None."""
    choice = getattr(getattr(backend, "engine", None), "weight_choice", None)
    return choice.to_dict() if choice is not None and hasattr(choice, "to_dict") else None


def evaluate(tasks: list[Task], backend: GenerationBackend, *, model: str, output: str | os.PathLike,
             limit: int | None = None, batch_size: int = 8, cache_dir: str | os.PathLike | None = None,
             model_key: str | None = None, extra: dict | None = None,
             task_limits: dict[str, int] | None = None) -> dict[str, Any]:
    """Run ``tasks`` and write ``<output>/results.json`` (plus ``generations/<task>.jsonl``). ``limit`` caps
    every task's items; ``task_limits`` overrides it per task (0: every item)."""
    task_limits = dict(task_limits or {})
    unknown = sorted(set(task_limits) - {t.name for t in tasks})
    if unknown:
        raise ValueError(f"task_limits names tasks that are not being run: {', '.join(unknown)} "
                         f"(running: {', '.join(t.name for t in tasks)})")
    out_dir = Path(output)
    cache = Path(cache_dir) if cache_dir else out_dir / "cache"
    key = model_key or model_fingerprint(model)
    weights = _weight_precision(backend)
    if weights is not None and weights["dtype"] != "float32":  # bf16-rounded weights answer differently
        key = stable_hash(key, weights["dtype"])
        if weights.get("products", "fp32") != "fp32":  # and bf16 products differently again
            key = stable_hash(key, weights["products"])
    results: dict[str, Any] = {
        "version": RESULTS_VERSION, "model": model, "model_key": key, "limit": limit,
        **({"task_limits": task_limits} if task_limits else {}),
        **({"weights": weights} if weights is not None else {}),
        "backend": getattr(backend, "name", type(backend).__name__),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "tasks": {}, **(extra or {})}
    for task in tasks:
        try:
            n = task_limits.get(task.name, limit)
            results["tasks"][task.name] = run_task(task, backend, model_key=key, cache_dir=cache, out_dir=out_dir,
                                                   limit=n or None, batch_size=batch_size)
        except BenchmarkChecksumError:
            raise
        results["tasks"][task.name].setdefault("suite", suite_of(task.name) or task.suite)
        results["averages"] = suite_averages(results["tasks"])
        atomic_write_json(out_dir / "results.json", results)  # after every task: partial results survive
    results["averages"] = suite_averages(results["tasks"])
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(out_dir / "results.json", results)
    return results
