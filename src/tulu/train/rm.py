"""`tulu rm RECIPE.yaml`: a Bradley-Terry reward model on preference pairs, on the shared training loop.

The model is ``AutoModelForSequenceClassification`` with one output (a fresh linear ``score`` head on the
starting LM). A pair's loss is ``-log σ(r(x, y_c) - r(x, y_r))`` (plus optional centering). The score of
a sequence is the head applied to the hidden state of its **last token**; chosen and rejected sequences of
a micro-batch run packed in one forward, and we pick each sequence's last position from the layout rather
than searching for pad tokens (pad == EOS for SmolLM2, so the usual "last non-pad token" rule is fragile).

Numbers from the Tulu 3 report (reward model for the PPO value init): lr 3e-6, 1 epoch, max length 2048.
The result is a transformers folder; it initialises the PPO value model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from tulu.config import option, to_dict
from tulu.data.formats import DataError
from tulu.data.mixing import build_mixture, split_records
from tulu.data.packing import SeqBatch, collate_sequences
from tulu.data.preferences import EncodedPair, encode_pairs
from tulu.train.attention import set_packed_attention
from tulu.train.common import ModelConfig, TrainConfig
from tulu.train.engine import Engine, RunSummary, Task, train_epochs
from tulu.train.heldout import evaluate_pairs
from tulu.train.logprobs import backbone_of, forward_hidden, unwrap_model
from tulu.train.losses import bradley_terry

log = logging.getLogger(__name__)


def _rm_train_defaults() -> TrainConfig:
    return TrainConfig(learning_rate=3e-6, warmup_ratio=0.0, num_epochs=1, effective_batch_size=128,
                       per_device_batch_size=1, seed=123)


@dataclass
class RMDataConfig:
    mixture: dict[str, float] = option(default_factory=lambda: {"synthetic:math": 200, "synthetic:constraints": 200},
                                       help="Preference sources -> fraction (<=1) or count (>1), as in `tulu dpo`.")
    template: Literal["tokenizer", "tulu"] = option("tokenizer", "Chat template: the tokenizer's own, or Tulu's.")
    max_length: int = option(2048, "Max tokens per sequence (Tulu 3 RM: 2048); cut from the right.")
    eval_fraction: float = option(0.1, "Held-out share of the pairs; pairwise accuracy on it is printed.")


@dataclass
class RMConfig:
    output_dir: str = option("runs/rm", "Run folder: metrics.jsonl, checkpoints/, model/ (the reward model).")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "help": "Starting LM (Tulu 3 trains the RM from the SFT model); a fresh 1-output score head is added."})
    center_coef: float = option(0.0, "Weight of the (r_c + r_r)^2 centering term that keeps rewards near 0 "
                                     "(0: plain Bradley-Terry, as Tulu 3).")
    eval_batch_pairs: int = option(8, "Pairs per forward when scoring the held-out split.")
    max_row_tokens: int = option(0, "Cap on tokens per packed row (0: one row per micro-batch).")
    data: RMDataConfig = field(default_factory=RMDataConfig, metadata={"help": "Preference data."})
    train: TrainConfig = field(default_factory=_rm_train_defaults,
                               metadata={"help": "The shared loop (Tulu 3 RM: lr 3e-6, 1 epoch)."})


CONFIG = RMConfig


def score_head(model: nn.Module) -> nn.Module:
    """The linear head of a sequence-classification model (``score`` for Llama-type models)."""
    m = unwrap_model(model)
    head = getattr(m, "score", None) or getattr(m, "classifier", None)
    if head is None:
        raise TypeError(f"{type(m).__name__}: no score/classifier head")
    return head


def last_token_scores(model: nn.Module, batch: SeqBatch) -> torch.Tensor:
    """``[num_seqs]`` scores: the classification head on each sequence's last hidden state."""
    hidden = forward_hidden(backbone_of(model), batch)
    flat_seq = batch.seq_index.reshape(-1)
    pos = torch.arange(flat_seq.numel(), device=flat_seq.device)
    real = flat_seq >= 0
    last = torch.full((batch.num_seqs,), -1, dtype=torch.long, device=pos.device)
    last = last.scatter_reduce(0, flat_seq[real], pos[real], reduce="amax")
    h = hidden.reshape(-1, hidden.shape[-1])[last]
    return score_head(model)(h).squeeze(-1).float()


