"""The Tulu 3 evaluation suites (DESIGN.md §5). ``average`` lists the tasks whose headline metric enters
the suite average (one entry per benchmark, as in the report); the rest are reported beside it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Suite:
    name: str
    tasks: tuple[str, ...]
    average: tuple[str, ...]


SUITES: dict[str, Suite] = {
    "dev": Suite("dev",
                 tasks=("gsm8k", "math", "math500", "mmlu", "mmlu_mc", "ifeval", "humaneval", "drop", "bbh",
                        "popqa", "truthfulqa", "alpaca_eval"),
                 average=("gsm8k", "math", "mmlu", "ifeval", "humaneval", "drop", "bbh", "popqa", "truthfulqa",
                          "alpaca_eval")),
    "unseen": Suite("unseen",
                    tasks=("gpqa", "ifbench", "mbpp", "mmlu_pro", "agieval", "deepmind_math"),
                    average=("gpqa", "ifbench", "mbpp", "mmlu_pro", "agieval", "deepmind_math")),
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
