"""Dataset mixtures (open-instruct style) and the tokenized-data cache.

A mixture maps a source to a **fraction** (``<= 1``: that share of the source, sampled without
replacement) or an **absolute count** (``> 1``: that many records). Sources are file paths (JSONL,
JSON, Parquet, datasets folder) or procedural generators (``synthetic:math``,
``synthetic:constraints``; for these a count is required, a fraction means ``fraction * 1000``).
Sampling is deterministic under the seed, and the per-source counts go into the model card.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tulu.data.formats import DataError, Kind, load_records
from tulu.data.templates import Encoded, Template, encode_chat
from tulu.utils import atomic_path, file_sha256, progress, stable_hash

log = logging.getLogger(__name__)
SYNTHETIC_DEFAULT_SIZE = 1000


@dataclass
class Mixture:
    records: list[dict]
    counts: dict[str, int]  # source -> records taken


def _load_source(source: str, kind: Kind, want: float, seed: int) -> list[dict]:
    if source.startswith("synthetic:"):
        from tulu.data import synthetic

        family = source.split(":", 1)[1]
        n = int(want) if want > 1 else max(1, round(want * SYNTHETIC_DEFAULT_SIZE))
        return synthetic.records(family, n, kind=kind, seed=seed)
    return load_records(source, kind)


def take(records: list[dict], want: float, source: str, seed: int) -> list[dict]:
    """Apply a fraction (<= 1) or count (> 1) to one source's records, deterministically."""
    if want <= 0:
        raise DataError(f"mixture: {source}: weight must be > 0, got {want}")
    if want <= 1:
        k = round(want * len(records))
    else:
        if not float(want).is_integer():
            raise DataError(f"mixture: {source}: a count above 1 must be a whole number, got {want}")
        k = int(want)
        if k > len(records):
            raise DataError(f"mixture: {source}: asked for {k} records but the source has only {len(records)}")
    idx = list(range(len(records)))
    random.Random(f"{seed}:{source}").shuffle(idx)
    keep = sorted(idx[:k])  # keep source order among the chosen ones
    return [records[i] for i in keep]


def build_mixture(mixture: dict[str, float], kind: Kind = "sft", seed: int = 0) -> Mixture:
    if not mixture:
        raise DataError("mixture: empty (name at least one dataset)")
    out, counts = [], {}
    for source, want in mixture.items():
        if not source.startswith("synthetic:") and not Path(source).exists():
            raise DataError(f"mixture: {source}: no such file or folder")
        recs = _load_source(source, kind, want, seed)
        chosen = recs if source.startswith("synthetic:") else take(recs, want, source, seed)
        for r in chosen:
            r.setdefault("source", source)
        counts[source] = len(chosen)
        out.extend(chosen)
    random.Random(seed).shuffle(out)
    return Mixture(out, counts)


def tokenizer_fingerprint(tokenizer) -> str:
    """Hash of what decides token ids: vocabulary, special tokens and the chat template."""
    vocab = tokenizer.get_vocab()
    return stable_hash(sorted(vocab.items()), tokenizer.all_special_tokens, getattr(tokenizer, "chat_template", None))


def tokenize_records(records: list[dict], tokenizer, template: Template = "tokenizer",
                     max_length: int | None = None, cache_dir: str | Path | None = None,
                     desc: str = "tokenize") -> list[Encoded]:
    """Encode SFT records (assistant-only labels), cached on disk by data + tokenizer + settings.

    Records whose labels vanish under truncation are dropped (they would train nothing); the count is
    logged.
    """
    key = stable_hash(records, tokenizer_fingerprint(tokenizer), template, max_length, "v1")
    path = Path(cache_dir) / f"tokenized-{key}.jsonl" if cache_dir else None
    if path is not None and path.is_file():
        with open(path) as fh:
            return [Encoded(**json.loads(line)) for line in fh]
    out, dropped = [], 0
    for rec in progress(records, desc=desc, unit="ex"):
        enc = encode_chat(rec["messages"], tokenizer, template, max_length=max_length)
        if enc.num_label_tokens == 0:
            dropped += 1
            continue
        out.append(enc)
    if dropped:
        log.warning("%d of %d records have no assistant tokens left after truncation to %s and were dropped",
                    dropped, len(records), max_length)
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "w") as fh:
            for e in out:
                fh.write(json.dumps({"input_ids": e.input_ids, "labels": e.labels}) + "\n")
    return out


def source_fingerprint(source: str) -> str:
    """Content hash of a file source (for cache keys / provenance); generator sources hash their name."""
    p = Path(source)
    return file_sha256(p) if p.is_file() else stable_hash(source)


SplitName = Literal["train", "eval"]


def split_records(records: list[dict], eval_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/held-out split."""
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    idx = list(range(len(records)))
    random.Random(f"split:{seed}").shuffle(idx)
    n_eval = round(eval_fraction * len(records))
    ev = set(idx[:n_eval])
    return [r for i, r in enumerate(records) if i not in ev], [r for i, r in enumerate(records) if i in ev]
