"""IFEval (dev) and the shared instruction-following scoring: the prompt alone as a chat turn, greedy.
Four metrics from the verifier's per-instruction strict/loose flags; the headline is prompt-level loose."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval.metrics import mean_stderr
from tulu.eval.tasks.base import Messages, Metric, Task, user
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify


@dataclass
class IFEval(Task):
    name = "ifeval"
    benchmark = "ifeval"
    suite = "dev"
    headline = "prompt_loose"
    olmes = "ifeval::tulu"
    version = 2
    description = "IFEval (541), chat, greedy, 2048 tokens; prompt/instruction x strict/loose, headline prompt-level loose"
    verifier = "ifeval"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=2048, logprobs=False))

    def messages(self, item: BenchmarkItem) -> Messages:
        return [user(item.prompt)]

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        gt = dict(item.answer, prompt=item.prompt)
        res = verify(self.verifier, responses[0], gt, mode="loose")
        flags = res.extracted or {}
        strict, loose = list(flags.get("strict", [])), list(flags.get("loose", []))
        if not strict:  # a timeout or a verifier without per-instruction flags: nothing was followed
            n = len(item.answer["instruction_id_list"])
            strict = loose = [False] * n
        return {"prompt_strict": float(all(strict)), "prompt_loose": float(all(loose)),
                "inst_strict_n": float(sum(strict)), "inst_loose_n": float(sum(loose)), "inst_total": float(len(strict))}

    def aggregate(self, items, scores):
        out = {}
        for k in ("prompt_strict", "prompt_loose"):
            m, se = mean_stderr([s[k] for s in scores])
            out[k] = Metric(100 * m, 100 * se)
        total = sum(s["inst_total"] for s in scores)
        for k in ("strict", "loose"):
            p = sum(s[f"inst_{k}_n"] for s in scores) / total if total else float("nan")
            # instruction-level: a ratio estimator over prompts (instructions of one prompt are correlated)
            se = _ratio_stderr([s[f"inst_{k}_n"] for s in scores], [s["inst_total"] for s in scores])
            out[f"inst_{k}"] = Metric(100 * p, 100 * se)
        return out


def _ratio_stderr(num: list[float], den: list[float]) -> float:
    n = len(num)
    if n < 2 or not sum(den):
        return 0.0
    r = sum(num) / sum(den)
    dbar = sum(den) / n
    resid = [a - r * b for a, b in zip(num, den)]
    var = sum(x * x for x in resid) / (n - 1)
    return math.sqrt(var / n) / dbar
