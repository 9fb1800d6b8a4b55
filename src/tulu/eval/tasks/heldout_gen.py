"""Held-out prompts of the training generators (``extra`` suite): the IFEval-taxonomy constraint prompts and
reasoning-gym arithmetic of :mod:`tulu.data.rlvr_sources`, drawn from their held-out split (a hash of the prompt
text decides the split, so no item equals a training prompt of any seed or size). It measures the skills the
embedded recipe's SFT, DPO and RLVR data target, scored greedily by the same verifiers as the RLVR reward.

The items alternate between the two families, so ``--limit N`` keeps both."""

from __future__ import annotations

from dataclasses import dataclass, field

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval.metrics import mean_stderr
from tulu.eval.tasks.base import Messages, Metric, Task
from tulu.rollout.base import SamplingParams
from tulu.verifiers.base import verify

FAMILIES = (("constraints", "rlvr:constraints"), ("arith", "rlvr:arith"))
PER_FAMILY = 100
SEED = 0


@dataclass
class HeldoutGenerators(Task):
    name = "heldout_gen"
    suite = "extra"
    headline = "accuracy"
    description = (f"held-out prompts of the training generators ({PER_FAMILY} constraint + {PER_FAMILY} "
                   "arithmetic), chat, greedy, 192 tokens, verified like the RLVR reward")
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(max_new_tokens=192, logprobs=False))

    def load(self) -> list[BenchmarkItem]:
        from tulu.data.rlvr_sources import generate

        per = [[BenchmarkItem(r["id"], r["messages"][-1]["content"], r["ground_truth"],
                              {"subset": fam, "verifier": r["verifier"], "messages": r["messages"]})
                for r in generate(source, PER_FAMILY, SEED, "heldout")] for fam, source in FAMILIES]
        return [it for pair in zip(*per) for it in pair]

    def messages(self, item: BenchmarkItem) -> Messages:
        return list(item.meta["messages"])

    def score(self, item: BenchmarkItem, responses: list[str]) -> dict[str, float]:
        """``accuracy`` and the same verdict under the item's family (``accuracy/arith``), so the run report
        can pair each family's items across stages."""
        ok = float(verify(item.meta["verifier"], responses[0], item.answer).score)
        return {"accuracy": ok, f"accuracy/{item.meta['subset']}": ok}

    def aggregate(self, items, scores):
        m, se = mean_stderr([s["accuracy"] for s in scores])
        out = {"accuracy": Metric(100 * m, 100 * se)}
        for fam, _ in FAMILIES:
            vals = [s[f"accuracy/{fam}"] for s in scores if f"accuracy/{fam}" in s]
            if vals:
                m, se = mean_stderr(vals)
                out[f"accuracy/{fam}"] = Metric(100 * m, 100 * se)
        return out
