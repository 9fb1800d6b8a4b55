"""The whole recipe end to end through the real CLI, on the tiny model: every stage writes its outputs,
a re-run resumes (skips finished stages), and the report compares the stages."""

from __future__ import annotations

import json

import pytest

from tulu.cli import main


@pytest.fixture()
def tiny_dir(tiny, tmp_path):
    from tulu.models import save_model

    model, tok = tiny
    return save_model(model, tok, tmp_path / "tiny")


def test_pipeline_end_to_end_on_tiny_model(tiny_dir, tmp_path, capsys):
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
output_dir: {out}
base_model: {tiny_dir}
sft_mixture: {{"synthetic:math": 12, "synthetic:constraints": 12}}
dpo_mixture: {{"synthetic:math": 10, "synthetic:constraints": 10}}
decontam: {{benchmarks: [gsm8k, ifeval], workers: 1}}
sft:
  train: {{max_steps: 2, effective_batch_size: 4, per_device_batch_size: 2, learning_rate: 1.0e-3, seed: 1}}
dpo:
  train: {{max_steps: 1, effective_batch_size: 4, per_device_batch_size: 2, learning_rate: 1.0e-4, seed: 1}}
rlvr:
  data: {{prompts: {{"rlvr:arith": 4, "rlvr:constraints": 4}}}}
  rollout: {{prompts_per_batch: 2, samples_per_prompt: 2, max_new_tokens: 8, backend: fast}}
  rl: {{algorithm: grpo, beta: 0.0}}
  train: {{max_steps: 2, effective_batch_size: 4, per_device_batch_size: 2, learning_rate: 1.0e-4, seed: 1}}
eval: {{tasks: [gsm8k], limit: 2, max_new_tokens: 8, batch_size: 2}}
""")
    assert main(["pipeline", str(recipe)]) == 0
    for stage in ("data", "decontam", "sft", "dpo", "rlvr", "eval", "report"):
        assert (out / stage / "DONE.json").is_file(), stage
    dec = json.loads((out / "decontam" / "DONE.json").read_text())
    assert set(dec["files"]) == {"sft", "prefs", "rlvr"}  # the RLVR prompts are decontaminated too
    rl = json.loads((out / "rlvr" / "DONE.json").read_text())
    assert rl["start_model"] == str(out / "dpo" / "model") and rl["steps"] == 2
    assert (out / "sft" / "model" / "model.safetensors").is_file()
    assert (out / "dpo" / "model" / "model.safetensors").is_file()
    results = {w: json.loads((out / "eval" / w / "results.json").read_text()) for w in ("base", "sft", "dpo", "rlvr")}
    assert all("gsm8k" in r["tasks"] for r in results.values())
    html = (out / "report" / "report.html").read_text()
    assert "sft" in html and "dpo" in html
    # the run report: every stage's curves, paired deltas on the same items, contamination, samples, facts
    rep = json.loads((out / "report" / "report.json").read_text())
    assert set(rep["curves"]) == {"sft", "dpo", "rlvr"} and html.count("data:image/png;base64,") == 4
    sec = rep["runs"][0]
    assert sec["stages"] == ["base", "sft", "dpo", "rlvr"]
    gsm = next(r for s in sec["eval"]["suites"] for r in s["rows"] if r["task"] == "gsm8k")
    assert all(d["n"] == 2 and d["test"] == "mcnemar" for d in gsm["deltas"][1:])
    assert gsm["contamination"].startswith("0% of gsm8k") and sec["contamination"]["mode"] == "remove"
    assert sec["samples"] and len(sec["samples"][0]["answers"]) == 4
    assert dict(sec["facts"])["git commit"] and "time per stage" in dict(sec["facts"])
    printed = capsys.readouterr().out
    assert "=== [7/7] report" in printed and "report:" in printed
    # A second run resumes: every stage but the report is skipped.
    assert main(["pipeline", str(recipe)]) == 0
    assert capsys.readouterr().out.count("already done") == 6


def test_eval_task_limits_are_checked_before_any_stage_runs():
    from tulu.pipeline import EvalStageConfig, PipelineConfig

    cfg = PipelineConfig(eval=EvalStageConfig(tasks=["gsm8k", "ifeval"], task_limits={"gsm8k": 300}))
    assert cfg.eval.task_limits == {"gsm8k": 300}
    with pytest.raises(ValueError, match=r"eval.task_limits: mmlu not in eval.tasks \(gsm8k, ifeval\)"):
        PipelineConfig(eval=EvalStageConfig(tasks=["gsm8k", "ifeval"], task_limits={"mmlu": 3}))
    with pytest.raises(ValueError, match="a count must be >= 0"):
        PipelineConfig(eval=EvalStageConfig(tasks=["gsm8k"], task_limits={"gsm8k": -1}))
    assert PipelineConfig(eval=EvalStageConfig(dtype="float32")).eval.dtype == "float32"
    with pytest.raises(ValueError, match="eval.dtype: 'int8' is not one of auto, float32"):
        PipelineConfig(eval=EvalStageConfig(dtype="int8"))
