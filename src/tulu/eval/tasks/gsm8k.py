"""GSM8K as OLMES ``gsm8k::tulu``: 8-shot chain of thought as chat turns, greedy, 512 new tokens.

The user turns are "Question: ...\\nAnswer:" and the assistant turns the 8 standard CoT exemplars (Wei et
al.; OLMES's ``STD:GSM8k`` source) ending "So the answer is N." (the exemplars are read from lm-eval's
``gsm8k-cot.yaml``, whose copies end "The answer is N.", and reworded). The headline is OLMES's exact match
(the last number of the response, commas removed); our ``gsm8k`` verifier's score is reported beside it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval import fewshot
from tulu.eval.metrics import gsm8k_olmes_match
from tulu.eval.tasks.base import Messages, Task, few_shot_turns, user
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify

GSM8K_STOP = ["Question:", "</s>", "<|im_end|>"]


def gsm8k_question(q: str) -> str:
    return f"Question: {q.strip()}\nAnswer:"


def olmes_exemplar_answer(answer: str) -> str:
    """lm-eval's "... The answer is 6." -> OLMES's "... So the answer is 6."."""
    return re.sub(r"(?<!So )The answer is (\S+?)\.?$", r"So the answer is \1.", answer.strip())


@dataclass
class GSM8K(Task):
    name = "gsm8k"
    benchmark = "gsm8k"
    suite = "dev"
    olmes = "gsm8k::tulu"
    headline = "exact_match"
    version = 2
    description = ("GSM8K test (1319), 8-shot CoT as chat turns (\"Question: ...\\nAnswer:\"), greedy, 512 tokens, "
                   "OLMES exact match (last number); ours: gsm8k verifier")
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(
        max_new_tokens=512, stop=list(GSM8K_STOP), logprobs=False))
    shots: int = 8

    def messages(self, item: BenchmarkItem) -> Messages:
        shots = fewshot.gsm8k_cot()[: self.shots]
        return few_shot_turns(shots, fmt_q=gsm8k_question, fmt_a=olmes_exemplar_answer) + [
            user(gsm8k_question(item.prompt))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        # exact_match: OLMES's extraction, the headline comparable with the published numbers;
        # exact_match_ours: our verifier (stricter and wiser, docs/verifiers.md);
        # exact_match_ref: lm-eval's flexible-extract rule (benchmarks/eval_parity_lmeval.py compares with it)
        return {"exact_match": gsm8k_olmes_match(responses[0], item.answer),
                "exact_match_ours": verify("gsm8k", responses[0], item.answer, prompt=item.prompt).score,
                "exact_match_ref": verify("gsm8k_ref", responses[0], item.answer).score}
