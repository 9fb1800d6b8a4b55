"""Parity with code no one here wrote: lm-eval's copy of Google's IFEval checkers, and nltk's Punkt and
word tokenizer. The reference runs offline with NLTK's English parameters written as a ``punkt_tab``
folder (see benchmarks/ifeval_parity.py). The full corpus (541 prompts, ~12k responses) is marked slow."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")
pytest.importorskip("eval_framework")
pytest.importorskip("nltk")

ROOT = Path(__file__).resolve().parents[2]


def _harness():
    name = "tulu_bench_ifeval_parity"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "ifeval_parity.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="module")
def harness():
    h = _harness()
    h.reference()  # sets up nltk's offline punkt_tab and langdetect's seed
    return h


def _texts(h, n_mix: int = 1000, upper: bool = True) -> list[str]:
    import eval_framework

    rows = h.ifeval_rows()
    bench = Path(eval_framework.__file__).parent / "tasks" / "ifbench" / "data" / "IFBench_test.jsonl"
    import json

    texts = [r["prompt"] for r in rows] + [json.loads(line)["prompt"] for line in open(bench)]
    texts += list(h.load_generations().values())
    texts += ["Dr. Smith went home. He was tired.", "“Hello there.” Bye.", "P.S.? ok", "3. ... fine",
              "I CANNOT go. DON'T! 'TIS \"QUOTED\" (HELLO) A--B «X» 'twas gonna [ok]? 3,000 a:b 12:30 U.S.A. x"]
    rng = random.Random(0)
    base = list(texts)
    for _ in range(n_mix):  # splice random pieces together for unusual boundaries
        a, b = rng.choice(base), rng.choice(base)
        texts.append(a[: rng.randrange(len(a) + 1)] + b[rng.randrange(len(b) + 1):])
    if upper:
        texts += [t.upper() for t in base[::3]]
    return texts


def test_sentence_splits_match_nltk(harness):
    import nltk

    from tulu.verifiers.punkt import sent_tokenize

    ref = nltk.data.load("nltk:tokenizers/punkt/english.pickle")
    bad = [t for t in _texts(harness) if ref.tokenize(t) != sent_tokenize(t)]
    assert not bad, f"{len(bad)} texts split differently, first: {bad[0]!r:.300}"


def test_word_tokens_match_nltk(harness):
    import nltk

    from tulu.verifiers.treebank import word_tokenize

    bad = [t for t in _texts(harness, 200, upper=False) if nltk.word_tokenize(t) != word_tokenize(t)]
    assert not bad, f"{len(bad)} texts tokenized differently, first: {bad[0]!r:.300}"


def _check(harness, rows, corpus):
    par = harness.run_parity(rows, corpus)
    assert par.total > 0
    assert not par.mismatches, par.mismatches[:3]
    assert par.agreement("strict") == 1.0 and par.agreement("loose") == 1.0
    # Every instruction type was exercised both ways in the rule corpus (a real test, not all-False).
    return par


def test_parity_fast_subset(harness):
    rows = harness.ifeval_rows()
    subset = rows[::16]  # 34 prompts spread over the file
    corpus = harness.build_corpus(subset, harness.load_generations(), wrap_every=4)
    par = _check(harness, subset, corpus)
    assert len(par.n) >= 18
    assert any(par.followed_strict[i] for i in par.n) and sum(par.followed_strict.values()) < par.total


@pytest.mark.slow
def test_parity_full_corpus(harness):
    rows = harness.ifeval_rows()
    corpus = harness.build_corpus(rows, harness.load_generations())
    par = _check(harness, rows, corpus)
    assert len(par.n) == 25
    for iid in par.n:  # each instruction is followed and broken somewhere in the corpus
        assert 0 < par.followed_loose[iid] and par.followed_strict[iid] < par.n[iid], iid
