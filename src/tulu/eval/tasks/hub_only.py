"""Tasks whose data only the Hugging Face hub has: BBH, PopQA (dev); MMLU-Pro, AGIEval-en, DeepMind Math
(unseen); TruthfulQA MC2 (dev). Offline they are skipped with the loader's one-line reason. None of them
has been run here (no network); their prompt and scoring code is tested on hand-written items."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.eval import fewshot
from tulu.eval.metrics import extract_choice_cot
from tulu.eval.tasks.base import Messages, Task, few_shot_turns, user
from tulu.eval.tasks.mmlu import COT_INSTRUCTION, cot_prompt
from tulu.rollout.base import SamplingParams

_BBH_ANSWER = re.compile(r"the answer is (.*?)(?:\.\s*$|\.\n|$)", re.IGNORECASE | re.MULTILINE)


def bbh_answer(response: str) -> str:
    hits = _BBH_ANSWER.findall(response)
    return hits[-1].strip() if hits else response.strip().split("\n")[-1].strip()


def _norm(s: str) -> str:
    return " ".join(s.strip().strip(".").lower().split())


@dataclass
class BBH(Task):
    name = "bbh"
    benchmark = "bbh"
    suite = "dev"
    headline = "exact_match"
    description = "BIG-Bench Hard (27 subsets, hub), 3-shot CoT (lm-eval exemplars), greedy, exact match"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=512, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        desc, shots = fewshot.bbh_cot(item.meta["subset"])
        turns = few_shot_turns(shots, fmt_q=lambda q: f"Q: {q}\nA: Let's think step by step.")
        turns.append(user(f"Q: {item.prompt}\nA: Let's think step by step."))
        turns[0] = user(f"{desc}\n\n{turns[0]['content']}") if desc else turns[0]
        return turns

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        return {"exact_match": float(_norm(bbh_answer(responses[0])) == _norm(str(item.answer)))}


@dataclass
class PopQA(Task):
    name = "popqa"
    benchmark = "popqa"
    suite = "dev"
    headline = "exact_match"
    description = "PopQA (hub), 15-shot chat, greedy; correct if any accepted answer appears in the response"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=30, logprobs=False))
    shots: int = 15

    def messages(self, item: BenchmarkItem) -> Messages:
        # exemplars: the first `shots` other questions of the set (PopQA has no train split)
        pool = [it for it in _popqa_pool() if it.id != item.id][: self.shots]
        return few_shot_turns([(p.prompt, p.answer[0]) for p in pool]) + [user(item.prompt)]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        text = responses[0].lower()
        return {"exact_match": float(any(str(a).lower() in text for a in item.answer))}


def _popqa_pool() -> list[BenchmarkItem]:
    return load_benchmark("popqa")[:16]


@dataclass
class TruthfulQAMC2(Task):
    name = "truthfulqa"
    benchmark = "truthfulqa"
    suite = "dev"
    headline = "mc2"
    description = "TruthfulQA MC2 (hub); needs log-likelihoods of the answer options"
    needs_loglikelihood = True

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(item.prompt)]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        raise NotImplementedError("TruthfulQA MC2 scores option log-likelihoods, which generation backends lack")


@dataclass
class _CoTChoice(Task):
    suite = "unseen"
    headline = "accuracy"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=1024, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(cot_prompt(item))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        n = len(item.meta.get("choices") or "ABCDEFGHIJ")
        return {"accuracy": float(extract_choice_cot(responses[0], n) == item.answer)}


@dataclass
class MMLUPro(_CoTChoice):
    name = "mmlu_pro"
    benchmark = "mmlu_pro"
    description = "MMLU-Pro (hub), 0-shot CoT, \"the answer is (X)\", accuracy"


@dataclass
class AGIEval(_CoTChoice):
    name = "agieval"
    benchmark = "agieval"
    description = "AGIEval English subsets (hub), 0-shot CoT, \"the answer is (X)\", accuracy"

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(f"{COT_INSTRUCTION}\n\n{item.prompt}")]


@dataclass
class DeepMindMath(Task):
    name = "deepmind_math"
    benchmark = "deepmind_math"
    suite = "unseen"
    headline = "exact_match"
    description = "DeepMind Mathematics (hub), 0-shot CoT, final answer after \"the answer is\", exact match"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=512, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(f"{item.prompt}\nThink step by step, then end with \"Therefore, the answer is X\".")]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        return {"exact_match": float(_norm(bbh_answer(responses[0])) == _norm(str(item.answer)))}
