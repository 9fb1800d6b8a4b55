"""RL rollouts as the learner sees them: sampled responses with their rewards, packed for a forward pass.

:func:`generate` samples groups of responses through any rollout backend, :func:`score` rewards them with the
verifiers, :func:`collate_rollouts` packs them into one padding-free row (prompt + response, labels on the
response) with their per-token tensors right-padded to ``[B, T]``, and :func:`token_logprobs` /
:func:`token_values` give the learner's per-token log-probs and values on that layout. tulu.train.rlvr puts
them together.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from tulu.data.packing import SeqBatch, collate_sequences
from tulu.data.templates import IGNORE_INDEX, Encoded
from tulu.train.logprobs import backbone_of, label_hidden, label_logprobs, split_causal_lm
from tulu.utils import atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class Rollout:
    """One sampled response and everything the update needs about it."""

    prompt: int  # index into the prompt list
    group: int  # position of its prompt in the batch (a GRPO group)
    prompt_ids: list[int]
    response_ids: list[int]
    gen_logp: torch.Tensor  # [L] the generator's log-probs
    finished: bool  # ended with EOS
    text: str
    verifier: str
    score: float = 0.0
    reason: str = ""
    reward: float = 0.0
    old_logp: torch.Tensor | None = None
    ref_logp: torch.Tensor | None = None
    old_values: torch.Tensor | None = None
    advantages: torch.Tensor | None = None  # [L] (GRPO: the sequence's advantage repeated)
    returns: torch.Tensor | None = None

    def encoded(self) -> Encoded:
        return Encoded(self.prompt_ids + self.response_ids, [IGNORE_INDEX] * len(self.prompt_ids) + self.response_ids)


@dataclass
class RLBatch:
    """Rollouts packed for one forward pass plus their per-token tensors, right-padded to ``[B, T]``."""

    seqs: SeqBatch
    flat_index: torch.Tensor  # [N] position of each label token in the flattened [B, T] grid
    mask: torch.Tensor  # [B, T] response tokens
    tensors: dict[str, torch.Tensor]  # [B, T] each: old_logp, gen_logp, advantages, ref_logp, ...

    def to(self, device) -> "RLBatch":
        return RLBatch(self.seqs.to(device), self.flat_index.to(device), self.mask.to(device),
                       {k: v.to(device) for k, v in self.tensors.items()})

    def grid(self, flat: torch.Tensor) -> torch.Tensor:
        """``[N]`` per-label values -> ``[B, T]`` (zeros off the mask), differentiable."""
        b, t = self.mask.shape
        return flat.new_zeros(b * t).index_put((self.flat_index,), flat).view(b, t)


def response_grid(rollouts: Sequence[Rollout], fields: Sequence[str] = ()) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``([B, T] mask of response tokens, {field: [B, T] right-padded per-token values})`` of the rollouts."""
    width = max(len(r.response_ids) for r in rollouts)
    mask = torch.zeros(len(rollouts), width, dtype=torch.bool)
    for i, r in enumerate(rollouts):
        mask[i, :len(r.response_ids)] = True
    tensors = {}
    for name in fields:
        grid = torch.zeros(len(rollouts), width)
        for i, r in enumerate(rollouts):
            grid[i, :len(r.response_ids)] = getattr(r, name)
        tensors[name] = grid
    return mask, tensors


def collate_rollouts(rollouts: Sequence[Rollout], pad_token_id: int, fields: Sequence[str] = ()) -> RLBatch:
    seqs = collate_sequences([r.encoded() for r in rollouts], pad_token_id, layout="packed")
    mask, tensors = response_grid(rollouts, fields)
    flat = [torch.arange(len(r.response_ids)) + i * mask.shape[1] for i, r in enumerate(rollouts)]
    return RLBatch(seqs, torch.cat(flat), mask, tensors)


def policy_of(model: nn.Module) -> nn.Module:
    return model["policy"] if isinstance(model, nn.ModuleDict) else model


def token_logprobs(policy: nn.Module, batch: RLBatch, temperature: float) -> torch.Tensor:
    """``[B, T]`` log-probs of the response tokens at the sampling temperature (LM head at label positions)."""
    backbone, head = split_causal_lm(policy)
    g = label_hidden(backbone, batch.seqs)
    lp, _ = label_logprobs(g.hidden, head, g.targets, temperature=temperature)
    return batch.grid(lp)


def token_values(value_model: nn.Module, batch: RLBatch) -> torch.Tensor:
    """``[B, T]`` values: the value model's score head at the hidden state before each response token."""
    from tulu.train.rm import score_head

    g = label_hidden(backbone_of(value_model), batch.seqs)
    return batch.grid(score_head(value_model)(g.hidden).squeeze(-1).float())


class PromptCursor:
    """Which prompt comes next: a seeded permutation per pass over the prompt set. Checkpointed."""

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.position = n, seed, 0

    def take(self, k: int) -> list[int]:
        out = []
        for p in range(self.position, self.position + k):
            epoch, i = divmod(p, self.n)
            out.append(int(np.random.default_rng([self.seed, epoch]).permutation(self.n)[i]))
        self.position += k
        return out

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


