"""IFBench: the out-of-distribution instruction-following test (unseen suite); scored like IFEval, through
the `ifbench` verifier."""

from __future__ import annotations

from dataclasses import dataclass

from tulu.eval.tasks.ifeval import IFEval


@dataclass
class IFBench(IFEval):
    name = "ifbench"
    benchmark = "ifbench"
    suite = "unseen"
    description = "IFBench (300, out-of-distribution constraints), chat, greedy, headline prompt-level loose"
    verifier = "ifbench"
