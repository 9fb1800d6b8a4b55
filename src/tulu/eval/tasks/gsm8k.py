"""GSM8K: 8-shot chain of thought as a multi-turn chat, greedy; exact match through the `gsm8k` verifier."""

from __future__ import annotations

from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval import fewshot
from tulu.eval.tasks.base import Messages, Task, few_shot_turns, user
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify


def gsm8k_question(q: str) -> str:
    return f"Question: {q.strip()}"


@dataclass
class GSM8K(Task):
    name = "gsm8k"
    benchmark = "gsm8k"
    suite = "dev"
    headline = "exact_match"
    description = "GSM8K test (1319), 8-shot CoT (lm-eval exemplars) as chat turns, greedy, exact match"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=512, logprobs=False))
    shots: int = 8

    def messages(self, item: BenchmarkItem) -> Messages:
        shots = fewshot.gsm8k_cot()[: self.shots]
        return few_shot_turns(shots, fmt_q=gsm8k_question) + [user(gsm8k_question(item.prompt))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        # exact_match: our verifier (stricter and wiser than the reference, docs/verifiers.md);
        # exact_match_ref: lm-eval's flexible-extract rule, comparable with published numbers
        return {"exact_match": verify("gsm8k", responses[0], item.answer, prompt=item.prompt).score,
                "exact_match_ref": verify("gsm8k_ref", responses[0], item.answer).score}
