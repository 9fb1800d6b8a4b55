"""AlpacaEval 2 (805 instructions): the model answers in chat; a judge compares each answer with the shipped
reference answer (GPT-4-1106-preview outputs); the headline is the length-controlled win rate.

Judges (pick one, the task is skipped without one):
* :class:`LocalJudge` - any model through a generation backend (``--judge-model``), greedy, asked in both
  orders to cancel position bias;
* :class:`OpenAIJudge` - an OpenAI-compatible ``/v1/chat/completions`` endpoint (``--judge-url``), e.g. a
  vLLM server or the OpenAI API (key from ``OPENAI_API_KEY``).
A small local judge gives a number that only checks the pipeline; the published AlpacaEval 2 figures use
GPT-4-class judges."""

from __future__ import annotations

import json
import os
import re
import urllib.request
from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval.metrics import length_controlled_win_rate, mean_stderr
from tulu.eval.tasks.base import Messages, Metric, Task, user
from tulu.rollout.base import SamplingParams

JUDGE_TEMPLATE = (
    "You are comparing two answers to the same instruction. Decide which answer is more helpful, correct "
    "and well written for a human who gave the instruction.\n\n"
    "# Instruction\n{instruction}\n\n# Answer (a)\n{a}\n\n# Answer (b)\n{b}\n\n"
    "Which answer is better? Reply with exactly one letter: a or b.")


def parse_verdict(text: str) -> float | None:
    """1.0 if the judge picked (a), 0.0 for (b), None when the reply names neither (or both)."""
    t = text.strip().lower()
    m = re.match(r"^\(?\s*(?:answer\s*)?\(?([ab])\)?\b", t)
    if m:
        return 1.0 if m.group(1) == "a" else 0.0
    hits = set(re.findall(r"answer \(?([ab])\)?", t))
    if len(hits) == 1:
        return 1.0 if hits.pop() == "a" else 0.0
    return None


class Judge(Protocol):
    def prefer(self, instructions: Sequence[str], outputs: Sequence[str], references: Sequence[str]) -> list[float]:
        """P(model output beats the reference) for each instruction."""


def _pairwise_prompts(instructions, outputs, references):
    fwd = [JUDGE_TEMPLATE.format(instruction=i, a=o, b=r) for i, o, r in zip(instructions, outputs, references)]
    rev = [JUDGE_TEMPLATE.format(instruction=i, a=r, b=o) for i, o, r in zip(instructions, outputs, references)]
    return fwd, rev


def _combine(fwd: list[float | None], rev: list[float | None]) -> list[float]:
    """Average of the two orders; an unparseable verdict counts as a tie (0.5)."""
    out = []
    for f, r in zip(fwd, rev):
        a = 0.5 if f is None else f
        b = 0.5 if r is None else 1.0 - r
        out.append((a + b) / 2)
    return out


@dataclass
class LocalJudge:
    backend: object  # tulu.rollout.base.GenerationBackend
    max_new_tokens: int = 8

    def describe(self) -> str:
        return f"local model through the {getattr(self.backend, 'name', '?')} backend, our pairwise prompt"

    def prefer(self, instructions, outputs, references):
        fwd, rev = _pairwise_prompts(instructions, outputs, references)
        params = SamplingParams(max_new_tokens=self.max_new_tokens, logprobs=False)
        res = self.backend.generate([[user(p)] for p in fwd + rev], params)
        verdicts = [parse_verdict(r.completions[0].text) for r in res]
        return _combine(verdicts[: len(fwd)], verdicts[len(fwd):])


@dataclass
class OpenAIJudge:
    base_url: str
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0

    def describe(self) -> str:
        return f"{self.model} at {self.base_url} (OpenAI-compatible), our pairwise prompt"

    def _ask(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "temperature": 0, "max_tokens": 8,
                           "messages": [{"role": "user", "content": prompt}]}).encode()
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        url = self.base_url.rstrip("/") + ("/chat/completions" if self.base_url.rstrip("/").endswith("/v1")
                                           else "/v1/chat/completions")
        req = urllib.request.Request(url, data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return json.loads(resp.read())["choices"][0]["message"]["content"] or ""

    def prefer(self, instructions, outputs, references):
        fwd, rev = _pairwise_prompts(instructions, outputs, references)
        return _combine([parse_verdict(self._ask(p)) for p in fwd], [parse_verdict(self._ask(p)) for p in rev])


@dataclass
class AlpacaEval(Task):
    name = "alpaca_eval"
    benchmark = "alpaca_eval"
    suite = "dev"
    headline = "lc_win_rate"
    olmes = "alpaca_eval_v2::tulu"
    stand_in = ("our judge prompt and a length control without AlpacaEval 2's per-instruction term, not the "
                "alpaca-eval package's weighted GPT-4-turbo annotator and GLM: not comparable with the published number")
    description = "AlpacaEval 2 (805), chat, greedy; judged pairwise against the shipped reference answers; LC win rate"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=1024, logprobs=False))
    judge: Judge | None = None
    bootstrap: int = 200

    def unavailable(self) -> str | None:
        if self.judge is None:
            return "alpaca_eval needs a judge: pass --judge-model PATH_OR_ID or --judge-url URL"
        return None

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(item.prompt)]

    def score_batch(self, items: list[BenchmarkItem], responses: list[list[str]]) -> list[dict[str, float]]:
        outs = [r[0] for r in responses]
        prefs = self.judge.prefer([it.prompt for it in items], outs, [it.answer for it in items])
        return [{"win": p, "len_model": float(len(o)), "len_ref": float(len(it.answer))}
                for p, o, it in zip(prefs, outs, items)]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        return self.score_batch([item], [responses])[0]

    def aggregate(self, items, scores):
        prefs = np.array([s["win"] for s in scores])
        lm, lr = np.array([s["len_model"] for s in scores]), np.array([s["len_ref"] for s in scores])
        raw, lc = length_controlled_win_rate(prefs, lm, lr)
        _, raw_se = mean_stderr(prefs)
        rng = np.random.default_rng(0)
        boots = []
        for _ in range(self.bootstrap if len(prefs) > 1 else 0):
            idx = rng.integers(0, len(prefs), len(prefs))
            boots.append(length_controlled_win_rate(prefs[idx], lm[idx], lr[idx])[1])
        lc_se = float(np.std(boots, ddof=1)) if len(boots) > 1 else 0.0
        return {"lc_win_rate": Metric(lc, lc_se), "win_rate": Metric(raw, 100 * raw_se),
                "avg_length": Metric(float(lm.mean()), float(lm.std(ddof=1) / np.sqrt(len(lm))) if len(lm) > 1 else 0.0)}
