"""The eval side of decontamination: benchmark instances as text segments.

Benchmarks come from :mod:`tulu.data.benchmarks` (offline, from installed packages); extra or custom eval
sets come from JSONL files with a ``prompt`` field (and optionally ``answer`` and ``id``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tulu.data.formats import DataError, read_jsonl

log = logging.getLogger(__name__)

EVAL_FIELDS = ("prompt", "answer")


@dataclass(frozen=True)
class EvalInstance:
    benchmark: str
    id: str
    prompt: str
    answer: str = ""  # gold answer / reference solution as text ("" when none is textual)

    def segments(self, fields: Sequence[str]) -> list[str]:
        return [getattr(self, f) for f in fields if getattr(self, f)]


def answer_text(answer: Any, meta: dict | None = None) -> str:
    """The gold answer as text: a worked solution when the benchmark has one, else a string answer."""
    meta = meta or {}
    for key in ("solution", "canonical_solution", "code"):
        if isinstance(meta.get(key), str) and meta[key].strip():
            return meta[key]
    return answer if isinstance(answer, str) else ""


def load_benchmarks(names: Iterable[str] | None = None) -> tuple[list[EvalInstance], dict[str, str]]:
    """Instances of the named benchmarks (default: every one that loads here).

    Returns ``(instances, skipped)`` where ``skipped`` maps a benchmark that could not be loaded to the
    one-line reason. Naming a benchmark explicitly that cannot load is still only a skip, reported.
    """
    from tulu.data import benchmarks as bm

    wanted = list(names) if names is not None else list(bm.ALL_BENCHMARKS)
    out: list[EvalInstance] = []
    skipped: dict[str, str] = {}
    for name in wanted:
        reason = bm.unavailable_reason(name)
        if reason is not None:
            skipped[name] = reason
            continue
        try:
            items = bm.load_benchmark(name)
        except bm.BenchmarkUnavailable as exc:
            skipped[name] = str(exc)
            continue
        out += [EvalInstance(name, str(it.id), it.prompt, answer_text(it.answer, it.meta)) for it in items]
        log.info("decontam: eval side %s: %d instances", name, len(items))
    for name, why in skipped.items():
        log.warning("decontam: eval side %s skipped: %s", name, why)
    return out, skipped


def load_eval_file(name: str, path: str | Path) -> list[EvalInstance]:
    """A custom eval set: JSONL with ``prompt`` (str) and optional ``answer`` / ``id`` per line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    out = []
    for loc, rec in read_jsonl(path):
        prompt = rec.get("prompt")
        if not isinstance(prompt, str):
            raise DataError(f"{loc}: prompt: {'missing' if prompt is None else 'expected a string'}")
        answer = rec.get("answer", "")
        out.append(EvalInstance(name, str(rec.get("id", len(out))), prompt,
                                answer if isinstance(answer, str) else json.dumps(answer)))
    return out
