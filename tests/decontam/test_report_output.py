"""Report (flag rule, spans, renderings), filtered output, and the `tulu decontam` command."""

from __future__ import annotations

import json
import random

import pytest
from decontam_helpers import chat

from tulu.cli import main as tulu_main
from tulu.decontam.evalsets import EvalInstance
from tulu.decontam.ngrams import build_index
from tulu.decontam.output import write_filtered
from tulu.decontam.report import ReportSettings, build_report, mark, shared_spans, to_html, to_markdown
from tulu.decontam.scan import TrainSource, scan


def _evals(k: int) -> list[EvalInstance]:
    rng = random.Random(k)
    words = [f"w{j}" for j in range(500)]
    return [EvalInstance("bench", str(i), f"Question number {i} " + " ".join(rng.choice(words) for _ in range(12)))
            for i in range(k)]


def _run(jsonl, evals, train_sets, **kw):
    index = build_index([e.segments(("prompt",)) for e in evals], 8)
    sources = [TrainSource(name, jsonl(name, recs)) for name, recs in train_sets.items()]
    res = scan(index, sources, workers=1)
    return res, build_report(res, evals, index.eval_ntok.tolist(), ReportSettings(**kw))


def test_flag_rule_is_more_than_two_percent(jsonl):
    evals = _evals(100)
    two = [chat(evals[i].prompt) for i in (3, 4)] + [chat("unrelated text")]
    three = [chat(evals[i].prompt) for i in (3, 4, 5)]
    res, rep = _run(jsonl, evals, {"two": two, "three": three})
    d2, d3 = rep["datasets"]
    assert d2["benchmarks"]["bench"]["hit"] == 2 and d2["benchmarks"]["bench"]["percent"] == 2.0
    assert not d2["flagged"]
    assert d3["flagged"] and d3["flagged_by"] == ["bench"]
    assert d3["contaminating_instances"] == 3 and d3["instances"] == 3
    assert d2["benchmarks"]["bench"]["max_overlap"] == 1.0


def test_examples_and_shared_spans(jsonl):
    evals = _evals(10)
    train = [chat("Intro. " + evals[7].prompt.upper() + " Thanks!")]
    _, rep = _run(jsonl, evals, {"t": train}, examples=2)
    (ex,) = rep["datasets"][0]["benchmarks"]["bench"]["examples"]
    assert ex["eval_id"] == "7" and ex["train_index"] == 0 and ex["overlap"] == 1.0
    (a, b), = ex["train_spans"]
    assert ex["train_text"][a:b] == evals[7].prompt.upper()
    assert ex["eval_spans"] == [[0, len(evals[7].prompt)]]
    html = to_html(rep)
    assert "<mark>QUESTION NUMBER 7 W" in html and "Thanks!" in html
    md = to_markdown(rep)
    assert "| t | bench | 1/10 | 10.00 | **yes** |" in md


def test_spans_and_marking_escape():
    ev, tr = shared_spans(["a b c <x> d e"], ["zz a b c x d e"], 3)
    assert ev == [[0, 13]] and tr == [[3, 14]]
    assert mark("a<b>c", [[1, 4]], "[", "]", lambda s: s.replace("<", "&lt;")) == "a[&lt;b>]c"


@pytest.mark.parametrize("mode, kept", [("remove", {"dirty": [0, 2], "clean": [0, 1]}),
                                        ("drop", {"dirty": None, "clean": [0, 1]}),
                                        ("drop+remove", {"dirty": None, "clean": [0, 1]}),
                                        ("none", {"dirty": None, "clean": None})])
def test_filtered_output_modes(jsonl, tmp_path, mode, kept):
    evals = _evals(10)
    dirty = [chat("fine"), chat(evals[1].prompt), chat("also fine")]
    clean = [chat("one"), chat("two")]
    res, rep = _run(jsonl, evals, {"dirty": dirty, "clean": clean})
    originals = {"dirty": (tmp_path / "dirty.jsonl").read_text().splitlines(keepends=True),
                 "clean": (tmp_path / "clean.jsonl").read_text().splitlines(keepends=True)}
    out = tmp_path / "out"
    summary = write_filtered(res, rep, out, mode)
    for entry in summary:
        want = kept[entry["name"]]
        path = out / f"{entry['name']}.jsonl"
        if want is None:
            assert not path.exists()
        else:  # byte-identical lines, original order
            assert path.read_text() == "".join(originals[entry["name"]][i] for i in want)
    assert not list(out.glob(".*.tmp")) if out.exists() else True


def test_cli_end_to_end(jsonl, tmp_path, capsys):
    evals = _evals(20)
    ev_path = tmp_path / "ev.jsonl"
    ev_path.write_text("".join(json.dumps({"id": e.id, "prompt": e.prompt}) + "\n" for e in evals))
    dirty = jsonl("dirty", [chat(evals[i].prompt) for i in range(3)] + [chat("x")])
    clean = jsonl("clean", [chat("hello world")])
    out = tmp_path / "out"
    argv = ["decontam", str(dirty), f"ok={clean}", "--benchmarks", "none", "--eval-file", f"mine={ev_path}",
            "-o", str(out), "--workers", "1"]
    assert tulu_main(argv) == 0
    rep = json.loads((out / "report.json").read_text())
    assert [d["name"] for d in rep["datasets"]] == ["dirty", "ok"]
    assert rep["datasets"][0]["benchmarks"]["mine"]["hit"] == 3 and rep["datasets"][0]["flagged"]
    assert (out / "data" / "dirty.jsonl").read_text().count("\n") == 1
    assert (out / "report.md").exists() and (out / "report.html").exists()
    assert "FLAGGED by mine" in capsys.readouterr().out
    assert tulu_main(argv + ["--fail-on-flag"]) == 1
    assert tulu_main(["decontam", str(dirty), "--benchmarks", "none"]) == 2  # empty eval side: a clear error
    assert "eval side is empty" in capsys.readouterr().err


def test_eval_answers_are_indexed_only_when_asked(jsonl, tmp_path):
    prompt = "Solve for the number of marbles in the jar today please"
    answer = "First count the red marbles then add the blue marbles and the green ones to get seventy"
    ev = tmp_path / "ev.jsonl"
    ev.write_text(json.dumps({"prompt": prompt, "answer": answer}) + "\n")
    train = jsonl("t", [chat("hi", answer)])
    base = ["decontam", str(train), "--benchmarks", "none", "--eval-file", f"e={ev}", "--workers", "1",
            "--train-fields", "user,assistant", "--mode", "none"]
    assert tulu_main(base + ["-o", str(tmp_path / "p")]) == 0
    assert json.loads((tmp_path / "p" / "report.json").read_text())["datasets"][0]["benchmarks"]["e"]["hit"] == 0
    assert tulu_main(base + ["-o", str(tmp_path / "pa"), "--eval-fields", "prompt,answer"]) == 0
    rep = json.loads((tmp_path / "pa" / "report.json").read_text())
    assert rep["datasets"][0]["benchmarks"]["e"]["hit"] == 1  # 17 of 28 tokens covered > 50%
    assert not (tmp_path / "pa" / "data").exists()
