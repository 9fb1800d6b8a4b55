"""What every evaluation task defines: data, prompt (chat messages), sampling, scoring and aggregation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.eval.metrics import macro_mean_stderr, mean_stderr
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

    # "generate": messages -> sampled text; "loglikelihood": loglik_requests -> one log-prob per request
    request_type: ClassVar[str] = "generate"
    olmes: ClassVar[str] = ""  # the OLMES task (or suite) key this task reproduces
    # the item set when it is not the one the published number used (a stand-in), else None
    stand_in: ClassVar[str | None] = None

    def unavailable(self) -> str | None:
        """A one-line reason this task cannot run with the current settings (data aside), or None."""
        return None

    def not_comparable(self) -> str | None:
        """Why this task's score is "not comparable with the published number", or None when it is."""
        return self.stand_in

    def load(self) -> list[BenchmarkItem]:
        return load_benchmark(self.benchmark)

    def messages(self, item: BenchmarkItem) -> Messages:
        raise NotImplementedError

    def score(self, item: BenchmarkItem, responses: list) -> dict[str, float]:
        """Per-item metrics from the generated texts (or, for a log-likelihood task, from the log-prob of
        every request of :meth:`loglik_requests`, in order)."""
        raise NotImplementedError

    def loglik_requests(self, item: BenchmarkItem) -> list:
        """The :class:`tulu.rollout.loglik.LoglikRequest` list of a log-likelihood task."""
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
        out = {"task": self.name, "version": self.version, "request_type": self.request_type}
        if self.request_type == "generate":
            out["sampling"] = dataclasses.asdict(self.sampling)
        return out


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def assistant_prefix(content: str) -> dict:
    """An answer prefix the model continues (rendered after the assistant header, see tulu.rollout.common)."""
    return {"role": "assistant", "content": content, "continue": True}


def grouped(items: list[BenchmarkItem], scores: list[dict[str, float]], key: str,
            field_names: tuple[str, ...] = ("subject", "subset")) -> dict[str, list[float]]:
    """Per-item values of metric ``key`` grouped by the item's subject (or subset)."""
    groups: dict[str, list[float]] = {}
    for it, s in zip(items, scores):
        g = next((str(it.meta[f]) for f in field_names if it.meta.get(f)), "all")
        groups.setdefault(g, []).append(s[key])
    return groups


def macro_micro(items: list[BenchmarkItem], scores: list[dict[str, float]], key: str,
                per_group: bool = False) -> dict[str, Metric]:
    """``key`` (the unweighted mean over subjects, as OLMES's "macro" suites) and ``key_micro`` (over
    items); with ``per_group`` also ``key/<subject>``."""
    groups = grouped(items, scores, key)
    mac, mac_se = macro_mean_stderr(groups)
    mic, mic_se = mean_stderr([s[key] for s in scores])
    out = {key: Metric(100 * mac, 100 * mac_se), f"{key}_micro": Metric(100 * mic, 100 * mic_se)}
    if per_group:
        for g, vals in sorted(groups.items()):
            m, se = mean_stderr(vals)
            out[f"{key}/{g}"] = Metric(100 * m, 100 * se)
    return out


def few_shot_turns(pairs, fmt_q=lambda q: q, fmt_a=lambda a: a) -> Messages:
    """Few-shot exemplars as alternating user/assistant turns (the Tulu 3 chat format for few-shot)."""
    turns: Messages = []
    for q, a in pairs:
        turns += [user(fmt_q(q)), assistant(fmt_a(a))]
    return turns
