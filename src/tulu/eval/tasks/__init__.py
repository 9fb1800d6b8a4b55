"""Evaluation tasks, one module per benchmark family. :data:`TASKS` maps a task name to its class."""

from __future__ import annotations

from tulu.eval.tasks.alpaca_eval import AlpacaEval
from tulu.eval.tasks.base import Metric, Task
from tulu.eval.tasks.code import MBPP, HumanEval, HumanEvalPlus
from tulu.eval.tasks.drop import DROP
from tulu.eval.tasks.gpqa import GPQA
from tulu.eval.tasks.gsm8k import GSM8K
from tulu.eval.tasks.heldout_gen import HeldoutGenerators
from tulu.eval.tasks.hub_only import BBH, AGIEval, DeepMindMath, MMLUPro, PopQA, TruthfulQAMC2
from tulu.eval.tasks.ifbench import IFBench
from tulu.eval.tasks.ifeval import IFEval
from tulu.eval.tasks.math import Math500, MinervaMath
from tulu.eval.tasks.mmlu import MMLUMC, MMLUCoT

TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (
    GSM8K, MinervaMath, Math500, MMLUCoT, MMLUMC, IFEval, HumanEval, HumanEvalPlus, DROP, BBH, PopQA, TruthfulQAMC2, AlpacaEval,
    GPQA, IFBench, MBPP, MMLUPro, AGIEval, DeepMindMath, HeldoutGenerators)}


def get_task(name: str, **kwargs) -> Task:
    try:
        cls = TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None
    return cls(**kwargs)


__all__ = ["TASKS", "Task", "Metric", "get_task"]
