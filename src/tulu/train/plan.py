"""Pure pieces of the training loop: the learning-rate schedule and how items map to steps and micro-batches.

No torch state, no I/O: every function here is a formula, tested in tests/train/test_loop.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tulu.train.common import TrainConfig


# ------------------------------------------------------------------------------------- pure schedule
def lr_factor(step: int, total_steps: int, warmup_steps: int, kind: str = "linear") -> float:
    """Multiplier of the peak LR at optimizer step ``step`` (0-based), as transformers' schedules."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    if kind == "constant":
        return 1.0
    progress_ = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if kind == "linear":
        return max(0.0, 1.0 - progress_)
    if kind == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress_)))
    raise ValueError(f"unknown lr_scheduler {kind!r}")


def warmup_steps_for(total_steps: int, ratio: float) -> int:
    return math.ceil(total_steps * ratio)


def same_rates_so_far(step: int, planned: int, total: int, warmup_ratio: float, kind: str) -> bool:
    """Whether the first ``step`` optimizer steps of a run planned for ``planned`` steps had the learning rates a
    run of ``total`` steps gives them, and ``step`` is not past ``total``: then a checkpoint of the one resumes
    exactly as the other (a constant-rate run extended or cut short)."""
    w_old, w_new = warmup_steps_for(planned, warmup_ratio), warmup_steps_for(total, warmup_ratio)
    return step <= total and all(lr_factor(s, planned, w_old, kind) == lr_factor(s, total, w_new, kind)
                                 for s in range(step))


@dataclass(frozen=True)
class Plan:
    """How items map to optimizer steps and micro-batch slots."""

    num_items: int
    effective_batch: int
    num_processes: int
    accumulation: int
    steps_per_epoch: int
    total_steps: int

    @property
    def slots(self) -> int:
        return self.num_processes * self.accumulation


def accumulation_steps(cfg: TrainConfig, num_processes: int) -> int:
    """Micro-batches per process per optimizer step: effective batch / (per-device batch x processes)."""
    per_step = cfg.per_device_batch_size * num_processes
    if cfg.effective_batch_size % per_step:
        raise ValueError(
            f"train.effective_batch_size ({cfg.effective_batch_size}) must be a multiple of "
            f"train.per_device_batch_size ({cfg.per_device_batch_size}) x processes ({num_processes})")
    return cfg.effective_batch_size // per_step


def make_plan(num_items: int, cfg: TrainConfig, num_processes: int) -> Plan:
    accumulation = accumulation_steps(cfg, num_processes)
    slots = num_processes * accumulation
    full, rest = divmod(num_items, cfg.effective_batch_size)
    steps_per_epoch = full + (1 if rest >= slots else 0)
    if steps_per_epoch == 0:
        raise ValueError(f"{num_items} training items cannot fill one step of {slots} micro-batches "
                         f"(effective_batch_size {cfg.effective_batch_size}); use more data or a smaller batch")
    total = steps_per_epoch * cfg.num_epochs
    if cfg.max_steps > 0:
        total = min(total, cfg.max_steps) if cfg.num_epochs >= 1 else cfg.max_steps
    return Plan(num_items, cfg.effective_batch_size, num_processes, accumulation, steps_per_epoch, total)


def epoch_order(num_items: int, seed: int, epoch: int) -> np.ndarray:
    """The item order of one epoch: a permutation seeded by (seed, epoch) only."""
    return np.random.default_rng([seed, epoch]).permutation(num_items)


def step_items(plan: Plan, seed: int, step: int) -> list[int]:
    """Global item indices of optimizer step ``step`` (epochs wrap when max_steps exceeds them)."""
    epoch, k = divmod(step, plan.steps_per_epoch)
    order = epoch_order(plan.num_items, seed, epoch)
    return order[k * plan.effective_batch:(k + 1) * plan.effective_batch].tolist()


def deal(indices: Sequence[int], slots: int) -> list[list[int]]:
    """Deal a step's items into ``slots`` micro-batches of near-equal size (round-robin, order kept)."""
    return [list(indices[j::slots]) for j in range(slots)]


def my_micro_batches(indices: Sequence[int], plan: Plan, process_index: int) -> list[list[int]]:
    """This process's micro-batches of one step: slots p, p+P, p+2P, ... of the step's deal."""
    slots = deal(list(indices), plan.slots)
    return [slots[process_index + a * plan.num_processes] for a in range(plan.accumulation)]
