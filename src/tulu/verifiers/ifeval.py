"""IFEval verifier: strict and loose checks, prompt- and instruction-level, and a fraction mode for RLVR.

Ground truth (as in the IFEval data)::

    {"instruction_id_list": ["punctuation:no_comma", "length_constraints:number_words"],
     "kwargs": [{}, {"relation": "at least", "num_words": 300}],
     "prompt": "..."}

A JSON string of that dict is accepted too, ``instruction_id`` is accepted for ``instruction_id_list``
(open-instruct's RLVR data), and ``None`` kwargs values mean "not given".

Scoring (registered verifiers):

* ``ifeval`` - default ``mode="strict", level="prompt"``: 1 when every instruction is followed by the
  response as written, else 0. Strict is the default because it is what the RLVR reward should be: the
  loose variants (drop the first/last line, strip ``*``) would pay a policy for padding its answer with
  a junk first or last line. ``mode="loose"`` gives the IFEval headline metric's per-prompt score.
  ``level="fraction"`` gives the fraction of instructions followed.
* ``ifeval_fraction`` - ``level="fraction"`` by default (strict): a dense reward for RLVR.

:func:`follow_instructions` returns per-instruction strict and loose booleans; with those the eval suite
computes all four IFEval metrics (prompt/instruction x strict/loose, see :func:`aggregate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from tulu.verifiers.base import VerifyResult, register
from tulu.verifiers.ifeval_instructions import SPECS, InstructionArgError, Spec


class IFEvalGroundTruthError(ValueError):
    """The ground truth is malformed; the message names the instruction index and field."""


@dataclass(frozen=True)
class Instruction:
    id: str
    args: dict[str, Any]
    spec: Spec = field(compare=False, repr=False)

    def check(self, response: str) -> bool:
        """Strict check of one response text (an empty/blank response never follows anything)."""
        return bool(response.strip()) and self.spec.check(response, self.args)


@dataclass(frozen=True)
class InstructionResults:
    instruction_ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]

    @property
    def prompt_strict(self) -> bool:
        return all(self.strict)

    @property
    def prompt_loose(self) -> bool:
        return all(self.loose)


def _as_dict(ground_truth: Any) -> dict[str, Any]:
    if isinstance(ground_truth, str):
        try:
            ground_truth = json.loads(ground_truth)
        except json.JSONDecodeError as exc:
            raise IFEvalGroundTruthError(f"ground_truth: not valid JSON ({exc})") from None
    if isinstance(ground_truth, list) and len(ground_truth) == 1:
        ground_truth = ground_truth[0]  # open-instruct wraps the dict in a one-element list
    if not isinstance(ground_truth, dict):
        raise IFEvalGroundTruthError(f"ground_truth: expected a dict, got {type(ground_truth).__name__}")
    return ground_truth


def parse_ground_truth(ground_truth: Any, specs: dict[str, Spec] | None = None) -> list[Instruction]:
    """Validate an IFEval-style ground truth and resolve each instruction's kwargs (``specs``: the
    instruction table, IFEval's by default; IFBench passes its own)."""
    specs = SPECS if specs is None else specs
    gt = _as_dict(ground_truth)
    ids = gt.get("instruction_id_list", gt.get("instruction_id"))
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise IFEvalGroundTruthError("instruction_id_list: expected a non-empty list of instruction ids")
    kwargs = gt.get("kwargs")
    if kwargs is None:
        kwargs = [{} for _ in ids]
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise IFEvalGroundTruthError(
            f"kwargs: expected a list with one dict per instruction ({len(ids)}), got {kwargs!r:.80}"
        )
    out = []
    for i, (iid, raw) in enumerate(zip(ids, kwargs)):
        if iid not in specs:
            raise IFEvalGroundTruthError(f"instruction_id_list[{i}]: unknown instruction {iid!r}")
        raw = {k: v for k, v in (raw or {}).items() if v is not None}
        try:
            args = specs[iid].resolve(raw)
        except InstructionArgError as exc:
            raise IFEvalGroundTruthError(f"kwargs[{i}] ({iid}): {exc}") from None
        out.append(Instruction(iid, args, specs[iid]))
    return out


def loose_variants(response: str) -> list[str]:
    """The eight texts the loose score tries: as is / without first line / last line / both, each
    with and without ``*`` removed."""
    lines = response.split("\n")
    cut = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return [cut[0], cut[0].replace("*", "")] + cut[1:] + [c.replace("*", "") for c in cut[1:]]


def evaluate(response: str, instructions: Sequence[Instruction], loose: bool = True) -> InstructionResults:
    strict = tuple(ins.check(response) for ins in instructions)
    if loose:
        variants = loose_variants(response)
        loose_res = tuple(s or any(ins.check(v) for v in variants[1:]) for ins, s in zip(instructions, strict))
    else:
        loose_res = strict
    return InstructionResults(tuple(i.id for i in instructions), strict, loose_res)


def follow_instructions(response: str, ground_truth: Any) -> InstructionResults:
    """Per-instruction strict and loose booleans for one response (what IFEval's metrics are built from)."""
    return evaluate(response, parse_ground_truth(ground_truth))


def aggregate(results: Iterable[InstructionResults]) -> dict[str, float]:
    """The four IFEval metrics over many prompts (each in [0, 1])."""
    results = list(results)
    if not results:
        raise ValueError("aggregate: no results")
    n_inst = sum(len(r.strict) for r in results)
    return {
        "prompt_level_strict_acc": sum(r.prompt_strict for r in results) / len(results),
        "inst_level_strict_acc": sum(sum(r.strict) for r in results) / n_inst,
        "prompt_level_loose_acc": sum(r.prompt_loose for r in results) / len(results),
        "inst_level_loose_acc": sum(sum(r.loose) for r in results) / n_inst,
    }


def score_results(res: InstructionResults, mode: str, level: str) -> VerifyResult:
    if mode not in ("strict", "loose"):
        raise ValueError(f"mode: expected 'strict' or 'loose', got {mode!r}")
    if level not in ("prompt", "fraction"):
        raise ValueError(f"level: expected 'prompt' or 'fraction', got {level!r}")
    flags = res.strict if mode == "strict" else res.loose
    score = float(all(flags)) if level == "prompt" else sum(flags) / len(flags)
    failed = [i for i, ok in zip(res.instruction_ids, flags) if not ok]
    reason = f"{sum(flags)}/{len(flags)} instructions followed ({mode})"
    if failed:
        reason += "; failed: " + ", ".join(failed)
    return VerifyResult(score, reason, {"strict": list(res.strict), "loose": list(res.loose)})


@register("ifeval")
def ifeval(response: str, ground_truth: Any, mode: str = "strict", level: str = "prompt") -> VerifyResult:
    """IFEval score: ``mode`` strict|loose, ``level`` prompt (all-or-nothing) | fraction."""
    instructions = parse_ground_truth(ground_truth)
    return score_results(evaluate(response, instructions, loose=mode == "loose"), mode, level)


@register("ifeval_fraction")
def ifeval_fraction(response: str, ground_truth: Any, mode: str = "strict") -> VerifyResult:
    """Fraction of IFEval instructions followed (dense RLVR reward)."""
    return ifeval(response, ground_truth, mode=mode, level="fraction")
