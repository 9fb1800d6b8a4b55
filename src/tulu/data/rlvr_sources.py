"""Procedural RLVR prompt generators: constraint prompts and reasoning-gym math, with train/held-out splits.

Each generator returns Tulu 3 RLVR records (``messages``, ``ground_truth``, ``dataset``, ``verifier``) with
an ``id`` and a ``provenance`` dict (for math: the reasoning-gym task, its seed and item index, which is
enough to regenerate the item). Prompts are distinct within a call, and a prompt only ever appears in the
split that :func:`prompt_split` assigns it to.

Math tasks (:data:`MATH_TASKS`) are small-number versions of reasoning-gym tasks that a 135M model can learn
and whose answers our ``gsm8k`` (integers) or ``math`` (fractions) verifier checks. Tasks generated from a
benchmark's test set are refused by name (:data:`DENYLIST`), whatever the configuration says.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import hashlib
from typing import Literal

from tulu.data.formats import DataError

Split = Literal["train", "heldout"]
HELDOUT_SHARE = 1 / 8  # share of the prompt space reserved for the held-out split

# reasoning-gym tasks that must never be trained on, and why
DENYLIST = {
    "gsm_symbolic": "its templates were made from GSM8K *test* problems (GSM-Symbolic), "
    "and GSM8K is in our eval suite",
    "arc_agi": "it draws puzzles from the ARC-AGI evaluation set by default",
}


@dataclass(frozen=True)
class MathTask:
    verifier: str  # "gsm8k" (integer answers) or "math" (answers the model should put in \boxed{})
    config: dict[str, Any] = field(default_factory=dict)
    arithmetic: bool = False  # part of rlvr:arith


MATH_TASKS: dict[str, MathTask] = {
    "basic_arithmetic": MathTask(
        "gsm8k",
        {
            "min_terms": 2,
            "max_terms": 3,
            "min_digits": 1,
            "max_digits": 2,
            "operators": ("+", "-", "*"),
            "allow_parentheses": False,
            "allow_negation": False,
        },
        arithmetic=True,
    ),
    "chain_sum": MathTask(
        "gsm8k", {"min_terms": 2, "max_terms": 4, "min_digits": 1, "max_digits": 2}, arithmetic=True
    ),
    "products": MathTask(
        "gsm8k", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}, arithmetic=True
    ),
    "simple_equations": MathTask("gsm8k", {"min_terms": 2, "max_terms": 3, "min_value": 1, "max_value": 20}),
    "leg_counting": MathTask(
        "gsm8k", {"min_animals": 2, "max_animals": 3, "min_instances": 1, "max_instances": 5}
    ),
    "gcd": MathTask("gsm8k", {"min_value": 2, "max_value": 100}),
    "lcm": MathTask("gsm8k", {"min_value": 2, "max_value": 20}),
    "fraction_simplification": MathTask(
        "math", {"min_value": 1, "max_value": 20, "min_factor": 2, "max_factor": 10, "styles": ("plain",)}
    ),
}
BOXED_HINT = "Put your final answer in \\boxed{}."


def check_task(task: str) -> MathTask:
    """The task's settings; a denylisted or unknown task raises DataError."""
    if task in DENYLIST:
        raise DataError(f"rlvr:{task}: refused: {DENYLIST[task]}")
    if task not in MATH_TASKS:
        raise DataError(f"rlvr:{task}: not a known RLVR math task (known: {', '.join(sorted(MATH_TASKS))})")
    return MATH_TASKS[task]


def _distinct(
    draw, n: int, split: str, name: str, max_draws: int, text=lambda r: r["messages"][-1]["content"]
):
    """Call ``draw(i)`` until ``n`` items with distinct prompt texts of ``split`` are collected."""

    out, seen = [], set()
    for i in range(max_draws):
        if len(out) == n:
            break
        item = draw(i)
        t = text(item)
        if t in seen or prompt_split(t) != split:
            continue
        seen.add(t)
        out.append(item)
    if len(out) < n:
        raise DataError(
            f"{name}: only {len(out)} distinct {split} prompts in {max_draws} draws (asked for {n}); "
            "ask for fewer or widen the task's settings"
        )
    return out


