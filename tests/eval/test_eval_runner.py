"""Runner: results with standard errors, cache + resume, skipped tasks, suite averages, CLI, tiny model."""

from __future__ import annotations

import json

import pytest

from tulu.eval.runner import evaluate, suite_averages
from tulu.eval.tasks import get_task


def _gsm8k_oracle(items):
    gold = {it.prompt.strip(): it.answer for it in items}

    def respond(messages, s):
        q = messages[-1]["content"].removeprefix("Question: ").removesuffix("\nAnswer:").strip()
        return f"The answer is {gold[q]}." if len(q) % 2 == 0 else "The answer is -1."
    return respond


def test_runner_scores_caches_and_resumes(tmp_path, scripted):
    task = get_task("gsm8k")
    items = task.load()[:6]
    backend = scripted(_gsm8k_oracle(items))
    res = evaluate([task], backend, model="oracle", output=tmp_path, limit=6, batch_size=4)
    t = res["tasks"]["gsm8k"]
    expected = sum(len(it.prompt.strip()) % 2 == 0 for it in items) / 6 * 100
    assert t["n"] == 6 and t["metrics"]["exact_match"]["value"] == pytest.approx(expected)
    assert t["metrics"]["exact_match"]["stderr"] > 0
    assert backend.calls == 2 and backend.prompts == 6
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["tasks"]["gsm8k"]["metrics"] == t["metrics"]
    gens = [json.loads(l) for l in (tmp_path / "generations" / "gsm8k.jsonl").read_text().splitlines()]
    assert len(gens) == 6 and {"id", "prompt", "gold", "responses", "scores"} <= set(gens[0])
    # a second run reuses every cached generation
    again = scripted(_gsm8k_oracle(items))
    res2 = evaluate([get_task("gsm8k")], again, model="oracle", output=tmp_path, limit=6)
    assert again.calls == 0 and res2["tasks"]["gsm8k"]["metrics"] == t["metrics"]


def test_interrupted_run_resumes_where_it_stopped(tmp_path, scripted):
    task = get_task("gsm8k")
    items = task.load()[:8]
    respond = _gsm8k_oracle(items)

    class Boom(Exception):
        pass

    def failing(messages, s, count=[0]):
        count[0] += 1
        if count[0] > 4:
            raise Boom
        return respond(messages, s)

    with pytest.raises(Boom):
        evaluate([task], scripted(failing), model="m", output=tmp_path, limit=8, batch_size=4)
    resumed = scripted(respond)
    res = evaluate([get_task("gsm8k")], resumed, model="m", output=tmp_path, limit=8, batch_size=4)
    assert resumed.prompts == 4 and res["tasks"]["gsm8k"]["n"] == 8


def test_settings_change_the_cache_key(tmp_path, scripted):
    import dataclasses

    b1 = scripted(lambda m, s: "The answer is 1.")
    evaluate([get_task("gsm8k")], b1, model="m", output=tmp_path, limit=2)
    t = get_task("gsm8k")
    t.sampling = dataclasses.replace(t.sampling, max_new_tokens=7)
    b2 = scripted(lambda m, s: "The answer is 1.")
    evaluate([t], b2, model="m", output=tmp_path, limit=2)
    assert b2.prompts == 2  # not served from the other settings' cache


def test_skipped_tasks_and_averages(tmp_path, scripted):
    tasks = [get_task(n) for n in ("bbh", "alpaca_eval", "gpqa")]
    res = evaluate(tasks, scripted(lambda m, s: "Therefore, the answer is (A)."), model="m", output=tmp_path, limit=5)
    assert "hub" in res["tasks"]["bbh"]["skipped"] and "judge" in res["tasks"]["alpaca_eval"]["skipped"]
    assert res["tasks"]["gpqa"]["n"] == 5
    av = res["averages"]["unseen"]
    assert av["tasks"] == ["gpqa"] and "ifbench" in av["missing"]
    assert av["value"] == res["tasks"]["gpqa"]["metrics"]["accuracy"]["value"]
    assert "dev" not in res["averages"]


def test_suite_averages_combine_errors():
    tasks = {"gsm8k": {"headline": "em", "metrics": {"em": {"value": 40.0, "stderr": 3.0}}},
             "ifeval": {"headline": "pl", "metrics": {"pl": {"value": 60.0, "stderr": 4.0}}}}
    av = suite_averages(tasks)["dev"]
    assert av["value"] == 50.0 and av["stderr"] == pytest.approx(2.5)


