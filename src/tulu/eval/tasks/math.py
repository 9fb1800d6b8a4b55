"""MATH as OLMES ``minerva_math::tulu`` (7 subjects) and MATH-500 (``minerva_math_500::tulu``): 4-shot
Minerva CoT as chat turns ("Problem:\n...\n\nSolution:"), greedy, 1024 new tokens, no stop strings.

The exemplars are OLMES's own text (:func:`tulu.eval.fewshot.minerva_math_olmes`, parsed from the OLMES
rendering shipped with the data), not lm-eval's copies, which differ in a few characters.

The headline is OLMES's primary metric, exact match on the Minerva answer phrase ("Final Answer: The final
answer is X. I hope it is correct.", our ``math_strict`` verifier), macro-averaged over the 7 subjects
(the suite's "macro" aggregation). The "flex" match (any boxed or Minerva answer, our ``math`` verifier)
is reported beside it, as OLMES's ``exact_match_flex``."""

from __future__ import annotations

from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval import fewshot
from tulu.eval.metrics import mean_stderr
from tulu.eval.tasks.base import Messages, Metric, Task, few_shot_turns, macro_micro, user
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify


def math_problem(p: str) -> str:
    return f"Problem:\n{p.strip()}\n\nSolution:"


@dataclass
class MinervaMath(Task):
    name = "math"
    benchmark = "math"
    suite = "dev"
    olmes = "minerva_math::tulu"
    headline = "exact_match"
    version = 3
    description = ("MATH test (5000, 7 subjects), 4-shot Minerva CoT as chat turns, greedy, 1024 tokens; Minerva "
                   "exact match macro over subjects (flex beside it)")
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=1024, logprobs=False))
    shots: int = 4

    def messages(self, item: BenchmarkItem) -> Messages:
        shots = fewshot.minerva_math_olmes()[: self.shots]
        return few_shot_turns(shots, fmt_q=math_problem) + [user(math_problem(item.prompt))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        # exact_match: Minerva's strict match (OLMES's headline); exact_match_flex: our flex verifier (stricter and
        # wiser, docs/verifiers.md); exact_match_ref: lm-eval minerva_math's math_verify metric
        solution = item.meta.get("solution") or item.answer
        return {"exact_match": verify("math_strict", responses[0], item.answer).score,
                "exact_match_flex": verify("math", responses[0], item.answer, prompt=item.prompt).score,
                "exact_match_ref": verify("math_ref", responses[0], solution).score}

    def aggregate(self, items, scores):
        out = macro_micro(items, scores, "exact_match", per_group=True)
        out.update(macro_micro(items, scores, "exact_match_flex"))
        out.update(macro_micro(items, scores, "exact_match_ref"))
        return out


@dataclass
class Math500(MinervaMath):
    name = "math500"
    benchmark = "math500"
    suite = "extra"
    olmes = "minerva_math_500::tulu"
    description = "MATH-500, 4-shot Minerva CoT as chat turns, greedy, 1024 tokens, Minerva exact match (flex beside)"

    def aggregate(self, items, scores):
        out = {}
        for k in ("exact_match", "exact_match_flex", "exact_match_ref"):
            m, se = mean_stderr([s[k] for s in scores])
            out[k] = Metric(100 * m, 100 * se)
        return out
