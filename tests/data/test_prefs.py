"""`tulu data prefs`: judge parsing, binarisation, model assignment, caches and resume, provenance."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tulu.cli import main
from tulu.curate import JsonlCache, parse_model_spec
from tulu.data.formats import DataError, load_records
from tulu.data.judging import (
    ASPECTS,
    Candidate,
    JudgeParseError,
    binarize,
    mean_rating,
    parse_aspect_rating,
    parse_judgment,
)
from tulu.curate.prefs import JudgeOptions, PrefsOptions, assign_models, run_prefs

SRC = str(Path(__file__).resolve().parents[2] / "src")


# ------------------------------------------------------------------------------------------ parsing
def test_parse_judgment_lines_json_and_decorations():
    want = {"helpfulness": 4, "instruction_following": 3, "honesty": 5, "truthfulness": 2}
    assert parse_judgment("Helpfulness: 4\nInstruction following: 3\nHonesty: 5\nTruthfulness: 2") == want
    assert parse_judgment("Sure!\n**Helpfulness**: 4/5\n- Instruction-following: 3\nHonesty = 5\n"
                          "Truthfulness - 2\nThanks.") == want
    assert parse_judgment('Ratings: {"helpfulness": 4, "instruction_following": 3, "honesty": 5, '
                          '"truthfulness": 2}') == want
    assert mean_rating(want) == 3.5


@pytest.mark.parametrize("text, why", [
    ("", "empty answer"),
    ("This answer seems fine.", "no rating for Helpfulness, Instruction following, Honesty, Truthfulness"),
    ("Helpfulness: 4\nHonesty: 5\nTruthfulness: 2", "no rating for Instruction following"),
    ("Helpfulness: 6\nInstruction following: 3\nHonesty: 5\nTruthfulness: 2", "Helpfulness: 6 is not an integer"),
    ("Helpfulness: 0\nInstruction following: 3\nHonesty: 5\nTruthfulness: 2", "Helpfulness: 0 is not an integer"),
    ("Helpfulness: 3.5\nInstruction following: 3\nHonesty: 5\nTruthfulness: 2", "3.5 is not an integer"),
    ("Helpfulness: 4\nHelpfulness: 2\nInstruction following: 3\nHonesty: 5\nTruthfulness: 2", "rated twice"),
    ('{"helpfulness": "good", "instruction_following": 3, "honesty": 5, "truthfulness": 2}', "'good' is not a number"),
])
def test_parse_judgment_rejects_malformed(text, why):
    with pytest.raises(JudgeParseError, match=why.replace(".", r"\.")):
        parse_judgment(text)


def test_parse_aspect_rating():
    assert parse_aspect_rating("Rating: 4") == 4
    assert parse_aspect_rating("**Rating:** 2 because it rambles") == 2
    assert parse_aspect_rating("I would give it 3/5.") == 3
    assert parse_aspect_rating("5") == 5
    for bad, why in (("", "no rating"), ("Rating: 9", "not an integer from 1 to 5"), ("Between 2 and 4", "several")):
        with pytest.raises(JudgeParseError, match=why):
            parse_aspect_rating(bad)


# ------------------------------------------------------------------------------------- binarisation
def C(model, score, text=None):
    return Candidate(model, text or f"text of {model}", score)


def test_binarize_best_vs_random_lower():
    cands = [C("a", 4.5), C("b", 3.0), C("c", 1.25), C("d", 4.0)]
    rejected = set()
    for seed in range(40):
        res = binarize(cands, random.Random(seed))
        assert res.outcome == "pair" and res.chosen.model == "a"
        rejected.add(res.rejected.model)
    assert rejected == {"b", "c", "d"}  # every lower-rated one can be drawn, never the best


def test_binarize_tie_for_best_picks_among_best_and_rejects_only_lower():
    cands = [C("a", 4.0), C("b", 4.0), C("c", 2.0)]
    chosen = set()
    for seed in range(40):
        res = binarize(cands, random.Random(seed))
        assert res.outcome == "pair" and res.rejected.model == "c"
        chosen.add(res.chosen.model)
    assert chosen == {"a", "b"}


@pytest.mark.parametrize("scores", [[3.0, 3.0], [2.5, 2.5, 2.5, 2.5], [5.0, 5.0, 5.0]])
def test_binarize_all_equal_is_a_dropped_tie(scores):
    res = binarize([C(f"m{i}", s) for i, s in enumerate(scores)], random.Random(0))
    assert res.outcome == "tie" and res.chosen is None and res.rejected is None


def test_binarize_too_few_and_identical():
    assert binarize([C("a", 5.0)], random.Random(0)).outcome == "too_few"
    assert binarize([], random.Random(0)).outcome == "too_few"
    same = [C("a", 5.0, "same text"), C("b", 2.0, " same text ")]
    assert binarize(same, random.Random(0)).outcome == "identical"
    # an identical lower one is skipped when a different lower one exists
    res = binarize(same + [C("c", 1.0, "other")], random.Random(0))
    assert res.outcome == "pair" and res.rejected.model == "c"


def test_assign_models_keeps_on_policy_and_is_deterministic():
    pool = [f"m{i}" for i in range(22)]
    seen = set()
    for pid in range(50):
        ms = assign_models(str(pid), pool, 4, "m7", seed=1)
        assert len(ms) == 4 and len(set(ms)) == 4 and ms[0] == "m7"
        assert ms == assign_models(str(pid), pool, 4, "m7", seed=1)
        seen.update(ms)
    assert len(seen) > 15  # the others vary from prompt to prompt
    assert sorted(assign_models("x", ["a", "b"], 4, None, 0)) == ["a", "b"]


def test_model_spec_forms(tmp_path):
    s = parse_model_spec("hot=embedded,temperature=1.2,max_tokens=64")
    assert (s.name, s.source, s.temperature, s.max_tokens, s.remote) == ("hot", "embedded", 1.2, 64, False)
    r = parse_model_spec("j=openai:gpt-4o@https://api.example.com/v1")
    assert (r.source, r.base_url, r.remote) == ("gpt-4o", "https://api.example.com/v1", True)
    (tmp_path / "run" / "sft" / "model").mkdir(parents=True)
    assert parse_model_spec(f"pol={tmp_path / 'run'}:sft").source == str(tmp_path / "run" / "sft" / "model")
    for bad in ("noequals", "x=embedded,colour=red", "x=openai:nourl", f"x={tmp_path / 'run'}:dpo"):
        with pytest.raises(DataError):
            parse_model_spec(bad)


# ------------------------------------------------------------------------------------- end to end
PROMPTS = [
    ("p1", "p1 a=5 b=3 c=1"),   # a best; rejected b or c
    ("p2", "p2 a=2 b=2 c=2"),   # all equal: tie, dropped
    ("p3", "p3 a=4 b=g c=1"),   # b's judgment is unparseable every time: counted, a vs c
    ("p4", "p4 a=f b=2 c=2"),   # a's judgment parses only when retried (4): a vs b/c
    ("p5", "p5 a=g b=g c=3"),   # two unparseable: one judged completion, too few
]


def write_prompts(path: Path) -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": t}], "id": i}) + "\n"
                            for i, t in PROMPTS))
    return path


def prefs_opts(canned, tmp_path, out="out", **kw) -> PrefsOptions:
    models = [parse_model_spec(f"{m}={canned.endpoint(m)}") for m in ("a", "b", "c")]
    judge = JudgeOptions(canned.endpoint("judge"), retries=2, concurrency=2)
    return PrefsOptions(out=tmp_path / out, prompts=[f"{write_prompts(tmp_path / 'prompts.jsonl')}=1.0"],
                        models=models, judge=judge, models_per_prompt=3, on_policy="a", seed=0, **kw)


def test_prefs_pairs_provenance_and_every_outcome_counted(canned, tmp_path):
    summary = run_prefs(prefs_opts(canned, tmp_path))
    out = tmp_path / "out"
    pairs = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    by_id = {p["id"]: p for p in pairs}
    assert sorted(by_id) == ["p1", "p3", "p4"]
    p1 = by_id["p1"]["provenance"]
    assert p1["chosen_model"] == "a" and p1["rejected_model"] in ("b", "c")
    assert p1["chosen_ratings"] == {a: 5 for a in ASPECTS} and p1["chosen_score"] == 5.0
    assert p1["judge"] == canned.endpoint("judge")
    assert sorted(c["model"] for c in p1["candidates"]) == ["a", "b", "c"]
    assert by_id["p1"]["chosen"][0]["content"] == "a on p1 [q=5]"
    assert by_id["p3"]["provenance"]["rejected_model"] == "c"
    assert by_id["p4"]["provenance"]["chosen_model"] == "a" and by_id["p4"]["provenance"]["chosen_score"] == 4.0
    assert summary["prompt_outcomes"] == {"pair": 3, "tie": 1, "identical": 0, "too_few": 1}
    assert summary["judgments"] == {"ok": 12, "unparseable": 3}
    assert summary["generations"] == {"cached": 0, "generated": 15, "failed": 0}
    # retries: 3 unparseable x 3 attempts + the retried one (2 attempts) + 11 first-time parses
    assert canned.calls["judge"] == 9 + 2 + 11
    j = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    bad = [x for x in j if x["status"] == "unparseable"]
    assert len(bad) == 3 and all(x["attempts"] == 3 and "no rating" in x["error"] and x["raw"] for x in bad)
    # the pairs are valid preference records for `tulu dpo`
    assert len(load_records(out / "pairs.jsonl", "preference")) == 3
    # a rerun reads both caches: no new requests, the same pairs
    before = dict(canned.calls)
    again = run_prefs(prefs_opts(canned, tmp_path))
    assert dict(canned.calls) == before
    assert again["generations"]["cached"] == 15 and again["judgments"] == {"cached": 15}
    assert [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()] == pairs


def test_prefs_per_aspect_judge_asks_four_questions(canned, tmp_path):
    opts = prefs_opts(canned, tmp_path)
    opts.judge.per_aspect = True
    summary = run_prefs(opts)
    assert summary["prompt_outcomes"] == {"pair": 3, "tie": 1, "identical": 0, "too_few": 1}
    assert summary["judgments"] == {"ok": 12, "unparseable": 3}
    # 11 judged at once: 4 questions each; the flaky one parses on the retry of every aspect: 4 x 2; the three
    # unparseable ones fail on their first aspect after 3 asks each
    assert canned.calls["judge"] == 11 * 4 + 4 * 2 + 3 * 3
    j = [json.loads(x) for x in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert all(x["error"].startswith("helpfulness: no rating") for x in j if x["status"] == "unparseable")


def test_prefs_resume_after_kill(canned, tmp_path):
    """SIGKILL the CLI in the middle of judging, tear the last cache line, rerun: nothing is asked twice and
    the pairs equal those of an uninterrupted run."""
    canned.delay = 0.15
    prompts = write_prompts(tmp_path / "prompts.jsonl")
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "tulu.cli", "data", "prefs", str(out), "--prompts", f"{prompts}=1.0",
            "--judge", canned.endpoint("judge"), "--models-per-prompt", "3", "--on-policy", "a", "--concurrency", "1"]
    for m in ("a", "b", "c"):
        args += ["--model", f"{m}={canned.endpoint(m)}"]
    env = {**os.environ, "PYTHONPATH": SRC, "TULU_PROGRESS": "0"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    judgments = out / "judgments.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline:
        if judgments.is_file() and len(judgments.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lines = judgments.read_text().splitlines()
    assert 4 <= len(lines) < 15, "the run was not stopped in the middle of judging"
    with open(judgments, "a") as fh:
        fh.write('{"key": "torn-by-a-kill", "sta')  # a write cut short
    first_calls = dict(canned.calls)
    canned.delay = 0.0
    summary = run_prefs(prefs_opts(canned, tmp_path, out="killed"))
    assert summary["generations"] == {"cached": 15, "generated": 0, "failed": 0}
    assert summary["judgments"]["cached"] == len(lines)
    assert sum(v for k, v in summary["judgments"].items() if k != "cached") == 15 - len(lines)
    for m in ("a", "b", "c"):  # no completion generated twice
        assert canned.calls[m] == first_calls[m] == 5
    fresh = run_prefs(prefs_opts(canned, tmp_path, out="fresh"))
    assert fresh["pairs"] == summary["pairs"] == 3
    assert (tmp_path / "fresh" / "pairs.jsonl").read_text() == (out / "pairs.jsonl").read_text()
    assert "torn-by-a-kill" not in judgments.read_text()


def test_jsonl_cache_refuses_corruption_before_the_end(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(DataError, match=r"c.jsonl:2: corrupt cache line"):
        JsonlCache(p)


def test_prefs_verifier_judge_and_request_errors(canned, tmp_path):
    """Prompts with a ground truth are judged by their verifier; an endpoint that is down is recorded as an
    error (retried by the next run), never dropped silently."""
    p = tmp_path / "math.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i} a=1 b=2"}],
                                     "ground_truth": "#### 1", "verifier": "gsm8k", "id": f"m{i}"}) + "\n"
                         for i in range(3)))
    # a and b say "[q=1]" / "[q=2]": the gsm8k verifier reads the last number, so a's answer is right
    models = [parse_model_spec(f"{m}={canned.endpoint(m)}") for m in ("a", "b")]
    opts = PrefsOptions(out=tmp_path / "v", prompts=[str(p)], models=models, judge=JudgeOptions("verifier"),
                        models_per_prompt=2)
    s = run_prefs(opts)
    pairs = [json.loads(x) for x in (tmp_path / "v" / "pairs.jsonl").read_text().splitlines()]
    assert s["pairs"] == 3 and all(x["provenance"]["chosen_model"] == "a" for x in pairs)
    assert all(x["provenance"]["judge"] == "verifier:gsm8k" for x in pairs)
    assert canned.calls["judge"] == 0
    down = parse_model_spec("d=openai:d@http://127.0.0.1:9/v1")
    opts = PrefsOptions(out=tmp_path / "e", prompts=[str(p)], models=models + [down], judge=JudgeOptions("verifier"),
                        models_per_prompt=3, timeout=2.0)
    import tulu.rollout.openai as oa

    orig = oa.OpenAIClient.__init__

    def fast_fail(self, *a, **k):
        orig(self, *a, **{**k, "max_retries": 0})

    oa.OpenAIClient.__init__ = fast_fail
    try:
        s = run_prefs(opts)
    finally:
        oa.OpenAIClient.__init__ = orig
    assert s["generations"]["failed"] == 3 and s["pairs"] == 3


def test_prefs_local_model_and_reward_model_judge(canned, tmp_path, tokenizer):
    """A local model folder in the pool (our CPU engine) and a `tulu rm`-style reward model as the judge."""
    from tulu.models import save_model, tiny_model

    model, tok = tiny_model(seed=0, tokenizer=tokenizer)
    folder = save_model(model, tok, tmp_path / "tiny")
    models = [parse_model_spec(f"tiny={folder},max_tokens=8,temperature=1.0"),
              parse_model_spec(f"a={canned.endpoint('a')}")]
    opts = PrefsOptions(out=tmp_path / "rm", prompts=[f"{write_prompts(tmp_path / 'p.jsonl')}=3"], models=models,
                        judge=JudgeOptions(f"rm:{folder}"), models_per_prompt=2, on_policy="tiny", batch_size=4)
    s = run_prefs(opts)
    assert s["generations"]["generated"] == 6 and s["judgments"] == {"ok": 6}
    j = [json.loads(x) for x in (tmp_path / "rm" / "judgments.jsonl").read_text().splitlines()]
    assert all(isinstance(x["score"], float) for x in j)
    assert s["pairs"] + s["prompt_outcomes"]["tie"] == 3


@pytest.mark.parametrize("action", ["prefs", "persona", "ifpairs", "validate", "convert", "stats", "synth", "prompts"])
def test_cli_help_documents_every_option(action, capsys):
    import argparse

    from tulu import data_cli

    parser = argparse.ArgumentParser(prog="tulu data")
    data_cli.add_arguments(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[action]
    for act in sub._actions:
        assert act.help and act.help.strip(), f"{action}: {act.dest} has no help text"
    with pytest.raises(SystemExit):
        main(["data", action, "--help"])
    text = capsys.readouterr().out
    for act in sub._actions:
        for opt in act.option_strings:
            assert opt in text


def test_prefs_recipe_loads_and_empty_sft_mixture_is_skipped(tmp_path):
    from tulu.config import load_config
    from tulu.pipeline import Pipeline, PipelineConfig

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(PipelineConfig, str(root / "recipes" / "embedded_cpu_prefs.yaml"), [])
    assert cfg.sft_mixture == {} and cfg.stages == ["data", "decontam", "dpo"]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"messages": [{"role": "user", "content": "q"}],
                                 "chosen": [{"role": "assistant", "content": "good"}],
                                 "rejected": [{"role": "assistant", "content": "bad"}],
                                 "provenance": {"judge": "rm:x"}}) + "\n")
    cfg = load_config(PipelineConfig, str(root / "recipes" / "embedded_cpu_prefs.yaml"),
                      [f"output_dir={tmp_path / 'run'}", f"dpo_mixture={{{pairs}: 1.0}}"])
    info = Pipeline(cfg).data()
    assert list(info) == ["prefs"] and info["prefs"]["records"] == 1
    assert not (tmp_path / "run" / "data" / "sft.jsonl").exists()


def test_prefs_through_tulu_serve_on_the_tiny_model(tmp_path, tiny):
    """The real server: a tiny random Llama behind `tulu serve` writes the completions and is asked to judge
    them. Its answers are random tokens, so every judgment is retried and then recorded as unparseable, and
    no pair is made; the summary says so."""
    from tulu.serve.app import create_app
    from tulu.serve.engine import FastEngine
    from tulu.serve.server import ServerThread

    model, tok = tiny
    engine = FastEngine("tiny", model, tok, max_batch_size=4, max_model_len=2048)
    try:
        with ServerThread(create_app({"tiny": engine})) as srv:
            ep = f"openai:tiny@{srv.url}/v1"
            models = [parse_model_spec(f"cold={ep},temperature=0.5,max_tokens=6"),
                      parse_model_spec(f"hot={ep},temperature=1.5,max_tokens=6")]
            opts = PrefsOptions(out=tmp_path / "s", prompts=["synthetic:constraints=2"], models=models,
                                judge=JudgeOptions(ep, retries=1, max_tokens=6), models_per_prompt=2, on_policy="cold")
            s = run_prefs(opts)
    finally:
        engine.close()
    assert s["generations"]["generated"] == 4
    assert s["judgments"] == {"unparseable": 4} and s["pairs"] == 0
    assert s["prompt_outcomes"]["too_few"] == 2
    j = [json.loads(x) for x in (tmp_path / "s" / "judgments.jsonl").read_text().splitlines()]
    assert all(x["attempts"] == 2 and x["error"].startswith("no rating") for x in j)
