"""Tasks whose data only the Hugging Face hub has: BBH, PopQA, TruthfulQA (dev); MMLU-Pro, AGIEval English,
DeepMind Math (unseen). Offline they are skipped with the loader's one-line reason. Their prompts follow
the OLMES configurations named in ``olmes`` and are pinned by tests on hand-written items; none of them
has been run here (no network)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.eval import fewshot
from tulu.eval.metrics import extract_choice_olmes, mc2_score, mean_stderr
from tulu.eval.tasks.base import Messages, Metric, Task, few_shot_turns, macro_micro, user
from tulu.eval.tasks.gpqa import ABCDE_ETC, tulu3_cot_message
from tulu.eval.tasks.mmlu import item_mcq
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
    olmes = "bbh:cot-v1::tulu"
    headline = "exact_match"
    version = 2
    description = "BIG-Bench Hard (27 subsets, hub), 3-shot CoT as chat turns, greedy, 512 tokens, exact match (micro)"
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
    olmes = "popqa::tulu"
    headline = "exact_match"
    version = 2
    stand_in = ("the 15 exemplars are the first other test questions, not OLMES's fixed PopQA few-shot source: "
                "not comparable with the published number")
    description = "PopQA (hub), 15-shot as chat turns, greedy, 15 tokens; correct if an accepted answer appears"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=15, logprobs=False))
    shots: int = 15

    def messages(self, item: BenchmarkItem) -> Messages:
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
    olmes = "truthfulqa::tulu"
    headline = "mc2"
    request_type = "loglikelihood"
    version = 2
    description = ("TruthfulQA MC2 (hub), 6-shot QA primer as chat turns (\"Q: ...\\nA:\"), log-likelihood of every "
                   "answer option; MC2 = normalised probability of the true ones (MC1 beside it)")

    def context(self, item: BenchmarkItem) -> Messages:
        turns = few_shot_turns(fewshot.truthfulqa_qa_primer(), fmt_q=lambda q: f"Q: {q}\nA:", fmt_a=lambda a: f" {a}")
        return turns + [user(f"Q: {item.prompt}\nA:")]

    def messages(self, item: BenchmarkItem) -> Messages:
        return self.context(item)

    def loglik_requests(self, item: BenchmarkItem) -> list:
        from tulu.rollout.loglik import LoglikRequest

        ctx = self.context(item)
        opts = list(item.answer["mc2_targets"]["choices"]) + list(item.answer["mc1_targets"]["choices"])
        return [LoglikRequest(ctx, f" {o}") for o in opts]

    def score(self, item: BenchmarkItem, responses: list) -> dict[str, float]:
        mc2 = item.answer["mc2_targets"]
        n2 = len(mc2["choices"])
        lp2, lp1 = responses[:n2], responses[n2:]
        true = [lp for lp, lab in zip(lp2, mc2["labels"]) if lab]
        false = [lp for lp, lab in zip(lp2, mc2["labels"]) if not lab]
        labels1 = item.answer["mc1_targets"]["labels"]
        mc1 = float(labels1[max(range(len(lp1)), key=lambda i: lp1[i])] == 1) if lp1 else float("nan")
        return {"mc2": mc2_score(true, false), "mc1": mc1}


@dataclass
class _CoTChoice(Task):
    """A Tulu 3 0-shot CoT multiple-choice task: the answer is the last "Therefore, the answer is (X)"."""

    suite = "unseen"
    headline = "accuracy"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=2048, logprobs=False))
    answer_letters = "A-J"

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        n = len(item.meta.get("choices") or "ABCD")
        pred, fmt = extract_choice_olmes(responses[0], rf"Therefore, the answer is \(([{self.answer_letters}])\)", n)
        return {"accuracy": float(pred == item.answer), "answer_format_correct": fmt}

    def aggregate(self, items, scores):
        return macro_micro(items, scores, "accuracy")


@dataclass
class MMLUPro(_CoTChoice):
    name = "mmlu_pro"
    benchmark = "mmlu_pro"
    olmes = "mmlu_pro:0shot_cot::tulu3"
    version = 2
    description = "MMLU-Pro (hub), 0-shot CoT (Tulu 3 instruction), greedy, 2048 tokens, accuracy macro over 14 categories"

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(tulu3_cot_message(item_mcq(item, answer_prefix=None), ABCDE_ETC, reminder_sep="\n"))]


_AGIEVAL_CUE = re.compile(r"\s*A: Among A through [A-J], the answer is\s*$")


@dataclass
class AGIEval(_CoTChoice):
    name = "agieval"
    benchmark = "agieval"
    olmes = "agi_eval_english:0shot_cot::tulu3"
    answer_letters = "A-F"
    version = 2
    stand_in = ("questions are the hub's pre-formatted AGIEval queries (hails/agieval-*) with their answer cue "
                "removed, not OLMES's own passage/question/options layout: not comparable with the published number")
    description = ("AGIEval English (hub; 8 subsets, sat-en-without-passage dropped as OLMES does), 0-shot CoT "
                   "(Tulu 3 instruction), greedy, 2048 tokens, accuracy macro over subsets")

    def load(self) -> list[BenchmarkItem]:
        return [it for it in super().load() if it.meta.get("subset") != "sat-en-without-passage"]

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(tulu3_cot_message(_AGIEVAL_CUE.sub("", item.prompt).strip(), ABCDE_ETC))]


DM_INSTRUCTION = "Solve the following math problem efficiently:\n"
DM_FORMAT_NOTES = (
    "Note the formatting for the following answer types:\n"
    "- If the answer is a list (e.g., when there are two solutions to an equation), unless otherwise specified, "
    "present the solutions in a list separated by commas ordering them from the smallest to biggest  e.g.: 2, 10\n"
    "- Powers should be written with **, for instance x to the power of 2 should be written as x**2\n"
    "- Use * for multiplication, e.g.: 2*x\n"
    "- For fractions, separate the numerator and denominator with a slash (/) e.g.: -2/7")
DM_ANSWER = re.compile(r"(?i)Therefore, the final answer is (.*?)\. I hope it is correct\.")


def deepmind_math_message(question: str, examples: list[str]) -> str:
    lines = "\n".join(f"- If the answer is {a}, conclude with \"Therefore, the final answer is {a}. I hope it is "
                      "correct.\"" for a in examples)
    return (f"{DM_INSTRUCTION}{question}\n\nShow your work and conclude with the exact phrasing \"Therefore, the "
            "final answer is [answer]. I hope it is correct.\" where [answer] is just the final number, expression, "
            f"or answer label representing the solution.  Some example answers from this question category:\n{lines}"
            f"\n\n{DM_FORMAT_NOTES}")


def _dm_norm(s: str) -> str:
    return re.sub(r"\s+", "", str(s)).rstrip(".").lower()


@dataclass
class DeepMindMath(Task):
    name = "deepmind_math"
    benchmark = "deepmind_math"
    suite = "unseen"
    olmes = "deepmind_math:0shot_cot-v3::tulu3"
    headline = "exact_match"
    version = 2
    per_category: int = 100
    stand_in = ("the example answers in the instruction are the answers of 3 test items outside the scored 100 "
                "of each category, not OLMES's hand-picked ones: not comparable with the published number")
    description = ("DeepMind Mathematics (hub), first 100 per category, 0-shot CoT (Tulu 3 v3 instruction), greedy, "
                   "2048 tokens, exact match macro over categories")
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=2048, logprobs=False))

    def load(self) -> list[BenchmarkItem]:
        by_cat: dict[str, list[BenchmarkItem]] = {}
        for it in super().load():
            by_cat.setdefault(it.meta["subset"], []).append(it)
        self._examples = {c: [it.answer for it in its[self.per_category:self.per_category + 3]]
                          for c, its in by_cat.items()}
        return [it for its in by_cat.values() for it in its[: self.per_category]]

    def messages(self, item: BenchmarkItem) -> Messages:
        examples = getattr(self, "_examples", {}).get(item.meta["subset"]) or [item.meta.get("example", "")]
        return [user(deepmind_math_message(item.prompt, [e for e in examples if e]))]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        hits = DM_ANSWER.findall(responses[0])
        pred = hits[-1] if hits else ""
        return {"exact_match": float(bool(hits) and _dm_norm(pred) == _dm_norm(item.answer)),
                "answer_format_correct": float(bool(hits))}

    def aggregate(self, items, scores):
        out = macro_micro(items, scores, "exact_match")
        m, se = mean_stderr([s["answer_format_correct"] for s in scores])
        out["answer_format_correct"] = Metric(100 * m, 100 * se)
        return out

