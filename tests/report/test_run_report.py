"""The run report on hand-made run folders (files on disk, no model): paired significance against hand-computed
values, the contamination column, training curves, samples, run facts, several runs side by side, the CLI."""

from __future__ import annotations

import json
import math

import pytest
from report_fakerun import IFEVAL_IDS, SFT_METRICS, decontam_report, make_run

from tulu.report import contamination, curves
from tulu.report.rundata import load_pipeline_run, load_runs
from tulu.report.runreport import build, write
from tulu.report.significance import average_rows, compare_items, task_rows


def _row(rows, task):
    return next(r for r in rows if r["task"] == task)


def test_stage_delta_mcnemar_by_hand(tmp_path):
    run = load_pipeline_run(make_run(tmp_path / "a"))
    assert run.stages == ["base", "sft"]
    rows = task_rows(run)
    gsm = _row(rows, "gsm8k")["deltas"][1]
    # base right on {0, 1}, sft on {1..9}: b = 8 improved (2..9), c = 1 worsened (0);
    # two-sided exact McNemar p = 2 * P[Bin(9, 1/2) <= 1] = 2 * (1 + 9) / 512
    assert gsm["test"] == "mcnemar" and tuple(gsm["discordant"]) == (8, 1)
    assert gsm["p_value"] == pytest.approx(2 * 10 / 512)
    assert gsm["delta"] == pytest.approx(35.0) and gsm["n"] == 20
    assert gsm["significant"] is True
    assert gsm["low"] <= 35.0 <= gsm["high"] and gsm["low"] > 0  # the bootstrap interval excludes 0 here
    ife = _row(rows, "ifeval")["deltas"][1]
    # one up (item 3), one down (item 2): p = 2 * P[Bin(2, 1/2) <= 1] capped at 1
    assert tuple(ife["discordant"]) == (1, 1) and ife["p_value"] == 1.0 and ife["significant"] is False
    assert ife["delta"] == 0.0
    assert _row(rows, "ifbench")["deltas"] == [None, None]  # skipped in both stages: no test


def test_paired_bootstrap_by_hand_and_on_shared_items_only():
    # every item gains exactly 0.5: every resampled mean difference is 0.5, so the interval is [50, 50]
    # points and no resample reaches 0 (p = 2 * min(0, 1) = 0)
    before = {str(i): 0.25 for i in range(10)}
    after = {str(i): 0.75 for i in range(10)}
    d = compare_items(before, after)
    assert d.test == "paired bootstrap" and (d.delta, d.low, d.high, d.p_value) == pytest.approx((50, 50, 50, 0))
    # graded scores that cancel out: mean difference 0, the interval straddles 0, p = 1 (half the resampled
    # means are <= 0 and half >= 0 by symmetry, and both shares count ties)
    before = {"a": 0.2, "b": 0.8}
    after = {"a": 0.8, "b": 0.2}
    d = compare_items(before, after)
    assert d.delta == pytest.approx(0.0) and d.low == pytest.approx(-60.0) and d.high == pytest.approx(60.0)
    assert d.p_value == pytest.approx(1.0)
    # only the ids both sides answered are paired
    d = compare_items({"x": 1.0, "y": 0.0, "z": 1.0}, {"y": 1.0, "z": 1.0})
    assert d.n == 2 and d.delta == pytest.approx(50.0) and "2 items" in d.note
    assert compare_items({"x": 1.0}, {"y": 1.0}) is None


def test_suite_average_delta_is_mean_of_task_deltas(tmp_path):
    run = load_pipeline_run(make_run(tmp_path / "a"))
    rows = task_rows(run)
    (avg,) = average_rows(run, rows)
    assert avg["task"] == "dev average" and avg["tasks"] == ["gsm8k", "ifeval"]
    # (35 + 0) / 2 points, on the 40 pooled items
    assert avg["deltas"][1]["delta"] == pytest.approx(17.5) and avg["deltas"][1]["n"] == 40
    assert avg["values"][0]["value"] == pytest.approx((10 + 15) / 2)


