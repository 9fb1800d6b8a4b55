"""Padding-free packing and padded collation.

A packed row concatenates several examples into one sequence of at most ``max_tokens`` tokens, with
``position_ids`` restarting at 0 for every example. transformers' SDPA/flash attention paths then keep
examples apart (no attention across boundaries) when the forward pass runs with ``use_cache=False``;
tests/data/test_packing.py checks per-example logits and the loss against unpacked forward passes.

The first label of each packed example is set to -100 so that, with the usual one-token shift, no
token is ever predicted from the previous example's context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from tulu.data.templates import IGNORE_INDEX, Encoded


@dataclass
class PackedRow:
    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    position_ids: list[int] = field(default_factory=list)
    seq_lens: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def add(self, ex: Encoded) -> None:
        n = len(ex.input_ids)
        self.input_ids.extend(ex.input_ids)
        labels = list(ex.labels)
        if labels:
            labels[0] = IGNORE_INDEX  # never predicted from the previous example
        self.labels.extend(labels)
        self.position_ids.extend(range(n))
        self.seq_lens.append(n)

    @property
    def num_label_tokens(self) -> int:
        # Targets after the shift: label positions 1..n-1 of each example.
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def pack(examples: Iterable[Encoded], max_tokens: int) -> list[PackedRow]:
    """Greedy first-fit-decreasing-free packing in data order: examples are appended to the open row
    until the next one would not fit. Order is preserved, which keeps runs reproducible and resumable.
    Examples longer than ``max_tokens`` must be truncated beforehand (raises otherwise)."""
    rows: list[PackedRow] = []
    cur = PackedRow()
    for i, ex in enumerate(examples):
        n = len(ex.input_ids)
        if n > max_tokens:
            raise ValueError(f"example {i} has {n} tokens, more than max_tokens={max_tokens}; truncate it first")
        if n == 0:
            continue
        if len(cur) + n > max_tokens:
            rows.append(cur)
            cur = PackedRow()
        cur.add(ex)
    if len(cur):
        rows.append(cur)
    return rows


def collate_packed(rows: Sequence[PackedRow]) -> dict[str, torch.Tensor]:
    """Concatenate rows into ONE padding-free sequence of shape [1, sum(len)] (no pad tokens at all)."""
    ids, labels, pos, lens = [], [], [], []
    for r in rows:
        ids.extend(r.input_ids)
        labels.extend(r.labels)
        pos.extend(r.position_ids)
        lens.extend(r.seq_lens)
    return {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([pos], dtype=torch.long),
        "seq_lens": torch.tensor(lens, dtype=torch.long),
    }


def collate_padded(examples: Sequence[Encoded], pad_token_id: int, pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Right-padded batch with an attention mask (the classic layout; TRL's default)."""
    width = max(len(e.input_ids) for e in examples)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
