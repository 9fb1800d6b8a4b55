"""Parity with TRL 1.16: on the same tiny models and the same tokenized batch, our loss values equal TRL's.

TRL builds and tokenizes the batch (its own collator); we turn each row back into an unpadded sequence with
labels on TRL's completion tokens, run our packed one-pass log-probs and our loss functions, and compare
with ``DPOTrainer._compute_loss`` (dpo = ``sigmoid``, dpo_norm = ``sigmoid_norm``, ipo, wpo =
``sigmoid`` + ``use_weighting``) and ``CPOTrainer.get_batch_loss_metrics`` (simpo).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from tulu.data import synthetic
from tulu.data.templates import IGNORE_INDEX, Encoded
from tulu.models import tiny_model
from tulu.train.logprobs import collate_sequences, response_logps
from tulu.train.losses import SeqLogps, preference_loss

pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

TOL = dict(atol=1e-5, rtol=1e-5)


def _records(n=2):
    recs = synthetic.records("constraints", n, kind="preference", seed=3)
    return datasets.Dataset.from_list(
        [{"prompt": r["messages"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in recs])


def _rows_to_seqs(ids: torch.Tensor, mask: torch.Tensor, completion: torch.Tensor) -> list[Encoded]:
    out = []
    for i in range(ids.shape[0]):
        keep = mask[i].bool()
        row, comp = ids[i][keep].tolist(), completion[i][keep].tolist()
        out.append(Encoded(row, [t if c else IGNORE_INDEX for t, c in zip(row, comp)]))
    return out


def _ours(model, seqs, pad_id, want_sq=False):
    batch = collate_sequences(seqs, pad_id, layout="packed")
    out = response_logps(model, batch, chunk_size=64, want_sq=want_sq)
    p = len(seqs) // 2
    sq = out.log_sum_sq
    return SeqLogps(out.sums[:p], out.sums[p:], out.counts[:p], out.counts[p:],
                    None if sq is None else sq[:p], None if sq is None else sq[p:])


@pytest.fixture(scope="module")
def models(tokenizer):
    policy, _ = tiny_model(0, tokenizer=tokenizer)
    ref, _ = tiny_model(1, tokenizer=tokenizer)
    return policy, ref, tokenizer


@pytest.mark.parametrize("ours_name,trl_name,beta", [
    ("dpo", "sigmoid", 0.1), ("dpo_norm", "sigmoid_norm", 5.0), ("ipo", "ipo", 0.1), ("wpo", "sigmoid", 0.5),
])
def test_dpo_family_matches_trl(models, tmp_path, ours_name, trl_name, beta):
    from trl import DPOConfig, DPOTrainer

    policy, ref, tok = models
    policy.train()  # dropout is 0 in the tiny Llama; train mode as in a real step
    args = DPOConfig(output_dir=str(tmp_path), loss_type=[trl_name], beta=beta, report_to=[],
                     per_device_train_batch_size=2, use_cpu=True, bf16=False, max_length=None,
                     use_weighting=ours_name == "wpo", dataloader_num_workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=_records(), processing_class=tok)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        theirs = trainer._compute_loss(trainer.model, batch, False)
    seqs = _rows_to_seqs(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    with torch.no_grad():
        r = _ours(ref, seqs, tok.pad_token_id)
    pol = _ours(policy, seqs, tok.pad_token_id, want_sq=ours_name == "wpo")
    mine = preference_loss(ours_name, pol, r.chosen, r.rejected, beta=beta, wpo_aligned=True)
    torch.testing.assert_close(mine.loss.detach(), theirs.detach().float(), **TOL)
    # The loss is not trivially log 2: the two models disagree.
    assert abs(mine.loss.item() - 0.6931) > 1e-4 or ours_name == "ipo"


def test_simpo_matches_trl_cpo(models, tmp_path):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    policy, _, tok = models
    beta, gamma = 2.0, 0.5
    args = CPOConfig(output_dir=str(tmp_path), loss_type="simpo", cpo_alpha=0.0, simpo_gamma=gamma, beta=beta,
                     report_to=[], per_device_train_batch_size=2, use_cpu=True, bf16=False,
                     remove_unused_columns=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = CPOTrainer(model=policy, args=args, train_dataset=_records(), processing_class=tok)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
        theirs, metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    seqs = []
    for side in ("chosen", "rejected"):
        ids, mask, labels = batch[f"{side}_input_ids"], batch[f"{side}_attention_mask"], batch[f"{side}_labels"]
        seqs += _rows_to_seqs(ids, mask, labels != IGNORE_INDEX)
    mine = preference_loss("simpo", _ours(policy, seqs, tok.pad_token_id), None, None, beta=beta, gamma=gamma)
    torch.testing.assert_close(mine.loss.detach(), theirs.detach().float(), **TOL)
    assert mine.chosen_rewards.mean().item() == pytest.approx(metrics["rewards/chosen"], abs=1e-4)
