"""`tulu rlvr` on the tiny model: the learner's log-probs, every algorithm through the real CLI, bad data
stopped before the first step, no reference model at beta 0, and SIGKILL + resume == an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from sft_helpers import ENV, tiny_dir  # noqa: F401  (fixture)

from tulu.cli import main
from tulu.train.rl_batch import Rollout, collate_rollouts, token_logprobs


def _recipe(path, tiny, out, algorithm="grpo", **extra):
    rl = {"algorithm": algorithm, "beta": 0.05}
    rl.update(extra.pop("rl", {}))
    if algorithm == "ppo":
        rl.setdefault("value_model", "policy")
    rollout = {"prompts_per_batch": 2, "samples_per_prompt": 1 if algorithm == "ppo" else 4, "max_new_tokens": 8,
               "backend": "fast"}
    rollout.update(extra.pop("rollout", {}))
    train = {"learning_rate": 1.0e-3, "effective_batch_size": 4 if algorithm != "ppo" else 2,
             "per_device_batch_size": 2, "num_epochs": 1, "seed": 1, "warmup_ratio": 0.0}
    train.update(extra.pop("train", {}))
    recipe = {"output_dir": str(out), "model": {"path": str(tiny)},
              "data": extra.pop("data", {"prompts": {"rlvr:constraints": 4, "rlvr:arith": 2}}),
              "rollout": rollout, "reward": {"nonstop_penalty": 0.0}, "rl": rl, "train": train}
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def _prompt_file(path):
    """Constraint prompts that the tiny random model meets about half of the time, so groups have a spread of
    rewards and the update has a signal (the generated constraint prompts are too hard for random weights)."""
    def freq(letter, relation, n):
        return ("keywords:letter_frequency", {"letter": letter, "let_relation": relation, "let_frequency": n})

    easy = [freq("e", "at least", 4), freq("a", "less than", 3), freq("o", "at least", 3)]
    rows = []
    for i in range(6):
        iid, kw = easy[i % 3]
        text = f"Say something about topic number {i}."
        rows.append({"messages": [{"role": "user", "content": text}], "dataset": "ifeval",
                     "ground_truth": {"instruction_id_list": [iid], "kwargs": [kw], "prompt": text}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_learner_logprobs_equal_a_plain_forward_at_the_temperature(tiny):
    model, tok = tiny
    rollouts = [Rollout(0, 0, [1, 5, 9, 11], [20, 21, 22], torch.zeros(3), True, "", "gsm8k"),
                Rollout(1, 0, [1, 7], [30, 31, 32, 33, 34], torch.zeros(5), True, "", "gsm8k")]
    batch = collate_rollouts(rollouts, tok.pad_token_id)
    with torch.no_grad():
        ours = token_logprobs(model, batch, temperature=0.7)
        for i, r in enumerate(rollouts):
            ids = torch.tensor([r.prompt_ids + r.response_ids])
            logits = model(input_ids=ids).logits[0].float() / 0.7
            lp = torch.log_softmax(logits, -1)[len(r.prompt_ids) - 1:-1].gather(1, torch.tensor(r.response_ids)[:, None])
            torch.testing.assert_close(ours[i, :len(r.response_ids)], lp[:, 0], atol=1e-5, rtol=1e-5)
            assert (ours[i, len(r.response_ids):] == 0).all()


@pytest.mark.parametrize("algorithm", ["grpo", "dr_grpo", "dapo", "ppo"])
def test_cli_rlvr_runs_each_algorithm(tiny_dir, tmp_path, algorithm):
    out = tmp_path / "run"
    easy = _prompt_file(tmp_path / "easy.jsonl")
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, out, algorithm,
                     data={"prompts": {str(easy): 4, "rlvr:arith": 2}, "heldout": {"rlvr:constraints": 2}})
    assert main(["rlvr", str(recipe)]) == 0
    rows = _lines(out / "metrics.jsonl")
    batches = 3  # 6 prompts / 2 per batch
    per_batch = 4 if algorithm == "ppo" else 2  # ppo: 4 epochs x 1 minibatch of 2; grpo family: 1 x (8 / 4)
    assert [r["step"] for r in rows] == list(range(1, batches * per_batch + 1))
    first = rows[0]
    # step 0: the learner's old log-probs are its own, so the ratio is 1; the generator agrees with the learner
    assert first["approx_kl"] < 1e-8 and first["clip_frac"] == 0.0
    assert first["mismatch/mean_abs"] < 1e-4
    for key in ("reward", "solve_rate", "stop_rate", "response_length", "zero_std_groups", "generate_s", "kl"):
        assert key in first, key
    # the batch's reward statistics cover every sampled rollout, also the groups dynamic sampling drops
    for name in ("ifeval", "gsm8k"):
        assert any(f"reward/{name}" in r and f"solve_rate/{name}" in r for r in rows), name
    assert all(0 <= r["trained_rollouts"] <= 4 * 2 for r in rows)
    if algorithm != "dapo":
        assert all(r["trained_rollouts"] == 4 * 2 for r in rows if algorithm != "ppo")
    assert ("value_loss" in first) == (algorithm == "ppo")
    rollouts = _lines(out / "rollouts.jsonl")
    assert len(rollouts) == sum(1 for _ in rollouts)
    assert {"prompt", "response", "reward", "reason", "verifier", "finished"} <= set(rollouts[0])
    if algorithm != "dapo":  # dynamic sampling may drop a batch's groups
        assert len(rollouts) == batches * 2 * (1 if algorithm == "ppo" else 4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stage"] == "rlvr" and summary["details"]["heldout"]["prompts"] == 2
    assert len(summary["details"]["heldout"]["after"]) == 2
    assert (out / "model" / "model.safetensors").is_file()
    changed = load_file(out / "model" / "model.safetensors")
    start = load_file(tiny_dir / "model.safetensors")
    assert any(r["reward_std"] > 0 for r in rows)  # a learning signal...
    assert any(not torch.equal(changed[k], start[k]) for k in start)  # ...and the weights moved


def test_beta_zero_never_loads_a_reference_model(tiny_dir, tmp_path, monkeypatch):
    import tulu.models

    loaded = []
    real = tulu.models.load_model

    def counting(*a, **k):
        loaded.append(a[0] if a else k.get("name_or_path"))
        return real(*a, **k)

    monkeypatch.setattr(tulu.models, "load_model", counting)
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", "grpo", rl={"beta": 0.0},
                     data={"prompts": {"rlvr:arith": 2}})
    assert main(["rlvr", str(recipe)]) == 0
    assert len(loaded) == 1  # the policy only
    assert "kl" not in _lines(tmp_path / "run" / "metrics.jsonl")[0]


def test_bad_records_stop_the_run_before_the_first_step(tiny_dir, tmp_path, capsys):
    data = tmp_path / "prompts.jsonl"
    good = {"messages": [{"role": "user", "content": "What is 2 + 2?"}], "ground_truth": "4", "dataset": "gsm8k"}
    bad = dict(good, dataset="no_such_verifier")
    data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", data={"prompts": {str(data): 1.0}})
    assert main(["rlvr", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert f"{data}:2" in err and "dataset" in err
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_config_errors_name_the_field(tmp_path, tiny_dir, capsys):
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", "grpo", rollout={"samples_per_prompt": 1})
    assert main(["rlvr", str(recipe)]) == 2
    assert "rollout.samples_per_prompt" in capsys.readouterr().err
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", "ppo", rl={"value_model": ""})
    assert main(["rlvr", str(recipe)]) == 2
    assert "rl.value_model" in capsys.readouterr().err
    # bf16-weight rollouts' log-probs cannot stand in for the learner's
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", "grpo", rollout={"dtype": "bf16"},
                     rl={"old_logprobs": "generator"})
    assert main(["rlvr", str(recipe)]) == 2
    assert "rollout.dtype" in capsys.readouterr().err
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", "grpo", rollout={"dtype": "float16"})
    assert main(["rlvr", str(recipe)]) == 2
    assert "rollout.dtype" in capsys.readouterr().err


def _run(recipe):
    return subprocess.Popen([sys.executable, "-m", "tulu.cli", "rlvr", str(recipe)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tiny_dir, tmp_path):
    """Kill at a random point after the first checkpoint; the resumed run restores the weights, the optimizer,
    the prompt cursor and every RNG, regenerates the same rollouts, and ends with the same weights."""
    kw = dict(train={"checkpoint_every": 2, "keep_checkpoints": 5},  # 8 batches: 6 left after checkpoint-4
              data={"prompts": {"rlvr:constraints": 8, "rlvr:arith": 8}})
    full = tmp_path / "full"
    p = _run(_recipe(tmp_path / "full.yaml", tiny_dir, full, **kw))
    killed = tmp_path / "killed"
    recipe = _recipe(tmp_path / "killed.yaml", tiny_dir, killed, **kw)
    q = _run(recipe)
    deadline = time.time() + 600
    while not (killed / "checkpoints" / "checkpoint-4").is_dir():
        assert q.poll() is None, q.stderr.read()
        assert time.time() < deadline
        time.sleep(0.02)
    time.sleep(0.2 * float(torch.rand(()).item()))  # somewhere inside the next batches
    os.kill(q.pid, signal.SIGKILL)
    q.wait()
    assert not (killed / "model").exists(), "the run finished before it was killed; the test proves nothing"
    assert p.wait() == 0, p.stderr.read()
    r = _run(recipe)
    assert r.wait() == 0, r.stderr.read()
    assert json.loads((killed / "summary.json").read_text())["resumed_from"] >= 4
    a, b = load_file(full / "model" / "model.safetensors"), load_file(killed / "model" / "model.safetensors")
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["step"] for r in _lines(killed / "metrics.jsonl")] == list(range(1, 17))
    full_rollouts = [(r["batch"], r["response"]) for r in _lines(full / "rollouts.jsonl")]
    assert [(r["batch"], r["response"]) for r in _lines(killed / "rollouts.jsonl")] == full_rollouts


def test_recipes_carry_the_published_numbers():
    from pathlib import Path

    from tulu.config import load_config
    from tulu.train.rlvr import RLVRConfig

    root = Path(__file__).resolve().parents[2] / "recipes"
    ppo = load_config(RLVRConfig, root / "tulu3_8b_rlvr.yaml")
    assert (ppo.rl.algorithm, ppo.rl.beta, ppo.train.learning_rate, ppo.rollout.temperature) == ("ppo", 0.05, 3e-7, 1.0)
    assert (ppo.rollout.max_new_tokens, ppo.data.max_length, ppo.train.effective_batch_size) == (2048, 2048, 224)
    assert (ppo.reward.correct_score, ppo.reward.nonstop_penalty) == (10.0, -10.0)
    assert ppo.rl.resolved()["epochs_per_batch"] == 4 and (ppo.rl.clip_low, ppo.rl.value_clip, ppo.rl.vf_coef) == (
        0.2, 0.2, 0.1)
    assert (ppo.rl.gamma, ppo.rl.lam) == (1.0, 0.95) and ppo.rl.value_model.endswith("RM")
    grpo = load_config(RLVRConfig, root / "tulu3_8b_grpo.yaml")
    assert (grpo.rl.beta, grpo.rl.resolved()["kl_estimator"], grpo.train.learning_rate) == (0.01, "k3", 5e-7)
    assert (grpo.rollout.prompts_per_batch, grpo.rollout.samples_per_prompt, grpo.reward.nonstop_penalty) == (
        64, 16, 0.0)
    assert grpo.rollout.prompts_per_batch * grpo.rollout.samples_per_prompt // grpo.train.effective_batch_size == 2
    cpu = load_config(RLVRConfig, root / "embedded_cpu_rlvr.yaml")
    assert cpu.model.path == "embedded" and cpu.rollout.backend == "fast"


def test_one_update_per_batch_uses_the_forward_pass_as_the_old_policy(tiny_dir, tmp_path):
    """With one optimizer step per batch the ratio is exactly 1 by construction: no separate no-grad pass; the
    generator-vs-learner gap is still measured, on the training pass itself."""
    out = tmp_path / "run"
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, out, "dapo", rl={"beta": 0.0, "dynamic_sampling": False},
                     train={"effective_batch_size": 8}, data={"prompts": {str(_prompt_file(tmp_path / "p.jsonl")): 4}})
    assert main(["rlvr", str(recipe)]) == 0
    rows = _lines(out / "metrics.jsonl")
    assert len(rows) == 2  # 4 prompts / 2 per batch, one step each
    for r in rows:
        assert r["approx_kl"] == 0.0 and r["clip_frac"] == 0.0 and r["mismatch/mean_abs"] < 1e-4
        assert "prepare_s" in r


@pytest.mark.slow
def test_generation_on_local_ray_actors_follows_the_learner(tiny_dir, tmp_path):
    """rollout.backend=ray: two generation actors on a local Ray instance (CPU processes). After every batch the
    learner's weights are broadcast to them; if an actor kept old weights, the generator-vs-learner log-prob gap
    of the next batch would be the size of a whole update, not float noise."""
    pytest.importorskip("ray")
    out = tmp_path / "run"
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, out, "grpo", rollout={"backend": "ray"},
                     data={"prompts": {str(_prompt_file(tmp_path / "p.jsonl")): 6}})
    assert main(["rlvr", str(recipe)]) == 0
    batches = _lines(out / "batches.jsonl")
    assert len(batches) == 3
    assert all(b["mismatch/mean_abs"] < 1e-4 for b in batches), [b["mismatch/mean_abs"] for b in batches]
    rows = _lines(out / "metrics.jsonl")
    assert any(r["grad_norm"] > 0 for r in rows)  # the weights did move between batches


@pytest.mark.slow
def test_ray_actors_generate_in_the_rollout_dtype(tiny_dir, tmp_path):
    """rollout.dtype reaches the Ray generation actors: with bf16 weights there the generator's log-probs differ
    from the fp32 learner's by more than float noise (fp32 actors: < 1e-4, the test above), and the run still
    trains on the learner's own old log-probs (rl.old_logprobs=learner, the default)."""
    pytest.importorskip("ray")
    out = tmp_path / "run"
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, out, "grpo", rollout={"backend": "ray", "dtype": "bfloat16"},
                     data={"prompts": {str(_prompt_file(tmp_path / "p.jsonl")): 6}})
    assert main(["rlvr", str(recipe)]) == 0
    batches = _lines(out / "batches.jsonl")
    assert len(batches) == 3 and all(b["mismatch/mean_abs"] > 1e-4 for b in batches), \
        [b["mismatch/mean_abs"] for b in batches]


