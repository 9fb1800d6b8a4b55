"""Data curation with models: the drivers of `tulu data persona` (:mod:`tulu.curate.persona`) and `tulu data
prefs|ifpairs` (:mod:`tulu.curate.prefs`), and the machinery they share, here:

* :class:`ModelSpec`: a model of the pool, parsed from ``NAME=SOURCE[,temperature=T,top_p=P,max_tokens=N]``
  where SOURCE is ``embedded``, a model folder, a hub id, ``RUN_DIR:STAGE`` (a pipeline stage's model,
  e.g. ``runs/embedded_cpu:sft``) or ``openai:MODEL@BASE_URL`` (any OpenAI-compatible endpoint: a hosted
  API, vLLM, or ``tulu serve``).
* :class:`JsonlCache`: an append-only JSONL cache keyed by ``key``. Every finished item is appended and
  flushed at once, so a killed run loses at most the item in flight; a torn last line (the kill came
  mid-write) is cut off when the cache is opened again, and the rerun continues from what is there.
* :func:`generate_cached`: completions of many prompts by one model, through the generation backends of
  :mod:`tulu.rollout` (our CPU engine, HF, vLLM, or the OpenAI client), cached and with progress + ETA.

This package sits above ``data``, ``rollout``, ``verifiers`` and ``train`` (it may import any of them); nothing
below imports it. The pure parts (personas and templates, judge prompts and parsing, binarisation, IF pairs)
live in :mod:`tulu.data`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from tulu.data.formats import DataError
from tulu.utils import atomic_write_jsonl, progress, stable_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # folder / embedded / hub id, or the served model name for an endpoint
    base_url: str | None = None  # set for OpenAI-compatible endpoints
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256

    @property
    def remote(self) -> bool:
        return self.base_url is not None

    @property
    def label(self) -> str:
        """What records name the model by: ``name (source)``."""
        where = f"openai:{self.source}@{self.base_url}" if self.remote else self.source
        return f"{self.name} ({where})"

    def cache_key(self) -> dict:
        return {"source": self.source, "base_url": self.base_url, "temperature": self.temperature,
                "top_p": self.top_p, "max_tokens": self.max_tokens}


def parse_endpoint(text: str) -> tuple[str, str]:
    """``openai:MODEL@BASE_URL`` -> (MODEL, BASE_URL)."""
    body = text[len("openai:"):]
    model, sep, url = body.rpartition("@")
    if not sep or not model or not url.startswith(("http://", "https://")):
        raise DataError(f"{text}: expected openai:MODEL@BASE_URL, e.g. openai:embedded@http://127.0.0.1:8000/v1")
    return model, url.rstrip("/")


def parse_model_spec(text: str, *, temperature: float = 0.7, top_p: float = 1.0, max_tokens: int = 256) -> ModelSpec:
    """``NAME=SOURCE[,temperature=T,top_p=P,max_tokens=N]`` (see the module docstring)."""
    name, sep, rest = text.partition("=")
    if not sep or not name or not rest:
        raise DataError(f"--model {text}: expected NAME=SOURCE[,temperature=T,top_p=P,max_tokens=N]")
    source, *opts = rest.split(",")
    settings: dict[str, Any] = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}
    for opt in opts:
        k, sep, v = opt.partition("=")
        if not sep or k not in settings:
            raise DataError(f"--model {text}: unknown setting {opt!r} (known: temperature, top_p, max_tokens)")
        try:
            settings[k] = int(v) if k == "max_tokens" else float(v)
        except ValueError:
            raise DataError(f"--model {text}: {k}={v!r} is not a number") from None
    base_url = None
    if source.startswith("openai:"):
        source, base_url = parse_endpoint(source)
    elif ":" in source and not Path(source).exists():
        run, _, stage = source.rpartition(":")
        stage_dir = Path(run) / stage / "model"
        if not stage_dir.is_dir():
            raise DataError(f"--model {text}: {stage_dir} is not a model folder (RUN_DIR:STAGE names a pipeline "
                            "stage's model, e.g. runs/embedded_cpu:sft)")
        source = str(stage_dir)
    return ModelSpec(name, source, base_url, **settings)


def check_pool(specs: Sequence[ModelSpec]) -> None:
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"--model: names must be unique; repeated: {', '.join(dup)}")


class JsonlCache:
    """Append-only ``key -> record`` store in one JSONL file (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.rows: dict[str, dict] = {}
        self.torn = 0
        if self.path.is_file():
            raw = self.path.read_bytes()
            lines = raw.split(b"\n")
            good = []
            for i, line in enumerate(lines):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1:]):
                        raise DataError(f"{self.path}:{i + 1}: corrupt cache line (not the last one); "
                                        "delete the file to start over") from None
                    self.torn += 1
                    continue
                self.rows[rec["key"]] = rec
                good.append(rec)
            if self.torn or (raw and not raw.endswith(b"\n")):
                log.warning("%s: cut a torn last line (the previous run was stopped mid-write)", self.path)
                atomic_write_jsonl(self.path, good)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def get(self, key: str) -> dict | None:
        return self.rows.get(key)

    def add(self, rec: dict) -> None:
        self.rows[rec["key"]] = rec
        self._fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def generation_key(messages: list[dict], spec: ModelSpec, seed: int) -> str:
    return stable_hash(messages, spec.cache_key(), seed)


