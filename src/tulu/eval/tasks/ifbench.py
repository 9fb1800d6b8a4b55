"""IFBench: the out-of-distribution instruction-following test (unseen suite); scored like IFEval, through
the `ifbench` verifier.

Two of IFBench's 58 constraints need NLTK data that cannot be had offline (``ratio:stop_words``,
``words:start_verb``; see :mod:`tulu.verifiers.ifbench`). The prompts that use them are left out of the
score, counted and named in the task's entry of ``results.json`` (``not_comparable``), never scored 0."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from tulu.data.benchmarks import BenchmarkItem
from tulu.eval.tasks.ifeval import IFEval
from tulu.verifiers.ifbench import unsupported_ids

log = logging.getLogger(__name__)


@dataclass
class IFBench(IFEval):
    name = "ifbench"
    benchmark = "ifbench"
    suite = "unseen"
    stand_in = ("IFBench (300 prompts, 58 new constraints) stands in for the Tulu 3 unseen suite's IFEval-OOD, which "
                "no installed package ships: not comparable with the published number")
    description = "IFBench (300, out-of-distribution constraints), chat, greedy, 2048 tokens, prompt-level loose"
    verifier = "ifbench"

    def __post_init__(self) -> None:
        self.left_out: Counter = Counter()  # unsupported constraint id -> prompts left out

    def load(self) -> list[BenchmarkItem]:
        items = super().load()
        kept = []
        for it in items:
            bad = unsupported_ids(it.answer)
            self.left_out.update(bad)
            if not bad:
                kept.append(it)
        if len(kept) < len(items):
            log.warning("ifbench: %d of %d prompts left out: their constraints cannot be checked offline (%s)",
                        len(items) - len(kept), len(items), self._left_out_text())
        return kept

    def _left_out_text(self) -> str:
        return ", ".join(f"{k}: {v} prompts" for k, v in sorted(self.left_out.items()))

    def not_comparable(self) -> str | None:
        if not self.left_out:
            return self.stand_in
        return (f"{self.stand_in}; prompts using constraints that cannot be checked offline are left out "
                f"({self._left_out_text()})")
