"""GPQA-Diamond (unseen suite): 0-shot chain of thought, answer from "Therefore, the answer is (X)"."""

from __future__ import annotations

from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval.metrics import extract_choice_cot
from tulu.eval.tasks.base import Messages, Task, user
from tulu.eval.tasks.mmlu import COT_INSTRUCTION
from tulu.rollout.base import SamplingParams


@dataclass
class GPQA(Task):
    name = "gpqa"
    benchmark = "gpqa_diamond"
    suite = "unseen"
    headline = "accuracy"
    description = "GPQA-Diamond (198), options shuffled per question (seeded), 0-shot CoT, greedy, accuracy"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=1024, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(f"{COT_INSTRUCTION}\n\n{item.prompt}")]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        return {"accuracy": float(extract_choice_cot(responses[0], 4) == item.answer)}