def test_whole_recipe_delta_first_stage_to_final_model(tmp_path):
    # gsm8k right: base {0, 1}, sft {1..9}, rlvr {1..4}; ifeval right: base {0, 1, 2}, sft {0, 1, 3}, rlvr {0..12}
    run = load_pipeline_run(make_run(tmp_path / "a", more={"rlvr": (set(range(1, 5)), set(range(13)))}))
    assert run.stages == ["base", "sft", "rlvr"]
    rows = task_rows(run)
    gsm = _row(rows, "gsm8k")
    # base -> rlvr on gsm8k: 3 up (2, 3, 4), 1 down (0): delta +10 points, p = 2 * P[Bin(4, 1/2) <= 1] = 10/16
    o = gsm["overall"]
    assert (o["test"], tuple(o["discordant"]), o["n"]) == ("mcnemar", (3, 1), 20)
    assert o["delta"] == pytest.approx(10.0) and o["p_value"] == pytest.approx(10 / 16) and not o["significant"]
    assert [d["delta"] for d in gsm["deltas"][1:]] == pytest.approx([35.0, -25.0])  # the stage-to-stage ones
    # ifeval base -> rlvr: 10 up (3..12), 0 down: p = 2 / 2**10
    o = _row(rows, "ifeval")["overall"]
    assert tuple(o["discordant"]) == (10, 0) and o["p_value"] == pytest.approx(2 / 1024) and o["significant"]
    (avg,) = average_rows(run, rows)
    assert avg["overall"]["delta"] == pytest.approx((10.0 + 50.0) / 2) and avg["overall"]["n"] == 40
    report, _ = build([run], plot=False)
    sec = report["runs"][0]
    assert sec["eval"]["overall"]["rose"][0].startswith("ifeval (+50.0, p=0.002")
    assert any(s.startswith("gsm8k (+10.0, p=0.62") for s in sec["eval"]["overall"]["within_noise"])
    line = next(v for v in sec["verdict"] if v.startswith("rlvr (the final model) against base"))
    assert "significantly higher: ifeval (+50.0" in line and "LOWER" not in line
    paths = write([run], tmp_path / "out", plot=False)
    md = paths["markdown"].read_text()
    assert "| Δ base→sft [95% CI] p | Δ sft→rlvr [95% CI] p | Δ base→rlvr [95% CI] p |" in md
    assert "Δ base→rlvr<br><small>whole recipe</small>" in paths["html"].read_text()
    # two stages: the only delta is already base -> final, no extra column
    two = load_pipeline_run(make_run(tmp_path / "b"))
    assert all(r["overall"] is None for r in task_rows(two))
    assert "whole recipe" not in write([two], tmp_path / "out2", plot=False)["html"].read_text()


def _add_groups(stage_dir):
    """Give gsm8k's per-item scores a group (even / odd item ids), as heldout_gen's families are."""
    gens = stage_dir / "generations" / "gsm8k.jsonl"
    recs = [json.loads(line) for line in gens.read_text().splitlines()]
    for r in recs:
        r["scores"][f"exact_match/{'even' if int(r['id']) % 2 == 0 else 'odd'}"] = r["scores"]["exact_match"]
    gens.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = json.loads((stage_dir / "results.json").read_text())
    for g in ("even", "odd"):
        vals = [r["scores"]["exact_match"] for r in recs if f"exact_match/{g}" in r["scores"]]
        res["tasks"]["gsm8k"]["metrics"][f"exact_match/{g}"] = {"value": 100 * sum(vals) / len(vals), "stderr": 1.0}
    (stage_dir / "results.json").write_text(json.dumps(res))


def test_per_group_rows_pair_each_group(tmp_path):
    root = make_run(tmp_path / "a", more={"rlvr": (set(range(1, 5)), set(range(13)))})
    for stage in ("base", "sft", "rlvr"):
        _add_groups(root / "eval" / stage)
    rows = task_rows(load_pipeline_run(root))
    assert [r["task"] for r in rows][:3] == ["gsm8k", "gsm8k · even", "gsm8k · odd"]
    even, odd = _row(rows, "gsm8k · even"), _row(rows, "gsm8k · odd")
    assert (even["group"], even["metric"]) == ("even", "exact_match/even")
    # gsm8k right: base {0, 1}, sft {1..9}: even ids 2, 4, 6, 8 up and 0 down; odd ids 3, 5, 7, 9 up
    assert tuple(even["deltas"][1]["discordant"]) == (4, 1) and even["deltas"][1]["n"] == 10
    assert tuple(odd["deltas"][1]["discordant"]) == (4, 0) and odd["deltas"][1]["delta"] == pytest.approx(40.0)
    # base -> rlvr ({1..4}): even 2, 4 up, 0 down; odd 3 up
    assert tuple(even["overall"]["discordant"]) == (2, 1) and tuple(odd["overall"]["discordant"]) == (1, 0)
    assert even["values"][0]["value"] == pytest.approx(10.0) and even["contamination"] is None
    assert even["values"][0]["n"] == 10 and _row(rows, "gsm8k")["values"][0]["n"] == 20  # a group counts its own
    run = load_pipeline_run(root)
    (avg,) = average_rows(run, task_rows(run))
    assert avg["tasks"] == ["gsm8k", "ifeval"]  # groups are not tasks of the suite average


