"""The Tulu 3 evaluation suites. ``tasks`` is what ``--suite`` runs; ``average`` lists the tasks whose
headline metric enters the suite average, as in the Tulu 3 report's tables (one entry per benchmark).

The dev average of the Tulu 3 report covers MMLU (0-shot CoT), TruthfulQA, PopQA, BBH, DROP, MATH, GSM8K,
HumanEval, HumanEval+, IFEval, AlpacaEval 2 and Safety; the unseen one AGIEval English, MMLU-Pro, GPQA,
DeepMind Math, BigCodeBench-Hard, IFEval-OOD and HREF (open-instruct's ``scripts/eval/oe-eval.sh`` lists
the OLMES tasks). Entries of :data:`EXTERNAL` have no task here: every average names them as missing, with
the reason, so a partial average is never mistaken for the published one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    average: tuple[str, ...]


EXTERNAL: dict[str, str] = {
    "safety": "the Tulu 3 safety suite (a separate evaluation, not OLMES) is not implemented in tulu eval",
    "bigcodebench_hard": "BigCodeBench-Hard: no offline copy (the bigcodebench package downloads its data "
                         "from the hub at run time) and its sandbox needs ~100 extra Python libraries; not "
                         "implemented",
    "href": "HREF (human-reference-guided instruction following, judged) is not implemented in tulu eval",
}

SUITES: dict[str, Suite] = {
    "dev": Suite("dev",
                 tasks=("gsm8k", "math", "math500", "mmlu", "mmlu_mc", "ifeval", "humaneval", "humanevalplus",
                        "drop", "bbh", "popqa", "truthfulqa", "alpaca_eval"),
                 average=("mmlu", "truthfulqa", "popqa", "bbh", "drop", "math", "gsm8k", "humaneval",
                          "humanevalplus", "ifeval", "alpaca_eval", "safety")),
    "unseen": Suite("unseen",
                    tasks=("gpqa", "ifbench", "mbpp", "mmlu_pro", "agieval", "deepmind_math"),
                    average=("agieval", "mmlu_pro", "gpqa", "deepmind_math", "bigcodebench_hard", "ifbench",
                             "href")),
}


def suite_tasks(name: str) -> list[str]:
    if name == "all":
        return [t for s in SUITES.values() for t in s.tasks]
    try:
        return list(SUITES[name].tasks)
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(SUITES)}, all") from None


def suite_of(task: str) -> str | None:
    for s in SUITES.values():
        if task in s.tasks:
            return s.name
    return None
