"""Streaming the training side: chunking, record shapes, worker processes, error locations."""

from __future__ import annotations

import json
import random
import re

import pytest
from decontam_helpers import chat
from decontam_reference import ref_matches

from tulu.data.formats import DataError
from tulu.decontam.ngrams import build_index
from tulu.decontam.scan import Settings, TrainSource, plan_chunks, record_segments, scan

EVAL = ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
        "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
        "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?"]


def _train(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
    recs = []
    for i in range(n):
        text = " ".join(rng.choice(filler) for _ in range(rng.randint(5, 60)))
        if i % 7 == 3:
            text = text + " " + rng.choice(EVAL)
        recs.append(chat(text, "The answer is 4."))
    return recs


def test_chunked_and_parallel_scans_equal_one_pass_and_brute_force(jsonl):
    recs = _train(300)
    path = jsonl("train", recs, blank_lines=True)
    index = build_index([[e] for e in EVAL], 8)
    one = scan(index, [TrainSource("t", path)], workers=1, chunk_bytes=1 << 30)
    many = scan(index, [TrainSource("t", path)], workers=1, chunk_bytes=700)
    par = scan(index, [TrainSource("t", path)], workers=2, chunk_bytes=900)
    assert len(list(plan_chunks([TrainSource("t", path)], 700))) > 10
    assert one.matches == many.matches == par.matches
    assert one.n_records == many.n_records == par.n_records == [300]
    ref = ref_matches([[e] for e in EVAL], [[r["messages"][0]["content"]] for r in recs], 8, 0.5)
    assert [(rec, e, cov) for _, rec, _, e, cov in one.matches] == ref
    assert len(ref) == len([i for i in range(300) if i % 7 == 3])
    # locations are real line numbers (blank lines counted), and the texts are those of the records
    lines = path.read_text().split("\n")
    for _, rec, loc, _, _ in par.matches:
        lineno = int(loc.rsplit(":", 1)[1])
        assert json.loads(lines[lineno - 1]) == recs[rec]
        assert par.texts[(0, rec)] == [recs[rec]["messages"][0]["content"]]


def test_line_longer_than_a_chunk(jsonl):
    long = chat("word " * 5000 + EVAL[0])
    path = jsonl("t", [chat("hi"), long, chat(EVAL[1])])
    index = build_index([[e] for e in EVAL], 8)
    res = scan(index, [TrainSource("t", path)], workers=1, chunk_bytes=64)
    assert [(rec, e, loc.rsplit(":", 1)[1]) for _, rec, loc, e, _ in res.matches] == [(1, 0, "2"), (2, 1, "3")]


def test_other_formats_go_through_the_data_layer(tmp_path):
    recs = [{"instruction": EVAL[0], "input": "", "output": "72"},
            {"conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": EVAL[1]}]}]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(recs))
    index = build_index([[e] for e in EVAL], 8)
    res = scan(index, [TrainSource("t", path)], Settings(("user",)), workers=1)
    assert [(r, e) for _, r, _, e, _ in res.matches] == [(0, 0)]
    res = scan(index, [TrainSource("t", path)], Settings(("user", "assistant")), workers=1)
    assert [(r, e) for _, r, _, e, _ in res.matches] == [(0, 0), (1, 1)]


def test_record_segments_by_role_and_shape():
    rec = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
           "chosen": [{"role": "assistant", "content": "C"}], "rejected": [{"role": "assistant", "content": "R"}]}
    assert record_segments(rec, "f:1", ("user",)) == ["U"]
    assert record_segments(rec, "f:1", ("system", "user", "assistant")) == ["S", "U", "C", "R"]
    hh = {"chosen": "\n\nHuman: hi?\n\nAssistant: yes", "rejected": "\n\nHuman: hi?\n\nAssistant: no"}
    assert record_segments(hh, "f:2", ("user", "assistant")) == ["hi?", "yes", "no"]
    assert record_segments({"prompt": "P only"}, "f:3", ("user",)) == ["P only"]


@pytest.mark.parametrize("line, message", [
    ("{not json", "t.jsonl:3: invalid JSON"),
    (json.dumps({"messages": [{"role": "robot", "content": "x"}]}), "t.jsonl:3: messages[0].role: unknown role"),
    (json.dumps({"messages": [{"role": "user", "content": 5}]}), "t.jsonl:3: messages[0].content: expected a string"),
    (json.dumps({"foo": 1}), "t.jsonl:3: unrecognised record shape"),
])
def test_errors_name_file_line_and_field(jsonl, line, message):
    path = jsonl("t", [chat("a"), chat("b"), line])
    index = build_index([[e] for e in EVAL], 8)
    with pytest.raises(DataError, match=re.escape(message)):
        scan(index, [TrainSource("t", path)], workers=1, chunk_bytes=40)
