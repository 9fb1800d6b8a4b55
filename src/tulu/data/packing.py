"""The one packer: lays out tokenized sequences for a forward pass (SFT, preference pairs and RL rollouts).

Two layouts:

* ``packed`` concatenates sequences into padding-free rows of at most ``max_row_tokens`` tokens (None: one
  row), with ``position_ids`` restarting at 0 for every sequence. transformers' SDPA/flash paths keep the
  sequences apart when the forward pass runs with ``use_cache=False`` (tulu.train.attention's per-sequence
  attention does so by construction); tests/data/test_packing.py checks per-sequence logits and the loss
  against unpacked passes.
* ``padded`` puts one sequence per row, right-padded, with an attention mask (TRL's classic layout).

The first label of each sequence is set to -100, so that with the usual one-token shift no token is ever
predicted from the previous sequence's context. ``seq_index[r, t]`` says which sequence token ``(r, t)``
belongs to (-1 for padding); per-sequence sums are ``index_add`` over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import torch

from tulu.data.templates import IGNORE_INDEX, Encoded

Layout = Literal["packed", "padded"]


@dataclass
class SeqBatch:
    """Sequences laid out in rows. ``seq_index[r, t]`` is the sequence of token ``(r, t)``, -1 for padding."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    seq_index: torch.Tensor
    attention_mask: torch.Tensor | None
    num_seqs: int

    def to(self, device: torch.device | str) -> "SeqBatch":
        mv = lambda x: None if x is None else x.to(device, non_blocking=True)  # noqa: E731
        return SeqBatch(mv(self.input_ids), mv(self.labels), mv(self.position_ids), mv(self.seq_index),
                        mv(self.attention_mask), self.num_seqs)

    @property
    def num_tokens(self) -> int:
        return int((self.seq_index >= 0).sum())

    @property
    def num_targets(self) -> int:
        """Label tokens that are predicted (after the one-token shift)."""
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())


def pack_rows(lengths: Sequence[int], max_row_tokens: int | None) -> list[list[int]]:
    """Greedy in-order assignment of sequences (by length) to rows of at most ``max_row_tokens`` tokens.

    Order is kept, which keeps runs reproducible and resumable. A sequence longer than the cap gets a row of
    its own (truncation is the tokenizer's job, not the packer's)."""
    rows: list[list[int]] = [[]]
    used = 0
    for i, n in enumerate(lengths):
        if max_row_tokens is not None and rows[-1] and used + n > max_row_tokens:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


def collate_sequences(seqs: Sequence[Encoded], pad_token_id: int, layout: Layout = "packed",
                      max_row_tokens: int | None = None, pad_to_multiple_of: int = 1) -> SeqBatch:
    """Lay out sequences for one forward pass. ``packed`` fills rows of up to ``max_row_tokens`` tokens
    (None: a single row, with no padding at all); ``padded`` puts one sequence per row with an attention mask."""
    if not seqs:
        raise ValueError("collate_sequences: no sequences")
    if layout not in ("packed", "padded"):
        raise ValueError(f"layout: {layout!r} is not 'packed' or 'padded'")
    lengths = [len(s.input_ids) for s in seqs]
    rows = pack_rows(lengths, max_row_tokens) if layout == "packed" else [[i] for i in range(len(seqs))]
    width = max(sum(lengths[i] for i in row) for row in rows)
    width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    shape = (len(rows), width)
    ids = torch.full(shape, pad_token_id, dtype=torch.long)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    seq = torch.full(shape, -1, dtype=torch.long)
    for r, row in enumerate(rows):
        off = 0
        for i in row:
            n = lengths[i]
            ids[r, off:off + n] = torch.tensor(seqs[i].input_ids)
            lab = torch.tensor(seqs[i].labels)
            lab[0] = IGNORE_INDEX  # never predicted from a previous sequence in the row
            labels[r, off:off + n] = lab
            pos[r, off:off + n] = torch.arange(n)
            seq[r, off:off + n] = i
            off += n
        pos[r, off:] = torch.arange(width - off)  # trailing pad: its own "sequence", seen by nothing real
    mask = (seq >= 0).long() if layout == "padded" else None
    return SeqBatch(ids, labels, pos, seq, mask, len(seqs))
