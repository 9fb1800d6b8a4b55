"""`tulu data persona`: persona-driven prompt synthesis (Tulu 3 §3.1.2) through any generator LLM.

Draw ``i`` takes a persona (at random under the seed) and a template (the ``--templates`` in turn), asks the
generator for one prompt (:func:`tulu.data.personas.generator_messages`), cleans the answer and keeps it
unless it is a duplicate (same :func:`~tulu.data.personas.normalize` key) or unusable (too short/long).
Draws go on in rounds until ``-n`` prompts are kept or ``--max-draws`` is spent. Every generator answer is
cached in ``OUT.cache.jsonl``, so a rerun (or a larger ``-n``) reuses them. With ``--respond`` a second
model (or the same) answers each kept prompt and the records become SFT records; with ``--decontam`` the
output goes through `tulu decontam` (8-gram overlap against every eval benchmark that loads, matches
removed) before it is written, and the report lands in ``OUT.decontam/``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

from tulu.curate import JsonlCache, ModelSpec, generate_cached, generation_key
from tulu.data.formats import DataError
from tulu.data.personas import TEMPLATES, clean_prompt, generator_messages, load_personas, normalize, prompt_record
from tulu.utils import atomic_write_json, atomic_write_jsonl

log = logging.getLogger(__name__)


@dataclass
class PersonaOptions:
    out: Path
    generator: ModelSpec
    n: int = 100
    personas: str | None = None
    templates: list[str] = field(default_factory=lambda: list(TEMPLATES))
    seed: int = 0
    max_draws: int = 0  # 0: 3 * n
    responder: ModelSpec | None = None
    decontam: bool = False
    decontam_benchmarks: list[str] | None = None
    backend: str = "auto"
    batch_size: int = 16
    concurrency: int = 8
    timeout: float = 120.0


def _draw(i: int, personas: list[str], templates: list[str], seed: int) -> tuple[str, str, list[dict], list[str], int]:
    draw_seed = seed * 1_000_003 + i
    rng = random.Random(draw_seed)
    persona = rng.choice(personas)
    template = templates[i % len(templates)]
    msgs, seeds = generator_messages(persona, template, rng)
    return persona, template, msgs, seeds, draw_seed


def run_persona(opts: PersonaOptions) -> dict:
    t0 = time.perf_counter()
    bad = [t for t in opts.templates if t not in TEMPLATES]
    if bad or not opts.templates:
        raise DataError(f"--templates: unknown {bad or 'empty'} (choose from {', '.join(TEMPLATES)})")
    if opts.n < 1:
        raise DataError("-n: must be >= 1")
    personas = load_personas(opts.personas)
    out = Path(opts.out)
    max_draws = opts.max_draws or 3 * opts.n
    counts = {"draws": 0, "kept": 0, "duplicate": 0, "unusable": 0, "failed": 0}
    gen_counts: dict = {}
    kept: list[dict] = []
    seen: set[str] = set()
    cache_path = out.with_name(out.name + ".cache.jsonl")
    with JsonlCache(cache_path) as cache:
        i = 0
        while len(kept) < opts.n and i < max_draws:
            want = min(max_draws - i, max(opts.batch_size, round(1.25 * (opts.n - len(kept)))))
            draws = [_draw(j, personas, opts.templates, opts.seed) for j in range(i, i + want)]
            generate_cached(opts.generator, [(f"draw:{d[4]}", d[2]) for d in draws], cache, seed=opts.seed,
                            backend=opts.backend, batch_size=opts.batch_size, concurrency=opts.concurrency,
                            timeout=opts.timeout, counts=gen_counts)
            for persona, template, msgs, seeds, draw_seed in draws:
                counts["draws"] += 1
                g = cache.get(generation_key(msgs, opts.generator, opts.seed))
                if g is None or g["status"] != "ok":
                    counts["failed"] += 1
                    continue
                prompt = clean_prompt(g["text"])
                if prompt is None:
                    counts["unusable"] += 1
                    continue
                key = normalize(prompt)
                if key in seen:
                    counts["duplicate"] += 1
                    continue
                seen.add(key)
                kept.append(prompt_record(prompt, persona=persona, template=template, generator=opts.generator.label,
                                          seed=draw_seed, seeds_shown=seeds))
                if len(kept) == opts.n:
                    break
            i += want
        if opts.responder is not None and kept:
            items = [(r["id"], r["messages"]) for r in kept]
            generate_cached(opts.responder, items, cache, seed=opts.seed, backend=opts.backend,
                            batch_size=opts.batch_size, concurrency=opts.concurrency, timeout=opts.timeout,
                            counts=gen_counts)
            answered = []
            for r in kept:
                g = cache.get(generation_key(r["messages"], opts.responder, opts.seed))
                if g is None or g["status"] != "ok" or not g["text"].strip():
                    counts["no_response"] = counts.get("no_response", 0) + 1
                    continue
                r["messages"] = r["messages"] + [{"role": "assistant", "content": g["text"]}]
                r["provenance"]["responder"] = opts.responder.label
                answered.append(r)
            kept = answered
    counts["kept"] = len(kept)
    summary = {"out": str(out), "personas": len(personas), "templates": opts.templates,
               "generator": opts.generator.label, "responder": opts.responder.label if opts.responder else None,
               "counts": counts, "generations": gen_counts,
               "per_template": {t: sum(r["provenance"]["template"] == t for r in kept) for t in opts.templates}}
    if opts.decontam:
        summary["decontam"] = decontaminate_file(kept, out, opts.decontam_benchmarks)
        kept = summary["decontam"].pop("records")
    atomic_write_jsonl(out, kept)
    summary["written"] = len(kept)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out.with_name(out.name + ".summary.json"), summary)
    print(f"persona: wrote {len(kept)} {'SFT' if opts.responder else 'prompt'} records to {out} "
          f"({counts['draws']} draws: {counts['duplicate']} duplicates, {counts['unusable']} unusable, "
          f"{counts['failed']} failed)", flush=True)
    if len(kept) < opts.n:
        print(f"persona: only {len(kept)} of {opts.n} asked for (raise --max-draws)", flush=True)
    return summary


def decontaminate_file(records: list[dict], out: Path, benchmarks: list[str] | None) -> dict:
    """Run `tulu decontam` (remove mode) on ``records``; returns its summary lines and the kept records."""
    from tulu.decontam.run import DecontamOptions, decontaminate, parse_source, summary_lines

    work = out.with_name(out.name + ".decontam")
    raw = atomic_write_jsonl(work / "input.jsonl", records)
    report, _ = decontaminate(DecontamOptions(train=[parse_source(f"persona={raw}")], benchmarks=benchmarks,
                                              mode="remove", output_dir=work))
    lines = list(summary_lines(report))
    for line in lines:
        print(f"decontam: {line}")
    ds = report.get("output", {}).get("datasets", [{}])[0]
    if not ds.get("path"):
        return {"summary": lines, "report": str(work / "report.html"), "removed": len(records), "records": []}
    from tulu.data.personas import read_jsonl_dicts

    kept = read_jsonl_dicts(work / ds["path"])
    return {"summary": lines, "report": str(work / "report.html"), "removed": len(records) - len(kept), "records": kept}
