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
    stand_in = ("IFBench (300 prompts, 58 new constraints) stands in for the Tulu 3 unseen suite's IFEval-OOD, which "
                "no installed package ships: not comparable with the published number")
    description = "IFBench (300, out-of-distribution constraints), chat, greedy, 2048 tokens, prompt-level loose"
    verifier = "ifbench"