@pytest.mark.slow
def test_learner_in_a_ray_actor_trains_the_same_weights(tiny_dir, tmp_path):
    """rl.learner=ray: the models and the step engine live in a Ray actor (a second process on a local Ray
    instance) while this process generates and scores. Same seed, same rollouts, same updates: the final
    weights equal the in-process learner's, and the logged batches agree."""
    pytest.importorskip("ray")
    prompts = _prompt_file(tmp_path / "p.jsonl")
    weights, logged = {}, {}
    for where in ("local", "ray"):
        out = tmp_path / where
        recipe = _recipe(tmp_path / f"{where}.yaml", tiny_dir, out, "grpo", rl={"learner": where},
                         data={"prompts": {str(prompts): 6}})
        assert main(["rlvr", str(recipe)]) == 0
        weights[where] = load_file(out / "model" / "model.safetensors")
        logged[where] = [(b["reward"], b["trained_rollouts"]) for b in _lines(out / "batches.jsonl")]
        summary = json.loads((out / "summary.json").read_text())
        assert summary["details"]["learner"] == where and summary["steps"] == 6  # 3 batches x 2 minibatches
    assert logged["ray"] == logged["local"] and len(logged["local"]) == 3
    start = load_file(tiny_dir / "model.safetensors")
    assert any(not torch.equal(weights["local"][k], start[k]) for k in start)
    for k in weights["local"]:
        torch.testing.assert_close(weights["ray"][k], weights["local"][k], atol=1e-6, rtol=0)


def test_bf16_weight_rollouts_are_measured_against_the_learner(tiny_dir, tmp_path, caplog):
    """rollout.dtype=bfloat16: the fast generator stores bf16 weights, the learner recomputes the old log-probs in
    fp32, and the gap between the two is logged (small, not zero)."""
    import logging

    caplog.set_level(logging.INFO, logger="tulu.rollout.fast")
    recipe = _recipe(tmp_path / "r.yaml", tiny_dir, tmp_path / "run", "grpo", rl={"beta": 0.0},
                     rollout={"dtype": "bfloat16"}, data={"prompts": {"rlvr:arith": 2}})
    assert main(["rlvr", str(recipe)]) == 0
    assert "fast backend weights: bfloat16 [explicit]" in caplog.text
    first = _lines(tmp_path / "run" / "metrics.jsonl")[0]
    assert 0 < first["mismatch/mean_abs"] < 1e-2