def generate(backend, prompt_ids: list[list[int]], indices: list[int], params, verifiers: list[str],
             eos_token_id: int | None) -> list[Rollout]:
    """Sample ``params.n`` completions for each prompt of ``indices``; rollouts come grouped by prompt, with the
    generator's log-probs and whether each ended with EOS."""
    outs = backend.generate([prompt_ids[i] for i in indices], params)
    eos = {eos_token_id} if eos_token_id is not None else set()
    rollouts = []
    for out in sorted(outs, key=lambda o: o.prompt_index):
        i = indices[out.prompt_index]
        for c in out.completions:
            ids = list(c.token_ids)
            if not ids:
                continue
            lp = torch.tensor(c.logprobs if c.logprobs is not None else [0.0] * len(ids), dtype=torch.float32)
            finished = c.finish_reason == "stop" and ids[-1] in eos
            rollouts.append(Rollout(i, out.prompt_index, prompt_ids[i], ids, lp, finished, c.text, verifiers[i]))
    return rollouts


def score(rollouts: list[Rollout], ground_truths: list[Any], *, correct_score: float, nonstop_penalty: float,
          pool=None, timeout_s: float | None = None) -> None:
    """Verify every rollout (per verifier, in the worker pool when there is one) and set its reward:
    ``correct_score`` x the verifier's score, or ``nonstop_penalty`` for a response without EOS (0: no penalty,
    the score stands). A check that runs out of time scores 0."""
    from tulu.verifiers.base import verify_many

    by_verifier: dict[str, list[Rollout]] = {}
    for r in rollouts:
        by_verifier.setdefault(r.verifier, []).append(r)
    for name, rs in by_verifier.items():
        results = verify_many(name, [r.text for r in rs], [ground_truths[r.prompt] for r in rs], pool=pool,
                              timeout_s=timeout_s)
        for r, res in zip(rs, results):
            r.score, r.reason = float(res.score), res.reason
            r.reward = correct_score * r.score if (r.finished or nonstop_penalty == 0) else nonstop_penalty


@torch.no_grad()
def per_token_pass(model: nn.Module, rollouts: list[Rollout], pad: int, batch_size: int, fn) -> list[torch.Tensor]:
    """``fn(model, batch) -> [B, T]`` over the rollouts in chunks, no gradients; one 1-D tensor per rollout."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[torch.Tensor] = []
    try:
        for s in range(0, len(rollouts), batch_size):
            chunk = rollouts[s:s + batch_size]
            grid = fn(model, collate_rollouts(chunk, pad).to(device)).float().cpu()
            out += [grid[i, :len(r.response_ids)] for i, r in enumerate(chunk)]
    finally:
        model.train(was)
    return out


def batch_stats(rollouts: list[Rollout], groups: int, dropped: int) -> dict[str, float]:
    """What a user reads per batch: reward and solve rate per verifier, stop rate, lengths, dropped groups."""
    out: dict[str, float] = {}
    if not rollouts:
        return {"reward": 0.0, "zero_std_groups": 1.0}
    rewards = torch.tensor([r.reward for r in rollouts])
    out["reward"] = float(rewards.mean())
    out["reward_std"] = float(rewards.std()) if len(rollouts) > 1 else 0.0
    out["solve_rate"] = float(np.mean([r.score for r in rollouts]))
    solved = {}
    for r in rollouts:
        solved[r.prompt] = max(solved.get(r.prompt, 0.0), r.score)
    out["prompts_solved"] = float(np.mean([v >= 1.0 for v in solved.values()]))
    out["stop_rate"] = float(np.mean([r.finished for r in rollouts]))
    out["response_length"] = float(np.mean([len(r.response_ids) for r in rollouts]))
    out["zero_std_groups"] = dropped / max(groups, 1)
    for name in sorted({r.verifier for r in rollouts}):
        rs = [r for r in rollouts if r.verifier == name]
        out[f"reward/{name}"] = float(np.mean([r.reward for r in rs]))
        out[f"solve_rate/{name}"] = float(np.mean([r.score for r in rs]))
    return out


def heldout_accuracy(backend, prompt_ids: list[list[int]], prompts: list[dict], max_new_tokens: int) -> list[float]:
    """Greedy score of every held-out prompt (same verifiers as the reward)."""
    from tulu.rollout.base import SamplingParams
    from tulu.verifiers.base import verify

    if not prompts:
        return []
    outs = backend.generate(prompt_ids, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, logprobs=False))
    texts = {o.prompt_index: o.completions[0].text for o in outs}
    return [float(verify(p["verifier"], texts[i], p["ground_truth"]).score) for i, p in enumerate(prompts)]


class BatchLog:
    """A JSONL file of records keyed by RL batch (``rollouts.jsonl``: every response; ``batches.jsonl``: one line
    of statistics and timings per batch). Lines of batches at or after the resume point are cut on resume."""

    def __init__(self, path: Path, keep_before_batch: int, enabled: bool):
        self.path, self.enabled = path, enabled
        if enabled and path.exists():
            keep = []
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["batch"] < keep_before_batch:
                        keep.append(line + "\n")
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut short by a kill
            atomic_write_text(path, "".join(keep))

    def write(self, records: list[dict]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write("".join(json.dumps(r) + "\n" for r in records))


def rollout_records(batch: int, rollouts: list[Rollout], prompts: list[dict]) -> list[dict]:
    """What ``rollouts.jsonl`` keeps of each response: enough to read what the model did and why it scored."""
    return [{"batch": batch, "prompt_index": r.prompt, "prompt": prompts[r.prompt]["messages"][-1]["content"],
             "response": r.text, "verifier": r.verifier, "score": r.score, "reward": r.reward, "reason": r.reason,
             "finished": r.finished, "length": len(r.response_ids)} for r in rollouts]
