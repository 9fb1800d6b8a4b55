"""The RLVR learner: every model with weights (policy, reference, value, reward model) and the step engine.

:func:`tulu.train.rlvr.run` drives it: the driver owns the prompts, generation, scoring and advantages; the
learner owns what needs the weights. ``rl.learner`` picks where the learner lives:

- ``local``: in the driver's process (CPU runs; ``accelerate launch`` for DDP / FSDP / DeepSpeed, where
  every process runs the driver and its own learner);
- ``ray``: in a Ray actor (:class:`RemoteLearner`), the layout of open-instruct's distributed RLVR, where
  learner and generation actors are separate processes and the weights travel from the learner to the
  generators after every batch. Here they travel through Ray's object store; on GPU clusters a NCCL
  broadcast would replace that hop (not built: see docs/rlvr.md).

Both expose the same methods, and the driver cannot tell them apart, so a run gives the same weights either
way (tested).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn

from tulu.config import to_dict
from tulu.data.formats import DataError
from tulu.train.common import apply_lora
from tulu.train.engine import Engine
from tulu.train.rl_batch import Rollout, per_token_pass, response_grid, token_logprobs, token_values
from tulu.train.rl_losses import logprob_mismatch_stats

log = logging.getLogger(__name__)


def steps_per_batch(cfg) -> tuple[int, int]:
    """(minibatches per pass, optimizer steps per batch): ``rl.epochs_per_batch`` passes over the batch's
    rollouts in minibatches of ``train.effective_batch_size``."""
    ro = cfg.rollout
    minibatches = ro.prompts_per_batch * ro.samples_per_prompt // cfg.train.effective_batch_size
    return minibatches, cfg.rl.resolved()["epochs_per_batch"] * minibatches


class _DriverState:
    """The driver's resume state (its prompt cursor), checkpointed by the learner's engine."""

    def __init__(self) -> None:
        self.state: dict = {}

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


class Learner:
    """Loads the models, prepares them on the step engine and runs the learner's half of an RL batch."""

    def __init__(self, cfg, pad_token_id: int, task_cls) -> None:
        from tulu.models import load_model
        from tulu.train.attention import set_packed_attention

        self.cfg, s = cfg, cfg.rl.resolved()
        self.s, self.pad = s, pad_token_id
        # the engine first: seeds, threads and the accelerator before any model exists
        self.engine = Engine(cfg.train, cfg.output_dir, run_config=to_dict(cfg), desc=f"rlvr ({cfg.rl.algorithm})")
        self.engine.show = ("loss", "reward")
        policy = load_model(cfg.model.path, dtype=cfg.model.dtype, device="cpu", attn_implementation="sdpa")
        set_packed_attention(policy)
        self.base_policy = policy  # what an in-process CPU generator shares (LoRA wraps it below)
        self.reference = None
        if cfg.rl.beta > 0:
            self.reference = self.engine.prepare_frozen(load_model(cfg.model.path, dtype=cfg.model.dtype, device="cpu"))
            set_packed_attention(self.reference)
        if cfg.lora.enabled:
            policy = apply_lora(policy, cfg.lora, cfg.train.seed)
        modules: dict[str, nn.Module] = {"policy": policy}
        if s["advantage"] == "gae":
            if not cfg.rl.value_model:
                raise DataError("rl.value_model: PPO needs a value model: a reward-model folder (`tulu rm` output, "
                                "as Tulu 3) or 'policy' (the starting policy with a fresh head)")
            path = cfg.model.path if cfg.rl.value_model == "policy" else cfg.rl.value_model
            modules["value"] = load_model(path, dtype=cfg.model.dtype, device="cpu", num_labels=1)
            modules["value"].config.pad_token_id = pad_token_id
            set_packed_attention(modules["value"])
        self.reward_model = None
        if cfg.reward.reward_model and cfg.reward.reward_model_multiplier:
            self.reward_model = self.engine.prepare_frozen(load_model(cfg.reward.reward_model, device="cpu",
                                                                      num_labels=1))
        self.has_value = "value" in modules
        self.minibatches, self.steps_per_batch = steps_per_batch(cfg)
        # One update per batch: the old log-probs are the training pass's own (no separate no-grad pass).
        self.on_policy = self.steps_per_batch == 1 and s["advantage"] != "gae" and cfg.rl.old_logprobs == "learner"
        self.task = task_cls(cfg, s, pad_token_id, on_policy=self.on_policy)
        self.engine.prepare(modules, self.task, lr_scales={"value": cfg.rl.value_lr_scale})
        self.driver_state = _DriverState()
        self.engine.register_state("prompts", self.driver_state)

    # ------------------------------------------------------------------------------ run bookkeeping
    def begin(self, num_batches: int, fingerprint: str) -> tuple[int, dict]:
        """Plan ``num_batches`` batches and resume from the newest checkpoint. Returns the first batch to run
        and the driver state saved with it (empty on a fresh run)."""
        self.engine.plan(num_batches * self.steps_per_batch, fingerprint)
        start = self.engine.begin()
        return start // self.steps_per_batch, self.driver_state.state_dict()

    def generation_state(self) -> dict[str, torch.Tensor]:
        """The policy's weights as a generator loads them (LoRA merged)."""
        return self.engine.generation_state("policy")

    def sync(self, backend) -> float:
        """Hand the current weights to an in-process generation backend; returns seconds."""
        return self.engine.sync_weights(backend, "policy")

    def info(self) -> dict[str, Any]:
        return {"global_step": self.engine.global_step, "first_loss": self.engine.first_logged("loss"),
                "is_main": self.engine.is_main, "precision": self.engine.precision_record()}

    # ------------------------------------------------------------------------------ one batch
    def prepare(self, rollouts: list[Rollout]) -> tuple[list[Rollout], dict[str, float]]:
        """Step 5: the learner's view of the rollouts: old log-probs (unless on-policy), the reference's and
        the value model's, the optional reward-model score, and the generator-vs-learner gap."""
        cfg, stats = self.cfg, {}
        if not rollouts:
            return rollouts, stats
        with self.engine.autocast():  # the no-grad passes in the same precision as the loss
            self._learner_view(rollouts)
        if not self.on_policy:  # on-policy, the training pass measures the gap itself
            mask, grids = response_grid(rollouts, ["old_logp", "gen_logp"])  # no packing needed
            stats.update({k: float(v) for k, v in logprob_mismatch_stats(
                grids["old_logp"], grids["gen_logp"], mask, cap=cfg.rl.tis_cap or 2.0).items()})
        return rollouts, stats

    def _learner_view(self, rollouts: list[Rollout]) -> None:
        cfg = self.cfg
        temp, bs = cfg.rollout.temperature, cfg.train.per_device_batch_size
        pol = self.engine.unwrapped_model("policy")
        if not self.on_policy:
            if cfg.rl.old_logprobs == "learner":
                olds = per_token_pass(pol, rollouts, self.pad, bs, lambda m, x: token_logprobs(m, x, temp))
            else:
                olds = [r.gen_logp for r in rollouts]
            for r, o in zip(rollouts, olds):
                r.old_logp = o
        if self.reference is not None:
            refs = per_token_pass(self.reference, rollouts, self.pad, bs, lambda m, x: token_logprobs(m, x, temp))
            for r, o in zip(rollouts, refs):
                r.ref_logp = o
        if self.has_value:
            vals = per_token_pass(self.engine.unwrapped_model("value"), rollouts, self.pad, bs, token_values)
            for r, v in zip(rollouts, vals):
                r.old_values = v
        if self.reward_model is not None:
            from tulu.train.rm import last_token_scores

            rm_scores = per_token_pass(self.reward_model, rollouts, self.pad, bs,
                                       lambda m, x: last_token_scores(m, x.seqs)[:, None])
            for r, sc in zip(rollouts, rm_scores):
                r.reward += cfg.reward.reward_model_multiplier * float(sc[0])

    def train(self, rollouts: list[Rollout], batch_index: int, stats: dict[str, float],
              driver_state: dict) -> dict[str, Any]:
        """Step 7: ``epochs_per_batch`` passes of clipped updates over minibatches, each an engine step, then a
        checkpoint where one is due (with the driver's state). Returns the last step's metrics record."""
        import numpy as np

        engine, task = self.engine, self.task
        acc = engine.accelerator
        record: dict[str, Any] = {}
        t0 = time.perf_counter()
        rng = np.random.default_rng([self.cfg.train.seed, batch_index])
        for _ in range(self.s["epochs_per_batch"]):
            order = rng.permutation(len(rollouts)).tolist()
            for m in range(self.minibatches):
                mb = [rollouts[i] for i in order[m::self.minibatches]]
                mine = mb[acc.process_index::acc.num_processes]
                micro = [mine[k::engine.accumulation] for k in range(engine.accumulation)]
                denom = sum(task.weight(r) for r in mb)
                record = engine.step(micro, max(denom, 1.0), tokens=sum(task.num_tokens(r) for r in mb),
                                     items=len(mb), extra=stats)
        self.driver_state.load_state_dict(driver_state)
        return dict(record, train_s=time.perf_counter() - t0)

    def checkpoint(self, record: dict) -> None:
        self.engine.maybe_checkpoint(record)

    def end(self) -> None:
        self.engine.end()

    def save_model(self, tokenizer_path: str, model_card: str) -> str | None:
        from tulu.models import load_tokenizer

        out = self.engine.save_model(load_tokenizer(tokenizer_path), f"{self.cfg.output_dir}/model",
                                     model_card=model_card, merge_lora=self.cfg.lora.merge_on_save, name="policy")
        return str(out) if out else None

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        """Nothing to release in this process (a :class:`RemoteLearner` stops its actor)."""