def test_cli_end_to_end_with_a_scripted_backend(tmp_path, scripted, monkeypatch, capsys):
    from tulu import cli
    from tulu import eval_cli

    monkeypatch.setattr(eval_cli, "load_backend", lambda *a, **k: scripted(lambda m, s: "Therefore, the answer is (B)."))
    rc = cli.main(["eval", "--model", "fake", "--tasks", "gpqa,mmlu,bbh", "--limit", "3", "--output", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| gpqa |" in out and "bbh" in out
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.md").is_file()
    assert cli.main(["eval", "--model", "fake", "--tasks", "nope"]) == 2


def test_cli_list(capsys):
    from tulu import cli

    assert cli.main(["eval", "--list"]) == 0
    out = capsys.readouterr().out
    assert "gsm8k" in out and "unavailable" in out


def test_tiny_model_through_hf_generate(tmp_path, tiny):
    import dataclasses

    from tulu.rollout import get_backend

    tiny_backend = get_backend("hf", *tiny, batch_size=4)

    tasks = []
    for name in ("ifeval", "mmlu_mc"):
        t = get_task(name)
        t.sampling = dataclasses.replace(t.sampling, max_new_tokens=6)
        tasks.append(t)
    res = evaluate(tasks, tiny_backend, model="tiny", output=tmp_path, limit=2, batch_size=2)
    for name in ("ifeval", "mmlu_mc"):
        t = res["tasks"][name]
        assert t["n"] == 2 and not t["skipped"]
        assert 0 <= t["metrics"][t["headline"]]["value"] <= 100


def test_limit_takes_subjects_round_robin_and_extends():
    from tulu.data.benchmarks import BenchmarkItem
    from tulu.eval.runner import limit_items

    items = [BenchmarkItem(id=f"{s}{i}", prompt="p", answer="a", meta={"subject": s})
             for s, n in (("alg", 5), ("geo", 2), ("num", 3)) for i in range(n)]
    assert [it.id for it in limit_items(items, 6)] == ["alg0", "geo0", "num0", "alg1", "geo1", "num1"]
    assert [it.id for it in limit_items(items, 8)] == ["alg0", "geo0", "num0", "alg1", "geo1", "num1", "alg2", "num2"]
    assert limit_items(items, 100) == items
    hub = [BenchmarkItem(id=f"{s}/{i}", prompt="p", answer="a", meta={"subset": s}) for s in "xy" for i in range(3)]
    assert [it.id for it in limit_items(hub, 3)] == ["x/0", "y/0", "x/1"]
    plain = [BenchmarkItem(id=str(i), prompt="p", answer="a") for i in range(5)]
    assert limit_items(plain, 2) == plain[:2]


def test_averages_name_every_task_left_out_and_every_stand_in(tmp_path, scripted):
    tasks = [get_task(n) for n in ("gpqa", "ifbench", "mmlu_pro")]
    res = evaluate(tasks, scripted(lambda m, s: "Therefore, the answer is (A)."), model="m", output=tmp_path, limit=2)
    av = res["averages"]["unseen"]
    assert av["tasks"] == ["gpqa", "ifbench"]
    assert set(av["missing"]) == {"agieval", "mmlu_pro", "deepmind_math", "bigcodebench_hard", "href"}
    assert "hub" in av["missing"]["mmlu_pro"] and "not run" in av["missing"]["agieval"]
    assert "not implemented" in av["missing"]["href"]
    assert set(av["not_comparable"]) == {"gpqa", "ifbench"} and "448" in av["not_comparable"]["gpqa"]
    assert av["comparable_with_published"] is False
    t = res["tasks"]["gpqa"]
    assert t["olmes"] == "gpqa:0shot_cot::tulu3" and "not comparable" in t["not_comparable"]


def test_loglikelihood_task_skips_on_a_generation_only_backend(tmp_path, scripted):
    res = evaluate([get_task("mmlu_mc")], scripted(lambda m, s: "A"), model="m", output=tmp_path, limit=2)
    assert "log-likelihood" in res["tasks"]["mmlu_mc"]["skipped"]


def test_loglikelihood_task_runs_and_caches(tmp_path, tiny):
    from tulu.rollout import get_backend
    from tulu.rollout.base import GenerationBackend

    class Counting(GenerationBackend):
        name = "hf-counting"

        def __init__(self, inner):
            self.inner, self.requests = inner, 0

        def generate(self, prompts, params, *, progress=False):
            raise AssertionError("a log-likelihood task must not generate")

        def loglikelihood(self, requests):
            self.requests += len(requests)
            return self.inner.loglikelihood(requests)

    be = Counting(get_backend("hf", *tiny, batch_size=8))
    res = evaluate([get_task("mmlu_mc")], be, model="tiny", output=tmp_path, limit=3, batch_size=2)
    t = res["tasks"]["mmlu_mc"]
    assert t["n"] == 3 and be.requests == 12 and 0 <= t["metrics"]["accuracy"]["value"] <= 100
    assert t["settings"]["request_type"] == "loglikelihood"
    be2 = Counting(get_backend("hf", *tiny))
    again = evaluate([get_task("mmlu_mc")], be2, model="tiny", output=tmp_path, limit=3)
    assert be2.requests == 0 and again["tasks"]["mmlu_mc"]["metrics"] == t["metrics"]


def test_alpaca_eval_names_the_judge_that_ran(tmp_path, scripted):
    from tulu.eval.tasks.alpaca_eval import LocalJudge

    judge_backend = scripted(lambda m, s: "a")
    t = get_task("alpaca_eval", judge=LocalJudge(judge_backend))
    res = evaluate([t], scripted(lambda m, s: "An answer."), model="m", output=tmp_path, limit=3)
    entry = res["tasks"]["alpaca_eval"]
    assert entry["judge"] == "local model through the scripted backend, our pairwise prompt"
    assert entry["olmes"] == "alpaca_eval_v2::tulu" and "alpaca-eval package" in entry["not_comparable"]
    assert entry["metrics"]["win_rate"]["value"] == 50.0  # "a" in both orders: a win, then a loss


def test_truthfulqa_mc2_through_the_loglikelihood_path(tmp_path, tiny, monkeypatch):
    """No TruthfulQA copy ships offline: a hand-written item goes through the real runner and hf backend."""
    import math

    from tulu.data.benchmarks import BenchmarkItem
    from tulu.rollout import get_backend
    from tulu.rollout.loglik import LoglikRequest

    item = BenchmarkItem("0", "Can pigs fly?", {"mc1_targets": {"choices": ["No", "Yes"], "labels": [1, 0]},
                                                "mc2_targets": {"choices": ["No", "No, they cannot", "Yes"],
                                                                "labels": [1, 1, 0]}}, {})
    t = get_task("truthfulqa")
    monkeypatch.setattr(type(t), "load", lambda self: [item])
    be = get_backend("hf", *tiny)
    res = evaluate([t], be, model="tiny", output=tmp_path)
    ctx = t.context(item)
    lps = [o.logprob for o in be.loglikelihood([LoglikRequest(ctx, f" {o}") for o in ("No", "No, they cannot", "Yes")])]
    p = [math.exp(x) for x in lps]
    assert res["tasks"]["truthfulqa"]["metrics"]["mc2"]["value"] == pytest.approx(100 * (p[0] + p[1]) / sum(p), abs=1e-3)


def test_task_limits_override_the_limit_per_task(tmp_path, scripted):
    from tulu.report.runreport import size_phrase

    tasks = [get_task("gsm8k"), get_task("ifeval")]
    res = evaluate(tasks, scripted(lambda m, s: "The answer is 3."), model="m", output=tmp_path, limit=2,
                   task_limits={"gsm8k": 5})
    assert res["tasks"]["gsm8k"]["n"] == 5 and res["tasks"]["ifeval"]["n"] == 2
    assert res["task_limits"] == {"gsm8k": 5}
    assert size_phrase(res) == "first 5 items of gsm8k; first 2 items of the other tasks"
    assert size_phrase({"limit": 20}) == "first 20 items of each task"
    assert size_phrase({"limit": None}) == ""
    assert size_phrase({"limit": None, "task_limits": {"gsm8k": 300, "ifeval": 0}}) == (
        "first 300 items of gsm8k; every item of ifeval; every item of the other tasks")
    with pytest.raises(ValueError, match="task_limits names tasks that are not being run: mmlu"):
        evaluate(tasks, scripted(lambda m, s: "x"), model="m", output=tmp_path / "b", task_limits={"mmlu": 3})


def test_bf16_weights_get_their_own_cache_and_are_recorded(tmp_path, scripted):
    from tulu.rollout.weights import WeightChoice

    def backend(dtype, products="fp32"):
        b = scripted(lambda m, s: "The answer is 3.")
        b.engine = type("Engine", (), {"weight_choice": WeightChoice(dtype, "explicit", "test", products=products)})()
        return b

    fp32 = evaluate([get_task("gsm8k")], backend("float32"), model="m", output=tmp_path, limit=2)
    assert fp32["weights"]["dtype"] == "float32"
    again = backend("float32")
    evaluate([get_task("gsm8k")], again, model="m", output=tmp_path, limit=2)
    assert again.calls == 0  # fp32 keeps the key it always had: its cache is reused
    bf16 = backend("bfloat16")
    res = evaluate([get_task("gsm8k")], bf16, model="m", output=tmp_path, limit=2)
    assert bf16.calls == 1 and res["model_key"] != fp32["model_key"] and res["weights"]["dtype"] == "bfloat16"
    # bf16 products (the vdpbf16ps kernel) answer differently again: a third cache, and recorded
    dot = backend("bfloat16", products="bf16")
    res2 = evaluate([get_task("gsm8k")], dot, model="m", output=tmp_path, limit=2)
    assert dot.calls == 1 and res2["model_key"] not in (res["model_key"], fp32["model_key"])
    assert res2["weights"]["products"] == "bf16"
