"""`tulu data prefs` and `tulu data ifpairs`: Tulu 3's on-policy preference data (report §5.2.1, §5.3).

prefs, step by step (everything lands in ``--out DIR``):

1. **prompts** from any of our datasets (``--prompts SOURCE=N ...``);
2. **models per prompt**: ``--models-per-prompt K`` of the pool, drawn per prompt under the seed; the
   ``--on-policy`` model (e.g. the pipeline's SFT model) is always one of them;
3. **completions**: one per (prompt, model), cached in ``generations.jsonl``;
4. **judgments**: the judge scores every completion, cached in ``judgments.jsonl``. Judges:
   ``openai:MODEL@URL`` (an LLM rates 1-5 on four aspects, :mod:`tulu.data.judging`; an answer that does
   not parse is asked again up to ``--judge-retries`` times at ``--retry-temperature``, then recorded as
   ``unparseable``), ``rm:PATH`` (a reward model from `tulu rm`: the score is its reward), or
   ``verifier`` (prompts with a ground truth: 1 if the verifier accepts, else 0). ``--verifier-first``
   sends prompts that carry a ground truth to their verifier whatever the judge;
5. **binarisation** (:func:`tulu.data.judging.binarize`) into ``pairs.jsonl``, and ``summary.json`` with a
   count for every outcome.

A rerun with the same arguments reads both caches and only does what is missing (a killed run continues).
Request failures (endpoint down) are recorded as ``error`` and retried by the next run; unparseable judge
answers are final.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tulu.curate import JsonlCache, ModelSpec, check_pool, generate_cached, generation_key, load_prompts, parse_endpoint
from tulu.data.formats import DataError
from tulu.data.judging import (
    ASPECTS,
    Candidate,
    JudgeParseError,
    aspect_messages,
    binarize,
    judge_messages,
    mean_rating,
    pair_record,
    parse_aspect_rating,
    parse_judgment,
)
from tulu.utils import atomic_write_json, atomic_write_jsonl, progress, stable_hash

log = logging.getLogger(__name__)


@dataclass
class JudgeOptions:
    spec: str  # openai:MODEL@URL | rm:PATH | verifier
    verifier_first: bool = False
    per_aspect: bool = False
    retries: int = 2
    max_tokens: int = 64
    temperature: float = 0.0
    retry_temperature: float = 0.7
    concurrency: int = 8
    timeout: float = 120.0
    rm_batch: int = 8

    def kind(self) -> str:
        if self.spec.startswith("openai:"):
            parse_endpoint(self.spec)
            return "llm"
        if self.spec.startswith("rm:"):
            return "rm"
        if self.spec == "verifier":
            return "verifier"
        raise DataError(f"--judge {self.spec}: expected openai:MODEL@URL, rm:PATH or verifier")


@dataclass
class PrefsOptions:
    out: Path
    prompts: list[str]
    models: list[ModelSpec]
    judge: JudgeOptions
    models_per_prompt: int = 4
    on_policy: str | None = None
    seed: int = 0
    backend: str = "auto"
    batch_size: int = 16
    concurrency: int = 8
    timeout: float = 120.0


def assign_models(prompt_id: str, pool: Sequence[str], k: int, on_policy: str | None, seed: int) -> list[str]:
    """The ``k`` pool models that answer a prompt (all when the pool is smaller), drawn under (seed, prompt
    id), so that a rerun draws the same; ``on_policy`` is always among them."""
    rng = random.Random(f"{seed}:models:{prompt_id}")
    k = min(k, len(pool))
    if on_policy is None:
        return sorted(rng.sample(list(pool), k), key=list(pool).index)
    others = [m for m in pool if m != on_policy]
    return [on_policy] + sorted(rng.sample(others, k - 1), key=others.index)


# ------------------------------------------------------------------------------------------------ judges
def judgment_key(gen_key: str, judge: str) -> str:
    return stable_hash(gen_key, judge)


async def _llm_judge_all(items: list[tuple[str, list[dict], str]], opts: JudgeOptions, cache: JsonlCache,
                         bar, counts: Counter) -> None:
    """Judge every (key, prompt messages, completion) through the OpenAI client; one cache line each."""
    from tulu.rollout.openai import OpenAIClient, OpenAIError

    model, url = parse_endpoint(opts.spec)

    async def ask(key: str, msgs: list[dict], parse) -> tuple[dict | None, object]:
        """(failure record or None, parsed value): the question asked up to 1 + retries times."""
        raw, error = "", ""
        for attempt in range(opts.retries + 1):
            temp = opts.temperature if attempt == 0 else opts.retry_temperature
            try:
                resp = await client.chat(msgs, model=model, max_tokens=opts.max_tokens, temperature=temp,
                                         seed=attempt)
            except OpenAIError as exc:
                return {"key": key, "status": "error", "error": str(exc)[:500], "attempts": attempt + 1}, None
            choices = resp.get("choices") or [{}]
            raw = ((choices[0].get("message") or {}).get("content")) or ""
            try:
                return None, (parse(raw), attempt + 1, raw)
            except JudgeParseError as exc:
                error = str(exc)
        return {"key": key, "status": "unparseable", "error": error, "attempts": opts.retries + 1,
                "raw": raw[:500]}, None

    async def one(key: str, prompt: list[dict], text: str) -> dict:
        if not opts.per_aspect:
            fail, got = await ask(key, judge_messages(prompt, text), parse_judgment)
            if fail is not None:
                return fail
            ratings, attempts, raw = got
            return {"key": key, "status": "ok", "ratings": ratings, "score": mean_rating(ratings),
                    "attempts": attempts, "raw": raw[:500]}
        ratings, attempts = {}, 0
        for aspect in ASPECTS:  # UltraFeedback: one question per aspect
            fail, got = await ask(key, aspect_messages(prompt, text, aspect), parse_aspect_rating)
            if fail is not None:
                fail["error"] = f"{aspect}: {fail['error']}"
                return fail
            ratings[aspect], n, _ = got
            attempts += n
        return {"key": key, "status": "ok", "ratings": ratings, "score": mean_rating(ratings), "attempts": attempts}

    async with OpenAIClient(url, concurrency=opts.concurrency, timeout=opts.timeout) as client:
        tasks = [asyncio.ensure_future(one(*it)) for it in items]
        try:
            for fut in asyncio.as_completed(tasks):
                rec = await fut
                cache.add(rec)
                counts[rec["status"]] += 1
                bar.update(1)
        finally:  # interrupted: cancel what is in flight (what finished is in the cache)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _rm_scores(path: str, items: list[tuple[str, list[dict], str]], batch: int):
    """Yield ``(key, reward)`` per item: the score head on the last token of prompt + response, ``batch``
    completions per forward."""
    import torch

    from tulu.data.packing import collate_sequences
    from tulu.data.templates import encode_prompt_response
    from tulu.models import load_model, load_tokenizer
    from tulu.train.rm import last_token_scores

    tok = load_tokenizer(path)
    model = load_model(path, num_labels=1)
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.no_grad():
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            encs = [encode_prompt_response(p, [{"role": "assistant", "content": t}], tok) for _, p, t in chunk]
            batch_t = collate_sequences(encs, pad).to(next(model.parameters()).device)
            yield from zip([k for k, _, _ in chunk], last_token_scores(model, batch_t).tolist())


def judge_cached(todo: list[tuple[str, dict, str]], opts: JudgeOptions, cache: JsonlCache, counts: Counter) -> None:
    """Judge every ``(judgment key, prompt record, completion)`` of ``todo`` and append each result."""
    if not todo:
        return
    kind = opts.kind()
    by_verifier = [t for t in todo if kind == "verifier" or (opts.verifier_first and "ground_truth" in t[1])]
    taken = {t[0] for t in by_verifier}
    rest = [t for t in todo if t[0] not in taken]
    with progress(total=len(todo), desc=f"judge ({opts.spec})", unit="completion") as bar:
        if by_verifier:
            from tulu.verifiers.base import verify

            for key, prompt, text in by_verifier:
                if "ground_truth" not in prompt or not prompt.get("verifier"):
                    rec = {"key": key, "status": "no_ground_truth", "judge": "verifier"}
                else:
                    r = verify(prompt["verifier"], text, prompt["ground_truth"])
                    rec = {"key": key, "status": "ok", "score": r.score, "judge": f"verifier:{prompt['verifier']}",
                           "reason": r.reason[:200]}
                cache.add(rec)
                counts[rec["status"]] += 1
                bar.update(1)
        if rest and kind == "llm":
            asyncio.run(_llm_judge_all([(k, p["messages"], t) for k, p, t in rest], opts, cache, bar, counts))
        elif rest and kind == "rm":
            for key, score in _rm_scores(opts.spec[3:], [(k, p["messages"], t) for k, p, t in rest], opts.rm_batch):
                cache.add({"key": key, "status": "ok", "score": float(score), "judge": opts.spec})
                counts["ok"] += 1
                bar.update(1)


# ------------------------------------------------------------------------------------------------ driver
def run_prefs(opts: PrefsOptions) -> dict:
    """Generate, judge and binarise (see the module docstring); returns the summary written to summary.json."""
    t0 = time.perf_counter()
    check_pool(opts.models)
    pool = {m.name: m for m in opts.models}
    if opts.on_policy is not None and opts.on_policy not in pool:
        raise DataError(f"--on-policy {opts.on_policy}: not a model of the pool ({', '.join(pool)})")
    if opts.models_per_prompt < 2:
        raise DataError("--models-per-prompt: a pair needs at least 2 models per prompt")
    judge_id = opts.judge.spec
    opts.judge.kind()
    prompts = load_prompts(opts.prompts, opts.seed)
    if not prompts:
        raise DataError("--prompts: no prompts")
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    by_id = {p["id"]: p for p in prompts}
    assigned = {p["id"]: assign_models(p["id"], list(pool), opts.models_per_prompt, opts.on_policy, opts.seed)
                for p in prompts}
    print(f"prefs: {len(prompts)} prompts, pool {', '.join(pool)}, {min(opts.models_per_prompt, len(pool))} models "
          f"per prompt" + (f" (on-policy: {opts.on_policy})" if opts.on_policy else "") + f", judge {judge_id}",
          flush=True)
    gen_counts: dict = {}
    jcounts: Counter = Counter()
    with JsonlCache(out / "generations.jsonl") as gens, JsonlCache(out / "judgments.jsonl") as judged:
        for name, spec in pool.items():
            items = [(pid, by_id[pid]["messages"]) for pid, models in assigned.items() if name in models]
            generate_cached(spec, items, gens, seed=opts.seed, backend=opts.backend, batch_size=opts.batch_size,
                            concurrency=opts.concurrency, timeout=opts.timeout, counts=gen_counts)
        todo, cands_of = [], {}
        for pid, models in assigned.items():
            cands_of[pid] = []
            for name in models:
                gkey = generation_key(by_id[pid]["messages"], pool[name], opts.seed)
                g = gens.get(gkey)
                if g is None or g.get("status") != "ok":
                    continue
                jkey = judgment_key(gkey, judge_id + ("+verifier" if opts.judge.verifier_first else "")
                                    + ("+per-aspect" if opts.judge.per_aspect else ""))
                cands_of[pid].append((name, g["text"], jkey))
                hit = judged.get(jkey)
                if hit is not None and hit["status"] not in ("error",):
                    jcounts["cached"] += 1
                else:
                    todo.append((jkey, by_id[pid], g["text"]))
        print(f"judge: {jcounts['cached']} judgments cached, {len(todo)} to do", flush=True)
        judge_cached(todo, opts.judge, judged, jcounts)
        pairs, outcomes = [], Counter()
        for pid, cands in cands_of.items():
            scored = []
            for name, text, jkey in cands:
                j = judged.get(jkey)
                if j is not None and j["status"] == "ok":
                    scored.append(Candidate(name, text, float(j["score"]), j.get("ratings"), {"judge": j.get("judge")}))
            res = binarize(scored, random.Random(f"{opts.seed}:pair:{pid}"))
            outcomes[res.outcome] += 1
            if res.outcome == "pair":
                judge = res.chosen.extra.get("judge") or judge_id
                pairs.append(pair_record(by_id[pid], res, judge, scored))
    atomic_write_jsonl(out / "pairs.jsonl", pairs)
    judgments = {k: jcounts[k] for k in sorted(jcounts)}
    summary = {"prompts": len(prompts), "pool": {n: s.label for n, s in pool.items()},
               "models_per_prompt": min(opts.models_per_prompt, len(pool)), "on_policy": opts.on_policy,
               "judge": judge_id, "verifier_first": opts.judge.verifier_first,
               "generations": {**{"cached": 0, "generated": 0, "failed": 0}, **gen_counts},
               "judgments": judgments, "prompt_outcomes": {k: outcomes[k] for k in ("pair", "tie", "identical", "too_few")},
               "pairs": len(pairs), "seconds": round(time.perf_counter() - t0, 1), "pairs_file": str(out / "pairs.jsonl")}
    atomic_write_json(out / "summary.json", summary)
    print(f"prefs: {len(pairs)} pairs from {len(prompts)} prompts -> {out / 'pairs.jsonl'}\n"
          f"  generations {summary['generations']}\n  judgments {judgments}\n"
          f"  prompts: {summary['prompt_outcomes']}", flush=True)
    return summary


# ---------------------------------------------------------------------------------------------- ifpairs
def run_ifpairs(out: Path, prompts: list[str], model: ModelSpec, *, seed: int = 0, backend: str = "auto",
                batch_size: int = 16, keep: str = "all", timeout: float = 120.0) -> dict:
    """IF-persona pairs (:mod:`tulu.data.if_pairs`): ``model`` answers each constraint prompt and its relaxed
    version; ``keep="verified"`` keeps only pairs whose chosen side keeps every original constraint and whose
    rejected side breaks one (the ``ifeval`` verifier decides)."""
    from tulu.data.if_pairs import if_pair_record, relax
    from tulu.verifiers.base import verify

    t0 = time.perf_counter()
    recs = [r for r in load_prompts(prompts, seed)]
    usable, outcomes = [], Counter()
    for r in recs:
        gt = r.get("ground_truth")
        rel = relax(gt, random.Random(f"{seed}:relax:{r['id']}")) if isinstance(gt, dict) else None
        if rel is None:
            outcomes["no_constraint_found"] += 1
            continue
        usable.append((r, rel))
    out = Path(out)
    counts: dict = {}
    with JsonlCache(out / "generations.jsonl") as gens:
        items = [(f"{r['id']}:original", r["messages"]) for r, _ in usable]
        items += [(f"{r['id']}:relaxed", [{"role": "user", "content": rel.prompt}]) for r, rel in usable]
        generate_cached(model, items, gens, seed=seed, backend=backend, batch_size=batch_size, timeout=timeout,
                        counts=counts)
        pairs = []
        for r, rel in usable:
            a = gens.get(generation_key(r["messages"], model, seed))
            b = gens.get(generation_key([{"role": "user", "content": rel.prompt}], model, seed))
            if a is None or b is None or a["status"] != "ok" or b["status"] != "ok":
                outcomes["generation_failed"] += 1
                continue
            if a["text"].strip() == b["text"].strip():
                outcomes["identical"] += 1
                continue
            cf = verify("ifeval", a["text"], r["ground_truth"]).score == 1.0
            rf = verify("ifeval", b["text"], r["ground_truth"]).score == 1.0
            if keep == "verified" and not (cf and not rf):
                outcomes["unverified"] += 1
                continue
            outcomes["pair"] += 1
            pairs.append(if_pair_record(r, rel, a["text"], b["text"], model=model.label,
                                        chosen_follows=cf, rejected_follows=rf))
    atomic_write_jsonl(out / "pairs.jsonl", pairs)
    summary = {"prompts": len(recs), "model": model.label, "keep": keep,
               "generations": {**{"cached": 0, "generated": 0, "failed": 0}, **counts},
               "outcomes": dict(sorted(outcomes.items())), "pairs": len(pairs),
               "chosen_follows": sum(p["provenance"]["chosen_follows"] for p in pairs),
               "rejected_follows": sum(p["provenance"]["rejected_follows"] for p in pairs),
               "seconds": round(time.perf_counter() - t0, 1), "pairs_file": str(out / "pairs.jsonl")}
    atomic_write_json(out / "summary.json", summary)
    print(f"ifpairs: {len(pairs)} pairs from {len(recs)} prompts -> {out / 'pairs.jsonl'}; {summary['outcomes']}",
          flush=True)
    return summary
