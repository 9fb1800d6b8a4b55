"""IFBench verifier: the 58 out-of-distribution constraints, scored like IFEval (strict/loose, prompt or
fraction level). Ground truth has IFEval's format (``instruction_id_list``, ``kwargs``, ``prompt``).

Coverage: 56 of the 58 constraint ids are implemented (see :mod:`tulu.verifiers.ifbench_constraints`);
``ratio:stop_words`` and ``words:start_verb`` need NLTK data that cannot be had offline. A ground truth
that uses one of them makes the verifier raise :class:`IFBenchUnsupported` (never a silent score);
:func:`unsupported_ids` lets an evaluation skip and report such prompts instead.
"""

from __future__ import annotations

from typing import Any

from tulu.verifiers.base import VerifyResult, register
from tulu.verifiers.ifbench_constraints import SPECS, UNSUPPORTED, IFBenchUnsupported
from tulu.verifiers.ifeval import InstructionResults, _as_dict, evaluate, parse_ground_truth, score_results

__all__ = ["IFBenchUnsupported", "SPECS", "UNSUPPORTED", "follow_instructions", "ifbench", "unsupported_ids"]


def unsupported_ids(ground_truth: Any) -> list[str]:
    """The constraint ids in ``ground_truth`` that this build cannot check."""
    gt = _as_dict(ground_truth)
    ids = gt.get("instruction_id_list", gt.get("instruction_id")) or []
    return [i for i in ids if i in UNSUPPORTED]


def follow_instructions(response: str, ground_truth: Any) -> InstructionResults:
    """Per-constraint strict and loose booleans; raises IFBenchUnsupported for an unsupported constraint."""
    bad = unsupported_ids(ground_truth)
    if bad:
        raise IFBenchUnsupported("; ".join(f"{i}: {UNSUPPORTED[i]}" for i in bad))
    return evaluate(response, parse_ground_truth(ground_truth, SPECS))


@register("ifbench")
def ifbench(response: str, ground_truth: Any, mode: str = "strict", level: str = "prompt") -> VerifyResult:
    """IFBench score: ``mode`` strict|loose, ``level`` prompt (all-or-nothing) | fraction."""
    bad = unsupported_ids(ground_truth)
    if bad:
        raise IFBenchUnsupported("; ".join(f"{i}: {UNSUPPORTED[i]}" for i in bad))
    instructions = parse_ground_truth(ground_truth, SPECS)
    return score_results(evaluate(response, instructions, loose=mode == "loose"), mode, level)
