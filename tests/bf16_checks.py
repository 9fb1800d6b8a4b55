"""Shared measurements for the bf16 decode tests (tests/rollout/test_weights.py, test_dpbf16.py): how often a
bf16 run's greedy tokens agree with the fp32 run's, and how far its sampled log-probs are from a teacher-forced
fp32 forward pass."""

from __future__ import annotations

import torch


def prompts() -> list[list[dict]]:
    return [[{"role": "user", "content": q}] for q in ("What is 2+2?", "Name a colour.", "Say hello.", "Count to 3.")]


def agreement(a, b) -> float:
    """Share of generated tokens that come before the first token where two runs' completions differ."""
    same = total = 0
    for x, y in zip(a, b):
        for ca, cb in zip(x.completions, y.completions):
            n = min(len(ca.token_ids), len(cb.token_ids))
            same += sum(1 for i in range(n) if ca.token_ids[:i + 1] == cb.token_ids[:i + 1])
            total += max(len(ca.token_ids), len(cb.token_ids))
    return same / max(total, 1)


def logprob_gaps(model, c) -> list[float]:
    """|log p_fp32(token) - the completion's reported log-prob| per sampled token, teacher-forced through the
    fp32 ``model``."""
    prompt = list(c.prompt_token_ids)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + c.token_ids])).logits[0, len(prompt) - 1:-1].float()
    ref = torch.log_softmax(logits, -1)[torch.arange(len(c.token_ids)), torch.tensor(c.token_ids)]
    return (ref - torch.tensor(c.logprobs)).abs().tolist()
