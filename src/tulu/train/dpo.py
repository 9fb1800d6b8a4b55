"""`tulu dpo RECIPE.yaml`: preference tuning (Tulu 3 stage 2) on the shared training loop.

Flow: load preference records (mixture; optionally pairs sampled from the starting model itself and
ranked by the verifiers) -> split off a held-out set -> tokenize (labels on responses only) -> one
``no_grad`` pass stores the reference log-probs (cached on disk by data + weights) -> train with the
chosen loss -> report held-out implicit-reward accuracy before and after -> save a transformers folder.

Defaults are the Tulu 3 8B DPO numbers (report §5 / Table 17; open-instruct ``dpo_tune_cache.py``):
``dpo_norm``, β = 5, lr 5e-7, linear, warmup 0.1, 1 epoch, max length 2048, effective batch 128,
gradient checkpointing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from tulu.config import option, to_dict
from tulu.data.formats import DataError, validate
from tulu.data.mixing import build_mixture, split_records
from tulu.data.packing import Layout
from tulu.data.preferences import EncodedPair, encode_pairs, pairs_from_samples
from tulu.train.attention import set_packed_attention
from tulu.train.common import LoraConfig, ModelConfig, TrainConfig, apply_lora
from tulu.train.engine import Engine, RunSummary, Task, train_epochs
from tulu.train.heldout import evaluate_pairs
from tulu.train.losses import LOSS_TYPES, REFERENCE_FREE, PreferenceLoss, SeqLogps, preference_loss, with_chosen_nll
from tulu.train.reference import PairBatch, cached_reference, collate_pairs, policy_logps
from tulu.utils import atomic_write_jsonl, stable_hash

log = logging.getLogger(__name__)


def _dpo_train_defaults() -> TrainConfig:
    return TrainConfig(learning_rate=5e-7, warmup_ratio=0.1, num_epochs=1, effective_batch_size=128,
                       per_device_batch_size=1, gradient_checkpointing=True, seed=123)


@dataclass
class SelfPairsConfig:
    prompts: dict[str, float] = option(default_factory=dict, help=(
        "RL-prompt sources to sample from (same syntax as data.mixture, e.g. {synthetic:math: 64}). Empty: no "
        "self-generated pairs. Tulu 3 builds its DPO data from on-policy samples rated by a judge; here the "
        "judge is the verifier named in each prompt record (gsm8k, ifeval, ...)."))
    samples_per_prompt: int = option(4, "Completions sampled per prompt; a best and a worst one form a pair.")
    temperature: float = option(1.0, "Sampling temperature.")
    max_new_tokens: int = option(128, "Longest completion.")
    batch_size: int = option(16, "Prompts per generate() call (hf backend).")
    backend: str = option("auto", "Generation backend (tulu.rollout): auto (fast on CPU for Llama-type models, "
                                  "vLLM on GPU when installed), hf, fast, vllm.")


@dataclass
class DataConfig:
    mixture: dict[str, float] = option(default_factory=lambda: {"synthetic:math": 200, "synthetic:constraints": 200},
                                       help="Preference sources -> fraction (<=1) or count (>1), as SFT mixtures. "
                                            "Files hold {messages, chosen, rejected} records (or TRL/HH shapes).")
    self_pairs: SelfPairsConfig = field(default_factory=SelfPairsConfig,
                                        metadata={"help": "Pairs from the starting model's own samples."})
    template: Literal["tokenizer", "tulu"] = option("tokenizer", "Chat template: the tokenizer's own, or Tulu's.")
    max_length: int = option(2048, "Max tokens of prompt + response per sequence (Tulu 3 DPO: 2048); longer "
                                   "sequences are cut from the right, pairs left with no response are dropped.")
    eval_fraction: float = option(0.1, "Held-out share of the pairs for implicit-reward accuracy.")
    cache_dir: str = option("", "Folder for the reference log-prob cache ('' -> <output_dir>/cache).")


@dataclass
class DPOLossConfig:
    loss_type: Literal["dpo", "dpo_norm", "simpo", "ipo", "wpo"] = option(
        "dpo_norm", "dpo (summed log-ratios), dpo_norm (Tulu 3: per-token mean log-ratios), simpo (reference-"
                    "free, length-normalised, margin gamma), ipo, wpo (weighted by the policy's own probability).")
    beta: float = option(5.0, "KL strength beta (Tulu 3 dpo_norm: 5; DPO papers usually 0.1; SimPO 2-10; for "
                              "ipo it is tau).")
    gamma: float = option(0.5, "SimPO target reward margin gamma (SimPO paper: 0.5-1.6 with beta 2-2.5).")
    label_smoothing: float = option(0.0, "Conservative-DPO label smoothing epsilon in [0, 0.5).")
    rpo_alpha: float = option(0.0, "Weight alpha of the chosen response's per-token NLL added to each pair's "
                                   "loss (RPO, Pang et al. 2024; like TRL's rpo_alpha, which averages over the "
                                   "batch's chosen tokens instead). 0 = off, as in Tulu 3. It counters DPO "
                                   "lowering the chosen response's own likelihood (negative chosen rewards).")
    wpo_aligned: bool = option(False, "WPO weights with the per-token log sum_v p(v)^2 offset (the paper's "
                                      "sampled-alignment weights, TRL use_weighting).")
    layout: Layout = option("packed", "packed: chosen+rejected sequences of a micro-batch share padding-free "
                                      "rows (position ids restart; attention per sequence through "
                                      "tulu.train.attention.packed_sdpa); padded: one sequence per row.")
    max_row_tokens: int = option(0, "Cap on tokens per packed row (0: all of a micro-batch in one row). "
                                    "Attention is per sequence either way; a cap only bounds a row's size.")
    chunk_size: int = option(512, "Label positions per LM-head chunk (bounds the [chunk, vocab] buffer).")
    reference_batch_pairs: int = option(8, "Pairs per forward in the reference pass.")


@dataclass
class DPOConfig:
    output_dir: str = option("runs/dpo", "Run folder: metrics.jsonl, checkpoints/, model/ (the result).")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "help": "Starting model: the SFT checkpoint (Tulu 3 DPO starts from Tulu 3 SFT)."})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Preference data."})
    dpo: DPOLossConfig = field(default_factory=DPOLossConfig, metadata={"help": "Loss and log-prob pass."})
    train: TrainConfig = field(default_factory=_dpo_train_defaults, metadata={"help": "The shared loop."})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA (reference = adapters off)."})

    def __post_init__(self) -> None:
        if not 0 <= self.dpo.label_smoothing < 0.5:
            raise ValueError(f"dpo.label_smoothing: must be in [0, 0.5), got {self.dpo.label_smoothing}")
        if self.dpo.rpo_alpha < 0:
            raise ValueError(f"dpo.rpo_alpha: must be >= 0, got {self.dpo.rpo_alpha}")
        if self.dpo.beta <= 0:
            raise ValueError(f"dpo.beta: must be > 0, got {self.dpo.beta}")
        if self.dpo.loss_type not in LOSS_TYPES:
            raise ValueError(f"dpo.loss_type: unknown {self.dpo.loss_type!r}")


CONFIG = DPOConfig


def dpo_forward(model, batch: PairBatch, d: DPOLossConfig) -> tuple[PreferenceLoss, SeqLogps]:
    """The DPO step on one micro-batch: the policy's response log-probs of both sides, then the loss per pair.
    Training, held-out evaluation and the tests all run this one function."""
    pol = policy_logps(model, batch, chunk_size=d.chunk_size, want_sq=d.loss_type == "wpo" and d.wpo_aligned)
    if d.loss_type not in REFERENCE_FREE and batch.ref_chosen is None:
        raise ValueError(f"loss_type {d.loss_type!r} needs reference log-probs; the batch carries none")
    out = preference_loss(d.loss_type, pol, batch.ref_chosen, batch.ref_rejected, beta=d.beta, gamma=d.gamma,
                          label_smoothing=d.label_smoothing, wpo_aligned=d.wpo_aligned)
    if d.rpo_alpha:
        out = with_chosen_nll(out, pol.chosen, pol.chosen_tokens, d.rpo_alpha)
    return out, pol


class DPOTask(Task):
    """Items are :class:`EncodedPair`; the step normaliser is 1 per pair (loss = mean over the step's pairs)."""

    def __init__(self, pad_token_id: int, reference: torch.Tensor | None, d: DPOLossConfig):
        self.pad, self.reference, self.d = pad_token_id, reference, d

    def num_tokens(self, item: EncodedPair) -> int:
        return item.num_tokens

    def collate(self, items):
        return collate_pairs(items, self.pad, self.reference, self.d.layout, self.d.max_row_tokens or None)

    def loss(self, model, batch):
        out, pol = dpo_forward(model, batch, self.d)
        c, r = out.chosen_rewards, out.rejected_rewards
        sums = {"rewards/chosen": c.sum(), "rewards/rejected": r.sum(), "rewards/accuracies": (c > r).float().sum(),
                "rewards/margins": (c - r).sum(), "logps/chosen": pol.chosen.detach().sum(),
                "logps/rejected": pol.rejected.detach().sum()}
        return out.losses.sum(), sums

    def summarize(self, sums, denominator):
        return {k: v / denominator for k, v in sums.items()}


def heldout_metrics(model, pairs: list[EncodedPair], reference: torch.Tensor | None, pad_token_id: int,
                    d: DPOLossConfig, groups: dict[str, list[int]] | None = None):
    """Held-out loss and implicit-reward metrics (``rewards/accuracies`` ...) of the current policy."""

    def score(m, batch):
        out, _ = dpo_forward(m, batch, d)
        return {"chosen": out.chosen_rewards, "rejected": out.rejected_rewards, "loss": out.losses}

    return evaluate_pairs(model, pairs, lambda ps: collate_pairs(ps, pad_token_id, reference, d.layout,
                                                                 d.max_row_tokens or None),
                          score, batch_pairs=d.reference_batch_pairs, groups=groups)


# -------------------------------------------------------------------------------------------- data
def self_generated_pairs(model, tokenizer, cfg: SelfPairsConfig, seed: int, out_dir: Path) -> list[dict]:
    """Sample from the starting model, rank with the verifiers, keep (best, worst) pairs; cached as JSONL."""
    if not cfg.prompts:
        return []
    prompts = build_mixture(cfg.prompts, kind="rl", seed=seed).records
    key = stable_hash(prompts, cfg.samples_per_prompt, cfg.temperature, cfg.max_new_tokens, seed, cfg.backend,
                      getattr(model.config, "_name_or_path", ""), sum(p.numel() for p in model.parameters()))
    path = out_dir / f"self_pairs-{key}.jsonl"
    if path.is_file():
        from tulu.data.formats import load_records

        return load_records(path, "preference")
    from tulu.rollout import get_backend
    from tulu.rollout.base import SamplingParams
    from tulu.verifiers.base import verify

    kwargs = {"batch_size": cfg.batch_size} if cfg.backend == "hf" else {}
    backend = get_backend(cfg.backend, model, tokenizer, **kwargs)
    params = SamplingParams(n=cfg.samples_per_prompt, temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens,
                            seed=seed, logprobs=False)
    outs = backend.generate([p["messages"] for p in prompts], params, progress=True)
    samples = [[c.text for c in o.completions] for o in sorted(outs, key=lambda o: o.prompt_index)]
    pairs = pairs_from_samples(prompts, samples, lambda v, t, gt: float(verify(v, t, gt).score), seed)
    valid = []
    for i, rec in enumerate(pairs):  # e.g. an empty sample cannot be a response
        try:
            valid.append(validate(rec, f"self-generated pair {i}", "preference"))
        except DataError as exc:
            log.debug("self-generated pair skipped: %s", exc)
    pairs = valid
    log.info("self-generated pairs: %d of %d prompts had both a verified and a failed sample", len(pairs), len(prompts))
    atomic_write_jsonl(path, pairs)
    model.eval()
    return pairs


def run(cfg: DPOConfig) -> RunSummary:
    from tulu.models import load_model_and_tokenizer

    out = Path(cfg.output_dir)
    d = cfg.dpo
    engine = Engine(cfg.train, out, run_config=to_dict(cfg), desc=f"dpo ({d.loss_type})")
    model, tok = load_model_and_tokenizer(cfg.model.path, dtype=cfg.model.dtype)
    records = build_mixture(cfg.data.mixture, kind="preference", seed=cfg.train.seed).records if cfg.data.mixture else []
    records += self_generated_pairs(model, tok, cfg.data.self_pairs, cfg.train.seed, out)
    if not records:
        raise DataError("data: no preference pairs (empty mixture and no self-generated pairs)")
    train_recs, eval_recs = split_records(records, cfg.data.eval_fraction, cfg.train.seed)
    train_pairs, _ = encode_pairs(train_recs, tok, cfg.data.template, cfg.data.max_length)
    eval_pairs, _ = encode_pairs(eval_recs, tok, cfg.data.template, cfg.data.max_length)
    if not train_pairs:
        raise DataError("data: every training pair was dropped by truncation; raise data.max_length")
    if d.layout == "packed":  # sequences kept apart per position_ids: no [T, T] masked attention per row
        set_packed_attention(model)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, cfg.train.seed)
    ref_kw = dict(batch_pairs=d.reference_batch_pairs, layout=d.layout, max_row_tokens=d.max_row_tokens or None,
                  chunk_size=d.chunk_size)
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else out / "cache"
    ref_train = ref_eval = None
    # the reference and the held-out pass before training run in the training step's precision, so an
    # untrained policy has zero implicit reward under bf16 autocast too
    ref_kw["precision"] = engine.resolve_precision(model).compute
    if d.loss_type not in REFERENCE_FREE:
        with engine.autocast():
            ref_train, _, _ = cached_reference(model, train_pairs, tok.pad_token_id, cache, desc="reference (train)",
                                               **ref_kw)
            if eval_pairs:
                ref_eval, _, _ = cached_reference(model, eval_pairs, tok.pad_token_id, cache, desc="reference (eval)",
                                                  sort_by_length=False, **ref_kw)
    sources: dict[str, list[int]] = {}
    for pos, pair in enumerate(eval_pairs):
        sources.setdefault(str(eval_recs[pair.index].get("source", "?")), []).append(pos)

    def heldout(m) -> tuple[dict, dict[str, dict]]:
        """Held-out metrics over all pairs and, when the pairs come from several sources, per source."""
        every, per = heldout_metrics(m, eval_pairs, ref_eval, tok.pad_token_id, d, dict(sorted(sources.items())))
        return every, per if len(per) > 1 else {}

    with engine.autocast():
        before, before_src = heldout(model)
    if before:
        log.info("held-out before training: %s", _fmt(before))
    engine.prepare(model, DPOTask(tok.pad_token_id, ref_train, d))
    result = train_epochs(engine, train_pairs)
    with engine.evaluation_model() as trained:
        after, after_src = heldout(trained)
    by_source = {src: {"pairs": int(after_src[src]["pairs"]), "before": before_src.get(src, {}),
                       "after": after_src[src]} for src in after_src}
    card = (f"# DPO ({d.loss_type}, beta {d.beta}) from {cfg.model.path}\n\nTrained by `tulu dpo` on "
            f"{len(train_pairs)} pairs. Held-out implicit-reward accuracy: "
            f"{before.get('rewards/accuracies', float('nan')):.3f} before, "
            f"{after.get('rewards/accuracies', float('nan')):.3f} after ({len(eval_pairs)} pairs).\n")
    model_dir = engine.save_model(tok, out / "model", model_card=card, merge_lora=cfg.lora.merge_on_save)
    summary = RunSummary("dpo", str(model_dir) if model_dir else None, result.global_step, result.resumed_from,
                         result.first_loss, result.final_metrics, before, after,
                         details={"start_model": cfg.model.path, "train_pairs": len(train_pairs),
                                  "eval_pairs": len(eval_pairs), "heldout_by_source": by_source,
                                  "loss_type": d.loss_type},
                         precision=engine.precision_record())
    if engine.is_main:
        summary.write(out)
        if after:
            log.info("held-out pairs: %d, implicit-reward accuracy %.3f -> %.3f, margin %.4f -> %.4f", len(eval_pairs),
                     before["rewards/accuracies"], after["rewards/accuracies"], before["rewards/margins"],
                     after["rewards/margins"])
            for src, entry in by_source.items():
                log.info("  %s: %d pairs, accuracy %.3f -> %.3f", src, entry["pairs"],
                         entry["before"].get("rewards/accuracies", 0.0), entry["after"]["rewards/accuracies"])
        log.info("DPO done: model written to %s", model_dir)
    return summary


def _fmt(m: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in m.items())
