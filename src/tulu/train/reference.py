"""Preference-pair batches and the cached reference pass (DPO).

A micro-batch of P pairs runs as 2·P sequences (chosen first) through one forward pass; ``policy_logps``
splits the summed response log-probs back into the chosen and rejected halves.

Reference cache (open-instruct's ``dpo_tune_cache``): before training, one ``no_grad`` pass computes the
reference model's summed response log-probs of every chosen and rejected sequence and stores them on disk
under a key made of the token ids of every pair and a fingerprint of the reference weights. Training then
needs no second model in memory, and a rerun with the same data and model skips the pass. With LoRA the
reference is the same network with its adapters disabled.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from tulu.data.packing import Layout, SeqBatch, collate_sequences
from tulu.data.preferences import EncodedPair
from tulu.train.logprobs import response_logps
from tulu.train.losses import SeqLogps
from tulu.utils import atomic_path, progress

log = logging.getLogger(__name__)
CACHE_VERSION = "dpo-ref-v1"


@dataclass
class PairBatch:
    """P pairs as 2·P sequences (chosen first) plus their cached reference log-probs."""

    seqs: SeqBatch
    ref_chosen: torch.Tensor | None
    ref_rejected: torch.Tensor | None
    num_pairs: int

    def to(self, device) -> "PairBatch":
        mv = lambda x: None if x is None else x.to(device)  # noqa: E731
        return PairBatch(self.seqs.to(device), mv(self.ref_chosen), mv(self.ref_rejected), self.num_pairs)


def collate_pairs(pairs: Sequence[EncodedPair], pad_token_id: int, reference: torch.Tensor | None = None,
                  layout: Layout = "packed", max_row_tokens: int | None = None) -> PairBatch:
    """``reference`` is the ``[num_pairs_in_dataset, 2]`` cache, indexed by each pair's ``index``."""
    seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    batch = collate_sequences(seqs, pad_token_id, layout=layout, max_row_tokens=max_row_tokens)
    ref_c = ref_r = None
    if reference is not None:
        idx = torch.tensor([p.index for p in pairs])
        ref_c, ref_r = reference[idx, 0], reference[idx, 1]
    return PairBatch(batch, ref_c, ref_r, len(pairs))


def policy_logps(model: nn.Module, batch: PairBatch, *, chunk_size: int = 512, want_sq: bool = False) -> SeqLogps:
    out = response_logps(model, batch.seqs, chunk_size=chunk_size, want_sq=want_sq)
    p = batch.num_pairs
    sq = out.log_sum_sq
    return SeqLogps(out.sums[:p], out.sums[p:], out.counts[:p], out.counts[p:],
                    None if sq is None else sq[:p], None if sq is None else sq[p:])


# --------------------------------------------------------------------------------------- reference cache
def model_fingerprint(model: nn.Module, *, skip_adapters: bool = True) -> str:
    """A content hash of the weights: every tensor's name, shape and dtype plus a strided sample of its
    values (4096 per tensor), so it is cheap for large models but changes with any training step.
    LoRA adapter tensors are skipped: the reference is the base network."""
    h = hashlib.sha256(CACHE_VERSION.encode())
    for name, t in sorted(model.state_dict().items()):
        if skip_adapters and "lora_" in name:
            continue
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        flat = t.detach().reshape(-1)
        step = max(1, flat.numel() // 4096)
        h.update(flat[::step].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def pairs_fingerprint(pairs: Sequence[EncodedPair]) -> str:
    """A hash of every pair's token ids and label mask, in order."""
    h = hashlib.sha256()
    for p in pairs:
        for e in (p.chosen, p.rejected):
            h.update(np.asarray(e.input_ids, dtype=np.int64).tobytes())
            h.update(np.asarray(e.labels, dtype=np.int64).tobytes())
            h.update(b"|")
    return h.hexdigest()[:16]


@contextlib.contextmanager
def reference_mode(model: nn.Module) -> Iterator[nn.Module]:
    """The reference network: the model itself, with LoRA adapters disabled if it has any; eval mode."""
    was_training = model.training
    ctx = model.disable_adapter() if hasattr(model, "disable_adapter") and hasattr(model, "peft_config") \
        else contextlib.nullcontext()
    model.eval()
    try:
        with ctx, torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def compute_reference(model: nn.Module, pairs: Sequence[EncodedPair], pad_token_id: int, *, batch_pairs: int = 8,
                      layout: Layout = "packed", max_row_tokens: int | None = None, chunk_size: int = 512,
                      desc: str = "reference log-probs", sort_by_length: bool = True) -> torch.Tensor:
    """``[max index + 1, 2]`` float64 tensor of the reference's summed response log-probs (chosen, rejected).

    Pairs run longest first in batches of ``batch_pairs`` (similar lengths together waste less padding);
    ``sort_by_length=False`` keeps data order, so a later pass batched the same way (held-out evaluation)
    reproduces the values bit for bit and an untrained policy shows exactly zero implicit reward."""
    n = max((p.index for p in pairs), default=-1) + 1
    ref = torch.full((n, 2), float("nan"), dtype=torch.float64)
    order = sorted(pairs, key=lambda p: -p.num_tokens) if sort_by_length else list(pairs)
    device = next(model.parameters()).device
    with reference_mode(model) as m:
        bar = progress(total=len(order), desc=desc, unit="pair")
        for s in range(0, len(order), batch_pairs):
            chunk = order[s:s + batch_pairs]
            batch = collate_pairs(chunk, pad_token_id, None, layout, max_row_tokens).to(device)
            lp = policy_logps(m, batch, chunk_size=chunk_size)
            idx = torch.tensor([p.index for p in chunk])
            ref[idx, 0] = lp.chosen.double().cpu()
            ref[idx, 1] = lp.rejected.double().cpu()
            bar.update(len(chunk))
        bar.close()
    return ref


def cached_reference(model: nn.Module, pairs: Sequence[EncodedPair], pad_token_id: int, cache_dir: str | Path | None,
                     precision: str = "fp32", **kwargs) -> tuple[torch.Tensor, Path | None, bool]:
    """(reference tensor, cache file or None, whether it was read from the cache). ``precision`` names the
    compute dtype the caller runs it in (under its autocast), so values of different precisions are cached
    apart."""
    path = None
    if cache_dir is not None:
        key = f"{pairs_fingerprint(pairs)}-{model_fingerprint(model)}" + ("" if precision == "fp32" else f"-{precision}")
        path = Path(cache_dir) / f"{CACHE_VERSION}-{key}.pt"
        if path.is_file():
            ref = torch.load(path, map_location="cpu")
            log.info("reference log-probs: read %s (%d pairs)", path, len(pairs))
            return ref, path, True
    ref = compute_reference(model, pairs, pad_token_id, **kwargs)
    if path is not None:
        with atomic_path(path) as tmp:
            torch.save(ref, tmp)
        log.info("reference log-probs: wrote %s", path)
    return ref, path, False
