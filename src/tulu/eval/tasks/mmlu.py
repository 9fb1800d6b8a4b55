"""MMLU as OLMES runs it for Tulu 3.

* ``mmlu`` = ``mmlu:cot::summarize``: 0-shot chain of thought; the instruction names the subject and asks
  to "summarize your reasoning concisely, then conclude with 'Therefore, the answer is: X'", followed by
  OLMES's CoT question layout ("Question: ...", the options " A. ..", a final newline and no answer cue);
  greedy, 512 new tokens, stop "Question:"; OLMES's fall-back answer extraction (the config sets no
  answer-format regex); accuracy, macro-averaged over the 57 subjects (the Tulu 3 table's MMLU).
* ``mmlu_mc`` = ``mmlu:mc::tulu``: 5-shot (MMLU's dev split) as chat turns, scored by the log-likelihood of
  each answer letter (" A" ... " D") after the assistant header; accuracy of the most likely letter
  (OLMES ``acc_raw``), macro over subjects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from tulu.data.benchmarks import BenchmarkItem, letters, load_benchmark
from tulu.eval.metrics import extract_mmlu_cot_olmes
from tulu.eval.tasks.base import Messages, Task, assistant, macro_micro, user
from tulu.rollout.base import SamplingParams

def subject_name(subject: str | None) -> str:
    return (subject or "general knowledge").replace("_", " ")


def mcq_prompt(question: str, choices: list[str], label: str = "{}.", answer_prefix: str | None = "Answer:",
               choices_header: str = "") -> str:
    """OLMES's multiple-choice layout: "Question: Q", the options one per line indented by a space
    (``label`` formats the letter: "A." by default, "(A)" for the Tulu 3 CoT tasks), then the answer cue."""
    lines = [f"Question: {question.strip()}"] + ([choices_header] if choices_header else [])
    lines += [f" {label.format(k)} {str(c).strip()}" for k, c in zip(letters(len(choices)), choices)]
    if answer_prefix is not None:
        lines.append(answer_prefix)
    return "\n".join(lines)


def item_mcq(item: BenchmarkItem, **kw) -> str:
    return mcq_prompt(item.meta["question"], item.meta["choices"], **kw)


@dataclass
class MMLUCoT(Task):
    name = "mmlu"
    benchmark = "mmlu"
    suite = "dev"
    olmes = "mmlu:cot::summarize"
    headline = "accuracy"
    version = 3
    description = ("MMLU test (14042), 0-shot CoT (\"Summarize your reasoning concisely, then conclude with "
                   "'Therefore, the answer is: X'\"), greedy, 512 tokens, stop \"Question:\", accuracy macro over "
                   "57 subjects")
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(
        max_new_tokens=512, stop=["Question:"], logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        head = (f"The following are multiple choice questions about {subject_name(item.meta.get('subject'))}. "
                "Summarize your reasoning concisely, then conclude with 'Therefore, the answer is: X' where X is "
                "one of A, B, C, or D.\n\n")
        # OLMES builds the CoT question with an empty answer cue, so the text ends with a newline
        return [user(head + item_mcq(item, answer_prefix=""))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        pred, fmt = extract_mmlu_cot_olmes(responses[0])
        return {"accuracy": float(pred == item.answer), "answer_format_correct": fmt}

    def aggregate(self, items, scores):
        out = macro_micro(items, scores, "accuracy")
        out.update({k: v for k, v in macro_micro(items, scores, "answer_format_correct").items()
                    if not k.endswith("_micro")})
        return out


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
    olmes = "mmlu:mc::tulu"
    headline = "accuracy"
    request_type = "loglikelihood"
    version = 2
    description = ("MMLU test, 5-shot (dev split) as chat turns, scored by the log-likelihood of \" A\"..\" D\" "
                   "(acc_raw), macro over 57 subjects")
    shots: int = 5

    def context(self, item: BenchmarkItem) -> Messages:
        subject = item.meta["subject"]
        head = f"The following are multiple choice questions (with answers) about {subject_name(subject)}.\n\n"
        turns: Messages = []
        for ex in _dev_by_subject().get(subject, [])[: self.shots]:
            turns += [user(item_mcq(ex)), assistant(f" {ex.answer}")]
        turns.append(user(item_mcq(item)))
        turns[0] = user(head + turns[0]["content"])
        return turns

    def messages(self, item: BenchmarkItem) -> Messages:
        return self.context(item)

    def loglik_requests(self, item: BenchmarkItem) -> list:
        from tulu.rollout.loglik import LoglikRequest

        ctx = self.context(item)
        return [LoglikRequest(ctx, f" {k}") for k in letters(len(item.meta["choices"]))]

    def score(self, item: BenchmarkItem, responses: list) -> dict[str, float]:
        best = max(range(len(responses)), key=lambda i: responses[i])
        return {"accuracy": float(letters(len(responses))[best] == item.answer)}

    def aggregate(self, items, scores):
        return macro_micro(items, scores, "accuracy")