def math_prompts(n: int, seed: int = 0, split: str = "train", tasks: list[str] | None = None) -> list[dict]:
    """``n`` reasoning-gym prompts spread evenly over ``tasks`` (default: all of :data:`MATH_TASKS`)."""
    import reasoning_gym as rg


    _check_split(split)
    tasks = sorted(MATH_TASKS) if tasks is None else list(tasks)
    if not tasks:
        raise DataError("rlvr math: no tasks")
    settings = {t: check_task(t) for t in tasks}
    counts = [n // len(tasks) + (1 if j < n % len(tasks) else 0) for j in range(len(tasks))]
    out: list[dict] = []
    for task, k in zip(tasks, counts):
        if k == 0:
            continue
        s = settings[task]
        rg_seed = _split_seed(seed, split, task)
        ds = rg.create_dataset(task, size=10**9, seed=rg_seed, **s.config)

        def draw(i: int, ds=ds, task=task, s=s, rg_seed=rg_seed) -> dict:
            item = ds[i]
            question = item["question"].strip()
            if s.verifier == "math":
                question = f"{question} {BOXED_HINT}"
            return {
                "messages": [{"role": "user", "content": question}],
                "ground_truth": str(item["answer"]).strip(),
                "dataset": s.verifier,
                "verifier": s.verifier,
                "id": f"rlvr:{task}:{split}:{rg_seed}:{i}",
                "provenance": {"generator": "reasoning_gym", "task": task, "seed": rg_seed, "index": i},
            }

        out += _distinct(draw, k, split, f"rlvr:{task}", max_draws=50 * k + 1000)
    random.Random(_split_seed(seed, split, "math-order")).shuffle(out)
    return out


def constraint_examples(n: int, seed: int = 0, split: str = "train", max_constraints: int = 3) -> list:
    """``n`` pairs ``(draw index, ConstraintExample)`` (prompt, ground truth, a compliant and a violating
    response, see :mod:`tulu.data.ifeval_prompts`) with distinct prompts of ``split``; record ``i`` of
    :func:`constraint_prompts` is made from pair ``i`` here."""
    from tulu.data.ifeval_prompts import constraint_example

    _check_split(split)
    rng = random.Random(_split_seed(seed, split, "constraints"))

    def in_split(prompt: str) -> bool:
        return prompt_split(prompt) == split

    def draw(i: int) -> tuple[int, Any]:
        return i, constraint_example(rng, max_constraints=max_constraints, keep=in_split)

    return _distinct(draw, n, split, "rlvr:constraints", max_draws=20 * n + 100, text=lambda d: d[1].prompt)


def constraint_prompts(n: int, seed: int = 0, split: str = "train", max_constraints: int = 3) -> list[dict]:
    """``n`` IFEval-taxonomy constraint prompts (:mod:`tulu.data.ifeval_prompts`), verifier ``ifeval``."""

    rng_seed = _split_seed(seed, split, "constraints")
    out = []
    for i, ex in constraint_examples(n, seed, split, max_constraints):
        out.append(
            {
                "messages": [{"role": "user", "content": ex.prompt}],
                "ground_truth": ex.ground_truth,
                "dataset": "ifeval",
                "verifier": "ifeval",
                "id": f"rlvr:constraints:{split}:{rng_seed}:{i}",
                "provenance": {
                    "generator": "tulu.data.ifeval_prompts",
                    "seed": rng_seed,
                    "draw": i,
                    "instruction_ids": list(ex.instruction_ids),
                },
            }
        )
    return out


def generate(source: str, n: int, seed: int = 0, split: str = "train") -> list[dict]:
    """Records of a generator: ``rlvr:constraints``, ``rlvr:math``, ``rlvr:arith`` or ``rlvr:<task>``."""
    name = source.split(":", 1)[1] if source.startswith("rlvr:") else source
    if name == "constraints":
        return constraint_prompts(n, seed, split)
    if name == "math":
        return math_prompts(n, seed, split)
    if name == "arith":
        return math_prompts(n, seed, split, [t for t, s in sorted(MATH_TASKS.items()) if s.arithmetic])
    return math_prompts(n, seed, split, [name])


GENERATOR_NAMES = ["rlvr:constraints", "rlvr:math", "rlvr:arith"] + [f"rlvr:{t}" for t in sorted(MATH_TASKS)]


# ------------------------------------------------------------------------------------------ splits
def prompt_split(text: str) -> Split:
    """The split a generated prompt belongs to, from a hash of its text (fixed for all seeds and sizes)."""
    h = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    return "heldout" if h < HELDOUT_SHARE * 2**64 else "train"


def _split_seed(seed: int, split: Split, name: str) -> int:
    """Disjoint seed streams per (seed, split, generator)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{split}:{name}".encode()).digest()[:4], "big")


def _check_split(split: str) -> None:
    if split not in ("train", "heldout"):
        raise ValueError(f"split: expected 'train' or 'heldout', got {split!r}")