def test_a_significant_fall_is_named_in_the_verdict(tmp_path):
    # gsm8k: base right on {0..11}, sft {0..11}, dpo {0}: 11 down, 0 up from base to the final model
    run = load_pipeline_run(make_run(tmp_path / "a", base_gsm=set(range(12)), sft_gsm=set(range(12)),
                                     more={"dpo": ({0}, {0, 1, 2})}))
    report, _ = build([run], plot=False)
    sec = report["runs"][0]
    line = next(v for v in sec["verdict"] if v.startswith("dpo (the final model) against base"))
    assert "significantly LOWER: gsm8k (-55.0, p=<0.001, n=20)" in line


def test_contamination_column_union_over_datasets():
    rep = decontam_report()
    ov = contamination.benchmark_overlap(rep)
    assert ov["ifeval"]["ids"] == {"1000", "1005", "1012"} and ov["ifeval"]["total"] == 541
    cell = contamination.column("ifeval", IFEVAL_IDS, rep, ov)
    # 3 of 541 = 0.55%; items 1000, 1005 and 1012 are among the 20 evaluated ids 1000..1019
    assert cell.startswith("0.6% of ifeval (3/541)") and "3 of the 20 evaluated items" in cell
    assert "sft, prefs" in cell and "removed before training" in cell
    assert contamination.column("ifeval", ["1"], rep).count("0 of the 1 evaluated") == 1
    assert contamination.column("gsm8k", ["0"], rep) == "0% of gsm8k (1319 items checked)"
    assert contamination.column("heldout_gen", [], rep).startswith("held out by construction")
    assert contamination.column("gsm8k", [], None) == "no decontam stage"
    # a report without hit_ids: exact only where the examples list every hit; else bounded by (max, sum)
    old = decontam_report(with_ids=False)
    ov = contamination.benchmark_overlap(old)
    assert ov["ifeval"]["ids"] is None and (ov["ifeval"]["low"], ov["ifeval"]["high"]) == (2, 4)
    assert contamination.column("ifeval", IFEVAL_IDS, old).startswith("0.4–0.7% of ifeval (2–4/541)")
    m = contamination.matrix(rep)
    assert [r["dataset"] for r in m["rows"]] == ["sft", "prefs"] and m["rows"][0]["removed"] == 4
    assert m["rows"][0]["cells"]["ifeval"]["hit"] == 2 and m["skipped"] == {"bbh": "bbh: needs the hub"}


def test_curves_from_metrics_jsonl(tmp_path):
    run = load_pipeline_run(make_run(tmp_path / "a"))
    assert run.histories["sft"] == SFT_METRICS
    rows = {r["metric"]: r for r in curves.summary_rows("sft", {"a": run.histories["sft"]})}
    assert rows["loss"]["first"] == 4.0 and rows["loss"]["last"] == 1.0 and rows["loss"]["points"] == 4
    assert (rows["nll_per_token"]["first_quarter"], rows["nll_per_token"]["last_quarter"]) == (2.0, 1.0)
    assert curves.quarter_means([1, 2, 3, 4, 5, 6, 7, 8]) == (1.5, 7.5)
    keys = curves.expand_keys(run.histories["rlvr"], ["reward", "reward/*"])
    assert keys == ["reward", "reward/gsm8k", "reward/ifeval"]
    s = curves.series([{"step": 1, "x": 1.0}, {"step": 2}, {"step": 3, "x": math.nan}, {"step": 4, "x": 2.0}], "x")
    assert (s.steps, s.values) == ([1.0, 4.0], [1.0, 2.0])
    png = curves.stage_figure("rlvr", {"a": run.histories["rlvr"]})
    assert png[:4] == b"\x89PNG"
    assert curves.stage_figure("sft", {"a": [{"step": 1, "other": 1.0}]}) is None
    dpo = curves.dpo_heldout_points({"a": run.summaries["dpo"]})["a"]
    assert (dpo["before"], dpo["after"]) == (0.0, 0.9)


def test_report_sections_and_plain_verdict(tmp_path):
    run = load_pipeline_run(make_run(tmp_path / "a"))
    report, plots = build([run], plot=False)
    assert plots == {}
    sec = report["runs"][0]
    assert [s["suite"] for s in sec["eval"]["suites"]] == ["dev", "unseen"]
    verdict = " ".join(sec["verdict"])
    assert "2 of 3" not in verdict and "1 of 3 stage-to-stage deltas are within noise" in verdict
    assert "ifeval base→sft" in sec["eval"]["noise"]["within_noise"][0]
    assert any(s.startswith("gsm8k base→sft (+35.0") for s in sec["eval"]["noise"]["significant"])
    # RLVR's held-out: 2 prompts up, none down: McNemar p = 2 * P[Bin(2, 1/2) <= 0] = 0.5
    held = sec["rlvr_heldout"]["rows"][0]
    assert (held["group"], held["n"], held["p_value"], tuple(held["discordant"])) == ("all", 6, 0.5, (2, 0))
    # samples: items whose verdict differs come first; every stage's answer and verdict is there
    s0 = sec["samples"][0]
    assert s0["task"] == "gsm8k" and s0["id"] == "0" and s0["differs"]
    assert [(a["stage"], a["verdict"]) for a in s0["answers"]] == [("base", 1.0), ("sft", 0.0)]
    facts = dict(sec["facts"])
    assert facts["git commit"] == "abc123" and facts["seeds"] == "data 7, sft 11"
    assert "sft 30 s" in facts["time per stage"] and "Test CPU" in facts["CPU"]
    assert set(report["curves"]) == {"sft", "dpo", "rlvr"}