class RemoteLearner:
    """A :class:`Learner` in a Ray actor: the same methods, each call a blocking Ray call. Weights go to the
    generators through the object store (:meth:`sync`)."""

    def __init__(self, cfg, pad_token_id: int, task_cls, owns_ray: bool = False) -> None:
        import ray

        self.num_cpus = max(1, cfg.train.num_threads or 1)
        actor = ray.remote(Learner).options(num_cpus=self.num_cpus)
        self.actor = actor.remote(cfg, pad_token_id, task_cls)
        ray.get(self.actor.ping.remote())  # surface load errors here
        self.base_policy = None  # the generator loads its own copy from model.path
        self.owns_ray = owns_ray

    def _call(self, name: str, *args, **kwargs):
        import ray

        return ray.get(getattr(self.actor, name).remote(*args, **kwargs))

    def begin(self, num_batches: int, fingerprint: str) -> tuple[int, dict]:
        return self._call("begin", num_batches, fingerprint)

    def generation_state(self) -> dict[str, torch.Tensor]:
        return self._call("generation_state")

    def sync(self, backend) -> float:
        t0 = time.perf_counter()
        backend.update_weights(self.generation_state())
        return time.perf_counter() - t0

    def info(self) -> dict[str, Any]:
        return self._call("info")

    def prepare(self, rollouts):
        return self._call("prepare", rollouts)

    def train(self, rollouts, batch_index, stats, driver_state):
        return self._call("train", rollouts, batch_index, stats, driver_state)

    def checkpoint(self, record) -> None:
        self._call("checkpoint", record)

    def end(self) -> None:
        self._call("end")

    def save_model(self, tokenizer_path: str, model_card: str) -> str | None:
        return self._call("save_model", tokenizer_path, model_card)

    def close(self) -> None:
        import ray

        ray.kill(self.actor)
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()


def make_learner(cfg, pad_token_id: int, task_cls):
    """The learner ``rl.learner`` names, training with ``task_cls(cfg, settings, pad_token_id, on_policy=)`` (the
    trainer's batch -> loss step): in this process, or in a Ray actor (starting a local Ray instance when none
    is running, sized for the learner plus the generation actors)."""
    if cfg.rl.learner == "local":
        return Learner(cfg, pad_token_id, task_cls)
    import os

    import ray

    owns = not ray.is_initialized()
    if owns:  # logical CPUs: the learner's threads plus the generation actors' (RayBackend: 2 x 1)
        workers = 2 if cfg.rollout.backend == "ray" else 0
        ray.init(num_cpus=max(os.cpu_count() or 1, max(1, cfg.train.num_threads) + workers),
                 include_dashboard=False, log_to_driver=True)
    return RemoteLearner(cfg, pad_token_id, task_cls, owns_ray=owns)


__all__ = ["Learner", "RemoteLearner", "make_learner", "steps_per_batch"]