class RMTask(Task):
    def __init__(self, pad_token_id: int, center_coef: float = 0.0, max_row_tokens: int | None = None):
        self.pad, self.center, self.max_row = pad_token_id, center_coef, max_row_tokens

    def num_tokens(self, item: EncodedPair) -> int:
        return item.num_tokens

    def collate(self, items):
        return collate_sequences([p.chosen for p in items] + [p.rejected for p in items], self.pad,
                                 max_row_tokens=self.max_row)

    def loss(self, model, batch):
        scores = last_token_scores(model, batch)
        p = batch.num_seqs // 2
        c, r = scores[:p], scores[p:]
        losses = bradley_terry(c, r, center_coef=self.center)
        d = (c - r).detach()
        return losses.sum(), {"accuracy": (d > 0).float().sum(), "margin": d.sum(),
                              "reward/chosen": c.detach().sum(), "reward/rejected": r.detach().sum()}

    def summarize(self, sums, denominator):
        return {k: v / denominator for k, v in sums.items()}


def pairwise_accuracy(model: nn.Module, pairs: list[EncodedPair], pad_token_id: int, batch_pairs: int = 8,
                      max_row_tokens: int | None = None) -> dict[str, float]:
    """Share of held-out pairs whose chosen response scores strictly higher (``accuracy``), the mean score
    margin (``margin``) and the mean scores, through the shared pairwise evaluation."""

    def collate(chunk):
        return collate_sequences([p.chosen for p in chunk] + [p.rejected for p in chunk], pad_token_id,
                                 max_row_tokens=max_row_tokens)

    def score(m, batch):
        s = last_token_scores(m, batch)
        half = batch.num_seqs // 2
        return {"chosen": s[:half], "rejected": s[half:]}

    m = evaluate_pairs(model, pairs, collate, score, batch_pairs=batch_pairs, prefix="")
    if not m:
        return {}
    return {"accuracy": m["accuracies"], "margin": m["margins"], "chosen": m["chosen"], "rejected": m["rejected"],
            "pairs": m["pairs"]}


def run(cfg: RMConfig) -> RunSummary:
    from tulu.models import load_model, load_tokenizer

    out = Path(cfg.output_dir)
    engine = Engine(cfg.train, out, run_config=to_dict(cfg), desc="reward model")  # seeds: the head is random
    tok = load_tokenizer(cfg.model.path)
    model = load_model(cfg.model.path, dtype=cfg.model.dtype, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    set_packed_attention(model)  # micro-batches are packed rows: attention per sequence, no [T, T] mask
    records = build_mixture(cfg.data.mixture, kind="preference", seed=cfg.train.seed).records
    train_recs, eval_recs = split_records(records, cfg.data.eval_fraction, cfg.train.seed)
    train_pairs, _ = encode_pairs(train_recs, tok, cfg.data.template, cfg.data.max_length)
    eval_pairs, _ = encode_pairs(eval_recs, tok, cfg.data.template, cfg.data.max_length)
    if not train_pairs:
        raise DataError("data: no training pairs left after truncation; raise data.max_length")
    max_row = cfg.max_row_tokens or None
    engine.resolve_precision(model)
    with engine.autocast():  # the held-out pass in the precision the trained model is evaluated in
        before = pairwise_accuracy(model, eval_pairs, tok.pad_token_id, cfg.eval_batch_pairs, max_row)
    engine.prepare(model, RMTask(tok.pad_token_id, cfg.center_coef, max_row))
    result = train_epochs(engine, train_pairs)
    with engine.evaluation_model() as trained:
        after = pairwise_accuracy(trained, eval_pairs, tok.pad_token_id, cfg.eval_batch_pairs, max_row)
    card = (f"# Bradley-Terry reward model from {cfg.model.path}\n\nTrained by `tulu rm` on {len(train_pairs)} "
            f"pairs. Held-out pairwise accuracy {after.get('accuracy', float('nan')):.3f} on {len(eval_pairs)} pairs.\n")
    model_dir = engine.save_model(tok, out / "model", model_card=card)
    summary = RunSummary("rm", str(model_dir) if model_dir else None, result.global_step, result.resumed_from,
                         result.first_loss, result.final_metrics, before, after,
                         details={"train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs)},
                         precision=engine.precision_record())
    if engine.is_main:
        summary.write(out)
        if after:
            log.info("held-out pairwise accuracy: %.3f on %d pairs (before training %.3f); mean margin %.4f",
                     after["accuracy"], len(eval_pairs), before["accuracy"], after["margin"])
        log.info("reward model written to %s", model_dir)
    return summary
