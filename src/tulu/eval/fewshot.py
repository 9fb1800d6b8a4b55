"""Few-shot exemplars, read from the task folders of the installed ``lm-eval`` package (never copied into
this repository): GSM8K 8-shot CoT, Minerva MATH 4-shot and BBH 3-shot CoT. MMLU's 5-shot exemplars are
the benchmark's own ``dev`` split (see :mod:`tulu.data.benchmarks`)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import yaml

from tulu.data.benchmarks import BenchmarkUnavailable, package_dir


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


@cache
def minerva_math() -> tuple[tuple[str, str], ...]:
    """The 4 Minerva exemplars (problem, solution ending in "Final Answer: The final answer is X. I hope it
    is correct."), taken from the literal returned by ``list_fewshot_samples`` without importing lm-eval."""
    path = _lm_eval_tasks() / "minerva_math" / "utils.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "list_fewshot_samples":
            ret = next(n for n in ast.walk(node) if isinstance(n, ast.Return))
            samples = ast.literal_eval(ret.value)
            return tuple((s["problem"], s["solution"]) for s in samples)
    raise BenchmarkUnavailable(f"{path}: no list_fewshot_samples(); this lm-eval version differs")


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
