"""The one held-out pairwise evaluation, shared by DPO (implicit rewards) and the reward model (scores).

Pairs run in eval mode without gradients, ``batch_pairs`` at a time, in data order. A trainer supplies how a
chunk of pairs is laid out (``collate``) and how the model scores it (``score``: per-pair ``chosen`` and
``rejected`` values, plus ``loss`` where the objective has one). Metrics are computed once from the
concatenated per-pair values, so per-group figures (pairs from several sources) come from the same forward
passes as the total and are consistent with it: a separate pass over a subset packs rows differently, and at
policy == reference the float noise of that would count as wins.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from tulu.train.losses import reward_metrics


@torch.no_grad()
def evaluate_pairs(model: nn.Module, pairs: Sequence[Any], collate: Callable[[Sequence[Any]], Any],
                   score: Callable[[nn.Module, Any], dict[str, torch.Tensor]], *, batch_pairs: int = 8,
                   prefix: str = "rewards/", groups: dict[str, list[int]] | None = None):
    """``{prefix}chosen/rejected/accuracies/margins``, ``loss`` (when scored) and ``pairs`` over all pairs; with
    ``groups`` (name -> positions in ``pairs``) also ``{name: metrics}`` for each non-empty group."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[torch.Tensor]] = {}
    try:
        for i in range(0, len(pairs), batch_pairs):
            batch = collate(pairs[i:i + batch_pairs]).to(device)
            for k, v in score(model, batch).items():
                parts.setdefault(k, []).append(v.detach().cpu())
    finally:
        model.train(was_training)
    if not parts:
        return {} if groups is None else ({}, {})
    values = {k: torch.cat(v) for k, v in parts.items()}

    def summary(idx: torch.Tensor | None) -> dict[str, float]:
        sub = values if idx is None else {k: v[idx] for k, v in values.items()}
        m = reward_metrics(sub["chosen"], sub["rejected"], prefix)
        if "loss" in sub:
            m["loss"] = sub["loss"].mean().item()
        m["pairs"] = float(len(sub["chosen"]))
        return m

    if groups is None:
        return summary(None)
    return summary(None), {g: summary(torch.tensor(ix, dtype=torch.long)) for g, ix in groups.items() if ix}
