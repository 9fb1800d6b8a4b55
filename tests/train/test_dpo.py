"""DPO on the step engine: the step, the cached reference (and LoRA's adapters-off reference), a CLI run."""

from __future__ import annotations

import json

import pytest
import torch

from tulu.data import synthetic
from tulu.data.preferences import encode_pairs, pairs_from_samples, pick_pair
from tulu.models import save_model, tiny_model
from tulu.train.dpo import DPOLossConfig, DPOTask, dpo_forward, heldout_metrics
from tulu.train.logprobs import reference_response_logps
from tulu.train.reference import cached_reference, collate_pairs, compute_reference, model_fingerprint


@pytest.fixture(scope="module")
def pairs(tokenizer):
    recs = synthetic.records("constraints", 4, kind="preference", seed=2) + \
        synthetic.records("math", 4, kind="preference", seed=2)
    return encode_pairs(recs, tokenizer)[0]


def test_reference_equals_naive_and_is_cached(tiny, pairs, tmp_path):
    model, tok = tiny
    ref, path, hit = cached_reference(model, pairs, tok.pad_token_id, tmp_path, batch_pairs=3)
    assert not hit and path.is_file()
    naive = reference_response_logps(model, [p.chosen for p in pairs] + [p.rejected for p in pairs]).sums
    n = len(pairs)
    torch.testing.assert_close(ref[:, 0].float(), naive[:n].detach(), atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(ref[:, 1].float(), naive[n:].detach(), atol=2e-4, rtol=1e-5)
    again, path2, hit2 = cached_reference(model, pairs, tok.pad_token_id, tmp_path)
    assert hit2 and path2 == path and torch.equal(again, ref)
    # Other weights -> other key -> recomputed.
    fp = model_fingerprint(model)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.5)
    assert model_fingerprint(model) != fp
    _, path3, hit3 = cached_reference(model, pairs, tok.pad_token_id, tmp_path)
    assert not hit3 and path3 != path


def test_lora_reference_is_base_model(tiny, pairs):
    peft = pytest.importorskip("peft")
    model, tok = tiny
    base = compute_reference(model, pairs[:3], tok.pad_token_id)
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():  # make the adapter do something
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    with_adapter = collate_pairs(pairs[:3], tok.pad_token_id)
    from tulu.train.reference import policy_logps

    with torch.no_grad():
        moved = policy_logps(lora, with_adapter).chosen
    assert not torch.allclose(moved.double(), base[:, 0], atol=1e-3)  # adapter changes the policy...
    torch.testing.assert_close(compute_reference(lora, pairs[:3], tok.pad_token_id), base)  # ...not the reference


def test_training_step_and_heldout_evaluation_run_the_same_dpo_forward(tiny, pairs):
    """The loss the engine back-propagates (DPOTask.loss), the held-out metrics and the function under test are
    one computation: dpo_forward."""
    model, tok = tiny
    ref = compute_reference(model, pairs, tok.pad_token_id, sort_by_length=False)
    with torch.no_grad():
        model.lm_head.weight.add_(0.01 * torch.randn_like(model.lm_head.weight))
    d = DPOLossConfig(loss_type="dpo_norm", beta=5.0)
    batch = collate_pairs(pairs, tok.pad_token_id, ref)
    task = DPOTask(tok.pad_token_id, ref, d)
    loss_sum, sums = task.loss(model, task.collate(pairs))
    out, _ = dpo_forward(model, batch, d)
    assert loss_sum.item() == pytest.approx(out.losses.sum().item(), rel=1e-6)
    summary = task.summarize({k: v.item() for k, v in sums.items()}, float(len(pairs)))
    held = heldout_metrics(model, pairs, ref, tok.pad_token_id, d)
    assert summary["rewards/accuracies"] == pytest.approx(held["rewards/accuracies"])
    assert summary["rewards/margins"] == pytest.approx(held["rewards/margins"], abs=1e-5)
    assert held["loss"] == pytest.approx(out.losses.mean().item(), rel=1e-5)
    assert held["pairs"] == len(pairs)


def test_pick_pair_and_pairs_from_samples():
    import random

    assert pick_pair(["a", "b"], [1.0, 1.0], random.Random(0)) is None  # all tie
    assert pick_pair(["a", "b", "c"], [0.0, 1.0, 0.0], random.Random(0))[0] == "b"
    prompts = [{"messages": [{"role": "user", "content": "2+2?"}], "ground_truth": "#### 4", "verifier": "gsm8k"}]
    recs = pairs_from_samples(prompts, [["The answer is 5.", "The answer is 4."]],
                              lambda v, t, gt: float(t.endswith("4.")))
    assert recs[0]["chosen"][0]["content"] == "The answer is 4."
    assert recs[0]["rejected"][0]["content"] == "The answer is 5."


def test_cli_dpo_run_on_tiny_model(tmp_path, tokenizer, caplog):
    import logging

    from tulu.cli import main

    caplog.set_level(logging.INFO, logger="tulu")
    model, tok = tiny_model(0, tokenizer=tokenizer)
    save_model(model, tok, tmp_path / "tiny")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""
model: {{path: {tmp_path / 'tiny'}}}
output_dir: {tmp_path / 'run'}
data: {{mixture: {{"synthetic:constraints": 20, "synthetic:math": 10}}, eval_fraction: 0.2, max_length: 256}}
dpo: {{loss_type: dpo, beta: 0.5, max_row_tokens: 512}}
train: {{learning_rate: 3.0e-3, effective_batch_size: 8, per_device_batch_size: 4, num_epochs: 2,
        gradient_checkpointing: false, warmup_ratio: 0.0, seed: 1}}
""")
    assert main(["dpo", str(recipe)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    details = summary["details"]
    assert summary["stage"] == "dpo" and summary["steps"] == 6
    assert details["train_pairs"] == 24 and details["eval_pairs"] == 6
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 6 and losses[-1] < losses[0]  # it learns the training pairs
    # Before training policy == reference: every implicit reward is 0. After: the held-out margin is positive.
    assert summary["heldout_before"]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert summary["heldout_after"]["rewards/margins"] > 0
    # two sources in the mixture: held-out metrics per source as well, and the counts add up
    by_source = details["heldout_by_source"]
    assert set(by_source) == {"synthetic:constraints", "synthetic:math"}
    assert sum(v["pairs"] for v in by_source.values()) == details["eval_pairs"]
    # from the same passes as the total: before training every reward is exactly 0, so no source has a win
    assert all(v["before"]["rewards/accuracies"] == 0.0 for v in by_source.values())
    assert "implicit-reward accuracy" in caplog.text and "  synthetic:math: " in caplog.text
    # A second run reuses the reference cache (same data, same starting weights).
    assert len(list((tmp_path / "run" / "cache").glob("dpo-ref-*.pt"))) == 2
