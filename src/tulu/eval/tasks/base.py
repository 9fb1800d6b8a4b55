"""What every evaluation task defines: data, prompt (chat messages), sampling, scoring and aggregation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.eval.metrics import mean_stderr
from tulu.rollout.base import SamplingParams

Messages = list[dict]


@dataclass
class Metric:
    value: float  # in percent (0-100) for rates, raw otherwise
    stderr: float

    def to_dict(self) -> dict:
        return {"value": self.value, "stderr": self.stderr}


@dataclass
class Task:
    """Base class. A subclass sets the class attributes and implements :meth:`messages` and :meth:`score`.

    ``score`` returns per-item metrics in [0, 1]; :meth:`aggregate` turns them into percentages with
    standard errors. ``version`` goes into the generation cache key: bump it when the prompt changes."""

    name: ClassVar[str] = ""
    benchmark: ClassVar[str] = ""  # tulu.data.benchmarks name
    suite: ClassVar[str] = ""  # "dev" | "unseen" | "extra"
    headline: ClassVar[str] = ""  # the metric that enters the suite average
    description: ClassVar[str] = ""
    version: ClassVar[int] = 1
    sampling: SamplingParams = field(default_factory=SamplingParams)

    needs_loglikelihood: ClassVar[bool] = False

    def unavailable(self) -> str | None:
        """A one-line reason this task cannot run with the current settings (data aside), or None."""
        if self.needs_loglikelihood:
            return (f"{self.name}: scores option log-likelihoods, which the generation backends do not "
                    "provide; not run")
        return None

    def load(self) -> list[BenchmarkItem]:
        return load_benchmark(self.benchmark)

    def messages(self, item: BenchmarkItem) -> Messages:
        raise NotImplementedError

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        raise NotImplementedError

    def score_batch(self, items: list[BenchmarkItem], responses: list[list[str]]) -> list[dict[str, float]]:
        """Score several items at once (a judge model batches); by default one after another."""
        return [self.score(it, r) for it, r in zip(items, responses)]

    def aggregate(self, items: list[BenchmarkItem], scores: list[dict[str, float]]) -> dict[str, Metric]:
        keys = list(scores[0]) if scores else []
        out = {}
        for k in keys:
            m, se = mean_stderr([s[k] for s in scores])
            out[k] = Metric(100 * m, 100 * se)
        return out

    def settings(self) -> dict[str, Any]:
        """Everything that changes the generations (the cache key)."""
        return {"task": self.name, "version": self.version, "sampling": dataclasses.asdict(self.sampling)}


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def few_shot_turns(pairs, fmt_q=lambda q: q, fmt_a=lambda a: a) -> Messages:
    """Few-shot exemplars as alternating user/assistant turns (the Tulu 3 chat format for few-shot)."""
    turns: Messages = []
    for q, a in pairs:
        turns += [user(fmt_q(q)), assistant(fmt_a(a))]
    return turns
