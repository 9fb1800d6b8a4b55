"""MMLU: 0-shot chain of thought ("Therefore, the answer is (X)", the Tulu 3 headline) and 5-shot multiple
choice answered directly with the letter (exemplars from MMLU's dev split, as chat turns)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.eval.metrics import extract_choice_cot, extract_choice_first_line
from tulu.eval.tasks.base import Messages, Task, assistant, user
from tulu.rollout.base import SamplingParams

COT_INSTRUCTION = ("Answer the following multiple-choice question. Reason step by step, then end your reply with "
                   "\"Therefore, the answer is (X)\", where X is the letter of the correct option.")


def subject_name(subject: str | None) -> str:
    return (subject or "general knowledge").replace("_", " ")


def cot_prompt(item: BenchmarkItem, instruction: str = COT_INSTRUCTION) -> str:
    topic = item.meta.get("subject")
    head = f"{instruction}\nTopic: {subject_name(topic)}." if topic else instruction
    return f"{head}\n\n{item.prompt}"


@dataclass
class MMLUCoT(Task):
    name = "mmlu"
    benchmark = "mmlu"
    suite = "dev"
    headline = "accuracy"
    description = "MMLU test (14042), 0-shot CoT, greedy, answer from \"the answer is (X)\", accuracy (micro)"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=512, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(cot_prompt(item))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        n = len(item.meta.get("choices") or "ABCD")
        return {"accuracy": float(extract_choice_cot(responses[0], n) == item.answer)}


@lru_cache(maxsize=1)
def _dev_by_subject() -> dict[str, list[BenchmarkItem]]:
    out: dict[str, list[BenchmarkItem]] = {}
    for it in load_benchmark("mmlu", split="dev"):
        out.setdefault(it.meta["subject"], []).append(it)
    return out


@dataclass
class MMLUMC(Task):
    name = "mmlu_mc"
    benchmark = "mmlu"
    suite = "dev"
    headline = "accuracy"
    description = "MMLU test, 5-shot (dev split) multiple choice answered with the letter, greedy, accuracy"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=8, logprobs=False))
    shots: int = 5

    def messages(self, item: BenchmarkItem) -> Messages:
        subject = item.meta["subject"]
        head = f"The following are multiple choice questions (with answers) about {subject_name(subject)}.\n\n"
        turns: Messages = []
        for ex in _dev_by_subject().get(subject, [])[: self.shots]:
            turns += [user(f"{ex.prompt}\nAnswer:"), assistant(ex.answer)]
        turns.append(user(f"{item.prompt}\nAnswer:"))
        turns[0] = user(head + turns[0]["content"])
        return turns

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        return {"accuracy": float(extract_choice_first_line(responses[0]) == item.answer)}
