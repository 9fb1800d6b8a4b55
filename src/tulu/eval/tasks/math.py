"""MATH (Minerva, 7 subjects) and MATH-500: 4-shot Minerva CoT as chat turns, greedy; "flex" exact match
through the `math` verifier; the headline is the macro average over the 7 subjects."""

from __future__ import annotations

from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval import fewshot
from tulu.eval.metrics import macro_mean_stderr, mean_stderr
from tulu.eval.tasks.base import Messages, Metric, Task, few_shot_turns, user
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify


def math_problem(p: str) -> str:
    return f"Problem:\n{p.strip()}"


@dataclass
class MinervaMath(Task):
    name = "math"
    benchmark = "math"
    suite = "dev"
    headline = "flex_em_macro"
    description = "MATH test (5000, 7 subjects), 4-shot Minerva CoT, greedy, flex exact match, macro over subjects"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=1024, logprobs=False))
    shots: int = 4

    def messages(self, item: BenchmarkItem) -> Messages:
        shots = fewshot.minerva_math()[: self.shots]
        return few_shot_turns(shots, fmt_q=math_problem) + [user(math_problem(item.prompt))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        # flex_em: our verifier (stricter and wiser than the reference, docs/verifiers.md);
        # flex_em_ref: lm-eval minerva_math's math_verify metric, comparable with published numbers
        solution = item.meta.get("solution") or item.answer
        return {"flex_em": verify("math", responses[0], item.answer, prompt=item.prompt).score,
                "flex_em_ref": verify("math_ref", responses[0], solution).score}

    def aggregate(self, items, scores):
        groups: dict[str, list[float]] = {}
        for it, s in zip(items, scores):
            groups.setdefault(it.meta.get("subject") or "all", []).append(s["flex_em"])
        macro, macro_se = macro_mean_stderr(groups)
        micro, micro_se = mean_stderr([s["flex_em"] for s in scores])
        out = {"flex_em_macro": Metric(100 * macro, 100 * macro_se), "flex_em": Metric(100 * micro, 100 * micro_se)}
        for g, vals in sorted(groups.items()):
            m, se = mean_stderr(vals)
            out[f"flex_em/{g}"] = Metric(100 * m, 100 * se)
        if scores and "flex_em_ref" in scores[0]:
            ref_groups: dict[str, list[float]] = {}
            for it, s in zip(items, scores):
                ref_groups.setdefault(it.meta.get("subject") or "all", []).append(s["flex_em_ref"])
            ref_macro, ref_se = macro_mean_stderr(ref_groups)
            out["flex_em_ref_macro"] = Metric(100 * ref_macro, 100 * ref_se)
            m, se = mean_stderr([s["flex_em_ref"] for s in scores])
            out["flex_em_ref"] = Metric(100 * m, 100 * se)
        return out


@dataclass
class Math500(MinervaMath):
    name = "math500"
    benchmark = "math500"
    suite = "extra"
    headline = "flex_em"
    description = "MATH-500, 4-shot Minerva CoT, greedy, flex exact match"

    def aggregate(self, items, scores):
        out = {}
        for key in [k for k in ("flex_em", "flex_em_ref") if scores and k in scores[0]]:
            m, se = mean_stderr([s[key] for s in scores])
            out[key] = Metric(100 * m, 100 * se)
        return out