def test_html_is_self_contained_and_marks_significance(tmp_path):
    run = load_pipeline_run(make_run(tmp_path / "a"))
    paths = write([run], tmp_path / "out")
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 4  # headline + SFT, DPO, RLVR curves
    assert "<script" not in page and "http://" not in page and "https://" not in page and "<link" not in page
    assert 'class="num sig-up"' in page and "within noise" in page and "significant" in page
    assert "0.6% of ifeval (3/541)" in page
    md = paths["markdown"].read_text()
    assert "+35.0 [" in md and "p=0.039 **significant**" in md and "![sft curves](curves_sft.png)" in md
    assert (tmp_path / "out" / "curves_sft.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads(paths["json"].read_text())
    assert data["runs"][0]["eval"]["suites"][0]["rows"][0]["deltas"][1]["significant"] is True


def test_runs_side_by_side_and_cli(tmp_path, capsys):
    from tulu import cli

    make_run(tmp_path / "cpu")
    make_run(tmp_path / "gpu", sft_gsm={1, 2})
    runs = load_runs([tmp_path / "cpu", tmp_path / "gpu"])
    report, _ = build(runs, plot=False)
    x = report["cross_run"]
    assert x["labels"] == ["cpu", "gpu"]
    sft_gsm = next(r for r in x["rows"] if (r["stage"], r["task"]) == ("sft", "gsm8k"))
    # cpu right on 1..9, gpu on {1, 2}: 7 discordant, all one way: p = 2 / 2**7
    assert sft_gsm["deltas"][1]["delta"] == pytest.approx(-35.0)
    assert sft_gsm["deltas"][1]["p_value"] == pytest.approx(2 / 128)
    assert [r["label"] for r in report["runs"]] == ["cpu", "gpu"]
    rc = cli.main(["report", str(tmp_path / "cpu"), str(tmp_path / "gpu"), "-o", str(tmp_path / "out"), "--no-plot"])
    assert rc == 0 and "Runs side by side" in (tmp_path / "out" / "report.html").read_text()
    assert "within noise" in capsys.readouterr().out
    # eval folders in stage order still work (one run), and mixing both kinds is a clear error
    rc = cli.main(["report", str(tmp_path / "cpu" / "eval" / "base"), str(tmp_path / "cpu" / "eval" / "sft"),
                   "-o", str(tmp_path / "out2"), "--no-plot"])
    assert rc == 0
    data = json.loads((tmp_path / "out2" / "report.json").read_text())
    assert data["runs"][0]["stages"] == ["base", "sft"]
    assert cli.main(["report", str(tmp_path / "cpu"), str(tmp_path / "cpu" / "eval" / "base")]) == 2
    assert "mixed inputs" in capsys.readouterr().err
    assert cli.main(["report", str(tmp_path / "cpu"), "--labels", "a,b"]) == 2


def test_bad_generations_line_names_file_and_line(tmp_path):
    root = make_run(tmp_path / "a")
    path = root / "eval" / "sft" / "generations" / "gsm8k.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = "{not json"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"gsm8k.jsonl:3: not valid JSON"):
        build([load_pipeline_run(root)], plot=False)


def test_run_facts_cpu_and_stage_times(tmp_path):
    from tulu.report.facts import cpu_info, facts_rows, read_run_facts

    info = cpu_info("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu sse avx2 avx512f avx512_bf16\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu\n")
    assert info["model"] == "AMD EPYC 9R14" and info["flags"] == ["avx2", "avx512f", "avx512_bf16"]
    root = make_run(tmp_path / "a")
    facts = read_run_facts(root)
    assert facts["stage_seconds"] == {"data": 1.0, "decontam": 2.0, "sft": 30.0, "eval": 120.0}
    assert facts["seeds"] == {"data": 7, "sft": 11}
    (root / "run_facts.json").unlink()  # an old run folder: facts collected now, and the table says so
    rows = dict(facts_rows(read_run_facts(root)))
    assert "at report time" in rows["facts collected"] and rows["git commit"]
