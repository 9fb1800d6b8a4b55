"""Bradley-Terry reward model: packed last-token scores equal HF's own forward; a CLI run on the tiny model."""

from __future__ import annotations

import json

import pytest
import torch

from tulu.data import synthetic
from tulu.data.preferences import encode_pairs
from tulu.models import load_model, save_model, tiny_model
from tulu.data.packing import collate_sequences
from tulu.train.rm import RMTask, last_token_scores


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer):
    model, tok = tiny_model(0, tokenizer=tokenizer)
    return save_model(model, tok, tmp_path_factory.mktemp("rm") / "tiny")


def test_packed_last_token_scores_match_hf_forward(tiny_dir, tokenizer):
    model = load_model(tiny_dir, num_labels=1, device="cpu")
    model.config.pad_token_id = tokenizer.pad_token_id
    recs = synthetic.records("constraints", 3, kind="preference", seed=4)
    pairs, _ = encode_pairs(recs, tokenizer)
    seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    for max_row in (None, 200):
        batch = collate_sequences(seqs, tokenizer.pad_token_id, max_row_tokens=max_row)
        with torch.no_grad():
            ours = last_token_scores(model, batch)
            # HF scores the last non-pad token; our sequences end in "\n" after <|im_end|>, never in a pad.
            theirs = torch.stack([model(input_ids=torch.tensor([s.input_ids])).logits[0, 0] for s in seqs])
        assert seqs[0].input_ids[-1] != tokenizer.pad_token_id
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_rm_task_loss_is_bradley_terry(tiny_dir, tokenizer):
    model = load_model(tiny_dir, num_labels=1, device="cpu")
    pairs, _ = encode_pairs(synthetic.records("math", 4, kind="preference", seed=4), tokenizer)
    task = RMTask(tokenizer.pad_token_id)
    batch = task.collate(pairs)
    loss_sum, sums = task.loss(model, batch)
    s = last_token_scores(model, batch).detach()
    expected = torch.nn.functional.softplus(-(s[:4] - s[4:])).sum()
    assert loss_sum.item() == pytest.approx(expected.item(), rel=1e-5)
    assert sums["accuracy"].item() == float((s[:4] > s[4:]).sum())


def test_cli_rm_run(tmp_path, tiny_dir, caplog):
    import logging

    from transformers import AutoModelForSequenceClassification

    from tulu.cli import main

    caplog.set_level(logging.INFO, logger="tulu")
    recipe = tmp_path / "rm.yaml"
    recipe.write_text(f"""
model: {{path: {tiny_dir}}}
output_dir: {tmp_path / 'run'}
max_row_tokens: 600
data: {{mixture: {{"synthetic:constraints": 30}}, eval_fraction: 0.2, max_length: 256}}
train: {{learning_rate: 3.0e-3, effective_batch_size: 8, per_device_batch_size: 4, num_epochs: 2, seed: 1}}
""")
    assert main(["rm", str(recipe)]) == 0
    assert "held-out pairwise accuracy" in caplog.text
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stage"] == "rm" and summary["details"]["eval_pairs"] == 6 and 0.0 <= summary["heldout_after"]["accuracy"] <= 1.0
    losses = [json.loads(x)["loss"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(x)]
    assert losses[-1] < losses[0]
    rm = AutoModelForSequenceClassification.from_pretrained(tmp_path / "run" / "model")
    assert rm.config.num_labels == 1 and rm.score.out_features == 1
    # the score head is freshly initialised: seeded by train.seed, so a second run is the same run
    torch.manual_seed(12345)  # whatever the global RNG holds before the run
    assert main(["rm", str(recipe), f"output_dir={tmp_path / 'again'}"]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert again["heldout_before"] == summary["heldout_before"]
    assert again["heldout_after"] == summary["heldout_after"]