def _backend(spec: ModelSpec, backend: str, concurrency: int, timeout: float):
    from tulu.rollout import get_backend, load_backend

    if spec.remote:
        return get_backend("openai", spec.source, base_url=spec.base_url, concurrency=concurrency, timeout=timeout)
    return load_backend(spec.source, backend)


def generate_cached(spec: ModelSpec, items: Sequence[tuple[str, list[dict]]], cache: JsonlCache, *, seed: int,
                    backend: str = "auto", batch_size: int = 16, concurrency: int = 8, timeout: float = 120.0,
                    counts: dict | None = None, extra: Callable[[str], dict] | None = None) -> None:
    """Complete every ``(item id, messages)`` with ``spec`` whose generation is not cached yet, appending
    each result (``status`` ok, or error with the message) to ``cache``. Records carry ``key``, ``item``,
    ``model``, ``text`` and ``finish_reason``. ``counts`` collects ``cached``, ``generated`` and ``failed``."""
    from tulu.rollout import SamplingParams
    from tulu.rollout.openai import OpenAIError

    counts = counts if counts is not None else {}
    todo = []
    for item, msgs in items:
        key = generation_key(msgs, spec, seed)
        hit = cache.get(key)
        if hit is not None and hit.get("status") == "ok":
            counts["cached"] = counts.get("cached", 0) + 1
        else:
            todo.append((key, item, msgs))
    if not todo:
        return
    print(f"{spec.name}: {len(items) - len(todo)} completions cached, {len(todo)} to generate ({spec.label})",
          flush=True)
    params = SamplingParams(n=1, temperature=spec.temperature, top_p=spec.top_p, max_new_tokens=spec.max_tokens,
                            seed=seed, logprobs=False)
    eng = _backend(spec, backend, concurrency, timeout)
    try:
        with progress(total=len(todo), desc=f"generate {spec.name}", unit="completion") as bar:
            for start in range(0, len(todo), batch_size):
                chunk = todo[start:start + batch_size]
                try:
                    outs = eng.generate([m for _, _, m in chunk], params)
                    results = [(o.completions[0].text, o.completions[0].finish_reason, None) for o in outs]
                except OpenAIError as exc:  # an endpoint that keeps failing: record, go on, retried next run
                    results = [(None, None, str(exc))] * len(chunk)
                for (key, item, _), (text, finish, error) in zip(chunk, results):
                    rec = {"key": key, "item": item, "model": spec.name, "status": "ok" if error is None else "error",
                           "text": text, "finish_reason": finish}
                    if error is not None:
                        rec["error"] = error[:500]
                    if extra is not None:
                        rec.update(extra(item))
                    cache.add(rec)
                    name = "generated" if error is None else "failed"
                    counts[name] = counts.get(name, 0) + 1
                bar.update(len(chunk))
    finally:
        eng.close()


def load_prompts(sources: Sequence[str], seed: int) -> list[dict]:
    """Prompt records (``messages`` ending in a user turn, ``id``, ``source``, and ``ground_truth`` +
    ``verifier`` where the source has them) from ``SOURCE=N`` items: ``synthetic:<family>``,
    ``rlvr:<generator>`` or any file ``tulu data`` reads (SFT records lose their last assistant turn;
    preference records keep their prompt). N is a count (> 1) or a fraction (<= 1) as in mixtures."""
    from tulu.data.formats import read_records, to_canonical, validate_messages
    from tulu.data.mixing import take

    out: list[dict] = []
    for item in sources:
        source, sep, want_s = item.rpartition("=")
        if not sep or not source:
            source, want_s = item, "1.0"
        try:
            want = float(want_s)
        except ValueError:
            raise DataError(f"--prompts {item}: {want_s!r} is not a number") from None
        if source.startswith("synthetic:"):
            from tulu.data import synthetic

            n = int(want) if want > 1 else max(1, round(want * 1000))
            recs = synthetic.records(source.split(":", 1)[1], n, kind="rl", seed=seed)
        elif source.startswith("rlvr:"):
            from tulu.data.rlvr import load_rlvr_prompts

            recs = load_rlvr_prompts({source: want}, seed=seed, split="train")
        else:
            recs = []
            for loc, raw in read_records(source):
                rec = to_canonical(raw, loc, "rl")
                msgs = list(rec.get("messages") or [])
                while msgs and isinstance(msgs[-1], dict) and msgs[-1].get("role") == "assistant":
                    msgs.pop()
                rec["messages"] = validate_messages(msgs, loc, need_final="user")
                rec.setdefault("id", f"{source}:{loc.rsplit(':', 1)[-1]}")
                recs.append(rec)
            recs = take(recs, want, source, seed)
        for r in recs:
            r.setdefault("source", source)
            r.setdefault("id", stable_hash(r["messages"]))
            out.append(r)
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"--prompts: the prompt id {dup!r} occurs twice (two sources with the same ids?)")
    return out
