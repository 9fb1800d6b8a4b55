from __future__ import annotations

import json

import pytest

from tulu.data.formats import DataError
from tulu.data.mixing import build_mixture, split_records, take, tokenize_records
from tulu.data.synthetic import records


def write(tmp_path, name, n):
    p = tmp_path / name
    rows = [{"messages": [{"role": "user", "content": f"{name} q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(n)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


def test_fractions_and_counts_are_deterministic(tmp_path):
    a, b = write(tmp_path, "a.jsonl", 40), write(tmp_path, "b.jsonl", 10)
    m1 = build_mixture({a: 0.5, b: 7}, seed=3)
    m2 = build_mixture({a: 0.5, b: 7}, seed=3)
    m3 = build_mixture({a: 0.5, b: 7}, seed=4)
    assert m1.counts == {a: 20, b: 7} and len(m1.records) == 27
    assert m1.records == m2.records and m1.records != m3.records


def test_count_larger_than_source_is_an_error(tmp_path):
    a = write(tmp_path, "a.jsonl", 5)
    with pytest.raises(DataError, match="asked for 9 records but the source has only 5"):
        build_mixture({a: 9})
    with pytest.raises(DataError, match="no such file"):
        build_mixture({str(tmp_path / "missing.jsonl"): 1.0})


def test_take_keeps_source_order():
    recs = list(range(100))
    got = take(recs, 0.3, "x", seed=1)
    assert len(got) == 30 and got == sorted(got)


def test_synthetic_sources_and_split():
    m = build_mixture({"synthetic:math": 30, "synthetic:constraints": 20}, seed=0)
    assert m.counts == {"synthetic:math": 30, "synthetic:constraints": 20}
    train, held = split_records(m.records, 0.2, seed=0)
    assert len(held) == 10 and len(train) == 40
    assert not {json.dumps(r, sort_keys=True) for r in held} & {json.dumps(r, sort_keys=True) for r in train}


def test_tokenized_cache_is_reused_and_keyed(tmp_path, tokenizer):
    recs = records("math", 8)
    first = tokenize_records(recs, tokenizer, cache_dir=tmp_path)
    files = list(tmp_path.glob("tokenized-*.jsonl"))
    assert len(files) == 1
    again = tokenize_records(recs, tokenizer, cache_dir=tmp_path)
    assert [e.input_ids for e in again] == [e.input_ids for e in first]
    tokenize_records(recs, tokenizer, cache_dir=tmp_path, max_length=16)
    assert len(list(tmp_path.glob("tokenized-*.jsonl"))) == 2
