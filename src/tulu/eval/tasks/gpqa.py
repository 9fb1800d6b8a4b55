"""GPQA as OLMES ``gpqa:0shot_cot::tulu3``: 0-shot chain of thought with the Tulu 3 instruction before and
after "Question: ...\\nChoices:\\n (A) ...", greedy, 2048 new tokens, no stop strings; the answer is the
last "Therefore, the answer is (X)" (falling back, as OLMES does, to the last "(X)", then the last
stand-alone letter).

OLMES scores GPQA's main set (448 questions). It loads from the hub when the hub may be used and the
gated dataset is accessible (``Idavidrein/gpqa``, an accepted licence and ``HF_TOKEN``); otherwise the task
runs on GPQA-Diamond (198, a subset of main, shipped offline) and marks its score "not comparable with the
published number". Options are shuffled as OLMES does: ``random.Random(111 + row index)`` over
(incorrect 1, incorrect 2, incorrect 3, correct), row index within the file that is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem, BenchmarkUnavailable, load_benchmark, unavailable_reason
from tulu.eval.metrics import extract_choice_olmes
from tulu.eval.tasks.base import Messages, Task, user
from tulu.rollout.base import SamplingParams

log = logging.getLogger(__name__)

TULU3_MC_INSTRUCTION = ("Answer the following multiple-choice question by giving the correct answer letter in "
                        "parentheses. Provide CONCISE reasoning for the answer, and make sure to finish the response "
                        "with \"Therefore, the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of {opts}.")
TULU3_MC_REMINDER = ("Answer the above question and REMEMBER to finish your response with the exact phrase "
                     "\"Therefore, the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of {opts}.")
ABCD = "(A), (B), (C), (D)"
ABCDE_ETC = "(A), (B), (C), (D), (E), etc."


def tulu3_cot_message(body: str, opts: str, reminder_sep: str = "\n\n") -> str:
    """The Tulu 3 0-shot CoT message: instruction, blank line, the question, then the reminder."""
    return f"{TULU3_MC_INSTRUCTION.format(opts=opts)}\n\n{body}{reminder_sep}{TULU3_MC_REMINDER.format(opts=opts)}"


def gpqa_body(item: BenchmarkItem) -> str:
    opts = "".join(f" ({k}) {c}\n" for k, c in zip("ABCD", item.meta["choices"]))
    return f"Question: {item.meta['question']}\nChoices:\n{opts}"


@dataclass
class GPQA(Task):
    name = "gpqa"
    benchmark = "gpqa_diamond"
    suite = "unseen"
    olmes = "gpqa:0shot_cot::tulu3"
    headline = "accuracy"
    version = 2
    stand_in = ("GPQA-Diamond (198 questions) stands in for GPQA main (448), which OLMES scores and no installed "
                "package ships: not comparable with the published number")
    description = "GPQA main (hub; offline: Diamond, a stand-in), 0-shot CoT (Tulu 3 instruction), greedy, 2048 tokens, accuracy"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=2048, logprobs=False))

    def load(self) -> list[BenchmarkItem]:
        self.main_set = False
        if unavailable_reason("gpqa_main") is None:
            try:
                items = load_benchmark("gpqa_main")
                self.main_set = True
                return items
            except BenchmarkUnavailable as exc:
                log.warning("gpqa: main set unavailable (%s); running on GPQA-Diamond", exc)
        return load_benchmark("gpqa_diamond")

    def not_comparable(self) -> str | None:
        return None if getattr(self, "main_set", False) else self.stand_in

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(tulu3_cot_message(gpqa_body(item), ABCD))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        pred, fmt = extract_choice_olmes(responses[0], r"Therefore, the answer is \(([A-D])\)", 4)
        return {"accuracy": float(pred == item.answer), "answer_format_correct": fmt}
