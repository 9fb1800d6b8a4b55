"""`tulu rlvr RECIPE.yaml`: reinforcement learning with verifiable rewards (Tulu 3 stage 3) on the step engine.

One RL batch, as :func:`run` reads:

1. take the next ``rollout.prompts_per_batch`` prompts (a seeded permutation per pass over the prompt set);
2. generate ``rollout.samples_per_prompt`` completions each through the rollout backend (token ids,
   per-token log-probs, finish reason);
3. score them with the verifier named by each record (``dataset``): ``reward.correct_score`` x score, and
   ``reward.nonstop_penalty`` instead for a response that did not end with EOS (Tulu 3: 10 and -10);
4. DAPO dynamic sampling, when on: drop groups whose rewards are all equal and sample more prompts until the
   batch is full (or ``rollout.max_sampling_rounds`` is reached);
5. one no-grad pass of the learner for the old log-probs (and the reference's, and the value model's);
6. advantages: PPO = GAE over per-token rewards ``-β·k1`` with the score at the last token, whitened;
   the GRPO family = group-normalised rewards (Dr. GRPO without the std);
7. ``rl.epochs_per_batch`` passes of clipped updates over minibatches of ``train.effective_batch_size``
   rollouts, each an engine step;
8. hand the new weights to the generator; log the batch; write every rollout to ``rollouts.jsonl``.

The formulas are pure functions in :mod:`tulu.train.advantages` and :mod:`tulu.train.rl_losses` (see
docs/rl_formulas.md). The generator's log-probs differ from the learner's (other kernels); the gap is logged
every batch (``mismatch/*``) and, with ``rl.tis_cap > 0``, corrected by truncated importance sampling.

Defaults follow the Tulu 3 8B PPO recipe where it has a number (report §6, Table 18; open-instruct
``ppo_vllm_thread_ray_gtrl.py``): lr 3e-7, β 0.05, temperature 1.0, 4 PPO epochs, clip 0.2, value clip 0.2,
vf_coef 0.1, γ 1, λ 0.95, reward 10 / non-stop penalty -10. ``rl.algorithm`` picks the family member; fields
left at ``None`` take that algorithm's value from :data:`ALGORITHMS`.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch

from tulu.config import option
from tulu.data.formats import DataError
from tulu.train.advantages import gae, group_advantages, masked_mean, masked_whiten, per_token_rewards, zero_std_groups
from tulu.train.common import LoraConfig, ModelConfig, TrainConfig
from tulu.train.engine import RunSummary, Task
from tulu.train.rl_batch import (BatchLog, PromptCursor, RLBatch, Rollout, batch_stats, collate_rollouts, generate,
                                 heldout_accuracy, policy_of, response_grid, rollout_records, score,
                                 token_logprobs, token_values)
from tulu.train.rl_losses import kl_estimate, policy_loss, truncated_is_weights, value_loss
from tulu.utils import atomic_write_text, stable_hash

log = logging.getLogger(__name__)
Algorithm = Literal["ppo", "grpo", "dr_grpo", "dapo"]

# What each family member sets when the recipe leaves a field at None.
ALGORITHMS: dict[str, dict[str, Any]] = {
    # Tulu 3 PPO: value model, GAE, token-level loss, KL in the reward (k1).
    "ppo": dict(advantage="gae", aggregation="token", clip_high=0.2, kl_in="reward", kl_estimator="k1",
                dynamic_sampling=False, epochs_per_batch=4),
    # GRPO (Shao et al. 2024): group-normalised advantages, per-sequence mean, k3 KL in the loss.
    "grpo": dict(advantage="group", aggregation="sequence", clip_high=0.2, kl_in="loss", kl_estimator="k3",
                 dynamic_sampling=False, epochs_per_batch=1),
    # Dr. GRPO (Liu et al. 2025): no std normalisation, constant denominator (batch x max new tokens).
    "dr_grpo": dict(advantage="group_no_std", aggregation="constant", clip_high=0.2, kl_in="loss",
                    kl_estimator="k3", dynamic_sampling=False, epochs_per_batch=1),
    # DAPO (Yu et al. 2025): clip-higher 0.28, token-level loss, dynamic sampling.
    "dapo": dict(advantage="group", aggregation="token", clip_high=0.28, kl_in="loss", kl_estimator="k3",
                 dynamic_sampling=True, epochs_per_batch=1),
}


# ------------------------------------------------------------------------------------------- configs
@dataclass
class RLVRDataConfig:
    prompts: dict[str, float] = option(
        default_factory=lambda: {"rlvr:math": 200, "rlvr:constraints": 200},
        help="Prompt sources -> fraction (<= 1) or count (> 1): RLVR-format files ({messages, ground_truth, "
             "dataset}), hf:<name> when online, or the generators rlvr:math, rlvr:arith, rlvr:constraints "
             "(Tulu 3: GSM8K train + MATH train + IFEval-style constraints, ~30k prompts). See docs/data.md.")
    heldout: dict[str, float] = option(
        default_factory=dict, help="Held-out prompts scored greedily before and after training (the generators' "
                                   "held-out split never shares a prompt with training). Empty: no held-out pass.")
    template: Literal["tokenizer", "tulu"] = option("tokenizer", "Chat template: the tokenizer's own, or Tulu's.")
    max_length: int = option(2048, "Longest prompt in tokens (Tulu 3: 2048); longer prompts stop the run "
                                   "before the first step, naming the record.")


@dataclass
class RolloutConfig:
    prompts_per_batch: int = option(4, "Prompts per RL batch (Tulu 3 PPO: 224 rollouts a batch, one each).")
    samples_per_prompt: int = option(4, "Completions per prompt: the GRPO group size (Tulu 3 PPO: 1).")
    max_new_tokens: int = option(256, "Longest response (Tulu 3: 2048). A short cap zeroes rewards on word problems.")
    temperature: float = option(1.0, "Sampling temperature (Tulu 3: 1.0); the learner's log-probs use the same.")
    top_p: float = option(1.0, "Nucleus sampling (1.0: off).")
    backend: str = option("auto", "Generation backend (tulu.rollout): auto (vLLM on GPU when installed, else the "
                                  "fast CPU backend), fast, hf, vllm.")
    max_sampling_rounds: int = option(4, "Dynamic sampling: sample at most this many times the batch's prompts "
                                         "before training on what is there.")
    dtype: str = option("float32", "Weight precision of the fast CPU generator (tulu.rollout.weights): float32 (its "
                                   "log-probs match the learner's up to summation order), bfloat16 (weights stored "
                                   "as bf16, fp32 arithmetic; the learner recomputes the old log-probs and logs the "
                                   "gap) or auto (bf16 where measured faster); with backend ray, each generation "
                                   "actor's fast engine. Other backends use model.dtype.")
    async_steps: int = option(0, "0: strictly on-policy. 1: generate batch t+1 while training on batch t "
                                 "(one step stale; logged as 'staleness').")


@dataclass
class RewardConfig:
    correct_score: float = option(10.0, "Reward of a verified response (Tulu 3: 10); a partial score scales it.")
    nonstop_penalty: float = option(-10.0, "Reward of a response that hit max_new_tokens without EOS (Tulu 3 PPO: "
                                           "-10; open-instruct GRPO: 0 = no penalty, the verifier's score stands).")
    workers: int = option(0, "Verifier worker processes (0: in this process, each check under its timeout).")
    timeout_s: float = option(0.0, "Per-check time limit (0: each verifier's own). A check that runs out scores 0.")
    reward_model: str = option("", "Optional reward model folder (`tulu rm` output) whose score is added.")
    reward_model_multiplier: float = option(0.0, "Weight of the reward model's score (Tulu 3: 0).")


@dataclass
class RLConfig:
    algorithm: Algorithm = option("ppo", "ppo (Tulu 3: value model + GAE), grpo, dr_grpo or dapo. Fields below "
                                         "left empty take the algorithm's setting (tulu.train.rlvr.ALGORITHMS).")
    beta: float = option(0.05, "KL strength against the starting policy (Tulu 3 8B: 0.05, 70B 0.07). 0: the "
                               "reference model is never loaded or run.")
    kl_estimator: str | None = option(None, "k1, k2 or k3 (Schulman 2020). PPO: k1 in the reward; GRPO: k3 in the loss.")
    epochs_per_batch: int | None = option(None, "Passes over each rollout batch (Tulu 3 PPO: 4; GRPO: 1).")
    clip_low: float = option(0.2, "PPO ratio clip below 1 (Tulu 3: 0.2).")
    clip_high: float | None = option(None, "Ratio clip above 1 (DAPO clip-higher: 0.28; others 0.2).")
    aggregation: str | None = option(None, "token (DAPO, PPO), sequence (GRPO) or constant (Dr. GRPO).")
    dynamic_sampling: bool | None = option(None, "Drop groups whose rewards are all equal, sample more (DAPO).")
    gamma: float = option(1.0, "GAE discount (Tulu 3: 1).")
    lam: float = option(0.95, "GAE lambda (Tulu 3: 0.95).")
    whiten_advantages: bool = option(True, "Whiten PPO advantages over the batch (Tulu 3: yes).")
    vf_coef: float = option(0.1, "Value loss weight (Tulu 3: 0.1).")
    value_clip: float = option(0.2, "Value clip range (Tulu 3: 0.2).")
    value_model: str = option("", "PPO's value model: a reward-model folder (`tulu rm` output; Tulu 3 initialises the "
                                  "value model from its RM), or 'policy' for the starting policy with a fresh head.")
    value_lr_scale: float = option(1.0, "Value model learning rate / policy learning rate.")
    tis_cap: float = option(2.0, "Truncated importance sampling: weight tokens by min(pi_learner/pi_generator, cap) "
                                 "(open-instruct: 2.0). 0: off.")
    learner: Literal["local", "ray"] = option(
        "local", "Where the learner (the models and the step engine) runs: local (this process; with `accelerate "
                 "launch`, one per process) or ray (a Ray actor, apart from the generators, as in open-instruct's "
                 "distributed RLVR; the weights reach the generators through Ray's object store).")
    old_logprobs: Literal["learner", "generator"] = option(
        "learner", "learner: one no-grad pass gives the old log-probs (exact ratio, mismatch measured); generator: "
                   "reuse the generator's log-probs (faster; only sound when both compute the same numbers).")

    def resolved(self) -> dict[str, Any]:
        """This config with every None filled from the algorithm's settings."""
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"rl.algorithm: unknown {self.algorithm!r} (choose from {', '.join(ALGORITHMS)})")
        out = dict(ALGORITHMS[self.algorithm])
        for key in ("kl_estimator", "epochs_per_batch", "clip_high", "aggregation", "dynamic_sampling"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _rlvr_train_defaults() -> TrainConfig:
    # Tulu 3 8B PPO: lr 3e-7, linear, no warmup; a minibatch of 224 rollouts (one per prompt).
    return TrainConfig(learning_rate=3e-7, warmup_ratio=0.0, num_epochs=1, effective_batch_size=16,
                       per_device_batch_size=4, seed=123, max_grad_norm=1.0)


@dataclass
class RLVRConfig:
    output_dir: str = option("runs/rlvr", "Run folder: metrics.jsonl, rollouts.jsonl, checkpoints/, model/.")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={
        "help": "The policy to start from (Tulu 3: the DPO model)."})
    data: RLVRDataConfig = field(default_factory=RLVRDataConfig, metadata={"help": "Prompts."})
    rollout: RolloutConfig = field(default_factory=RolloutConfig, metadata={"help": "Generation."})
    reward: RewardConfig = field(default_factory=RewardConfig, metadata={"help": "Verifiable rewards."})
    rl: RLConfig = field(default_factory=RLConfig, metadata={"help": "Algorithm and its hyperparameters."})
    train: TrainConfig = field(default_factory=_rlvr_train_defaults, metadata={
        "help": "The step engine. effective_batch_size = rollouts per optimizer step (a minibatch); num_epochs = "
                "passes over the prompt set; max_steps caps the optimizer steps."})
    lora: LoraConfig = field(default_factory=LoraConfig, metadata={"help": "LoRA (merged for generation)."})

    def __post_init__(self) -> None:
        r, ro = self.rl, self.rollout
        s = r.resolved()
        if ro.temperature <= 0:
            raise ValueError("rollout.temperature: RL samples; must be > 0")
        if ro.prompts_per_batch < 1 or ro.samples_per_prompt < 1:
            raise ValueError("rollout.prompts_per_batch and rollout.samples_per_prompt must be >= 1")
        if s["advantage"] != "gae" and ro.samples_per_prompt < 2:
            raise ValueError(f"rollout.samples_per_prompt: {r.algorithm} normalises over a group; use >= 2")
        if (ro.prompts_per_batch * ro.samples_per_prompt) % self.train.effective_batch_size:
            raise ValueError(f"train.effective_batch_size ({self.train.effective_batch_size}) must divide the "
                             f"rollouts per batch ({ro.prompts_per_batch} x {ro.samples_per_prompt})")
        if s["kl_estimator"] not in ("k1", "k2", "k3"):
            raise ValueError(f"rl.kl_estimator: {s['kl_estimator']!r} is not k1, k2 or k3")
        if s["aggregation"] not in ("token", "sequence", "constant"):
            raise ValueError(f"rl.aggregation: {s['aggregation']!r} is not token, sequence or constant")
        if r.beta < 0:
            raise ValueError(f"rl.beta: must be >= 0, got {r.beta}")
        if ro.async_steps not in (0, 1):
            raise ValueError("rollout.async_steps: 0 (on-policy) or 1 (one batch ahead)")
        from tulu.rollout.weights import normalize as weight_dtype

        try:
            ro.dtype = weight_dtype(ro.dtype)
        except ValueError as exc:
            raise ValueError(f"rollout.{exc}") from None
        if ro.dtype != "float32" and r.old_logprobs == "generator":
            raise ValueError(f"rollout.dtype: {ro.dtype} weights give log-probs that differ from the learner's; "
                             "with rl.old_logprobs=generator they would be used as the old policy's. Use "
                             "rl.old_logprobs=learner (the default) or rollout.dtype=float32")


CONFIG = RLVRConfig


# ------------------------------------------------------------------------------------------ the step
class RLTask(Task):
    """The clipped policy update (plus PPO's value loss) on one micro-batch of rollouts. The engine divides the
    returned sums by the minibatch's denominator: its response tokens (token aggregation), its responses
    (sequence) or responses x max_new_tokens (constant)."""

    def __init__(self, cfg: RLVRConfig, settings: dict[str, Any], pad_token_id: int, on_policy: bool = False):
        self.cfg, self.s, self.pad = cfg, settings, pad_token_id
        # One update per batch: the policy that trains is the one that the old log-probs would come from, so
        # they are this forward pass's own (detached) and no separate pass is needed.
        self.on_policy = on_policy
        self.fields = ["gen_logp", "advantages"] if on_policy else ["old_logp", "gen_logp", "advantages"]
        if cfg.rl.beta > 0 and settings["kl_in"] == "loss":
            self.fields.append("ref_logp")
        if settings["advantage"] == "gae":
            self.fields += ["old_values", "returns"]

    def weight(self, r: Rollout) -> float:
        agg = self.s["aggregation"]
        if agg == "token":
            return float(len(r.response_ids))
        return 1.0 if agg == "sequence" else float(self.cfg.rollout.max_new_tokens)

    def num_tokens(self, r: Rollout) -> int:
        return len(r.prompt_ids) + len(r.response_ids)

    def collate(self, items: Sequence[Rollout]) -> RLBatch:
        return collate_rollouts(items, self.pad, self.fields)

    def loss(self, model, batch: RLBatch):
        cfg, s, t = self.cfg, self.s, batch.tensors
        logp = token_logprobs(policy_of(model), batch, cfg.rollout.temperature)
        mask = batch.mask
        old = logp.detach() if self.on_policy else t["old_logp"]
        is_w = None
        if cfg.rl.tis_cap > 0 and cfg.rl.old_logprobs == "learner":
            is_w = truncated_is_weights(old, t["gen_logp"], mask, cap=cfg.rl.tis_cap)
        kl = None
        if "ref_logp" in t:
            kl = kl_estimate(logp, t["ref_logp"], mask, s["kl_estimator"])
        # count=1: the aggregation returns sums; the engine divides by the minibatch's denominator
        counts = dict(token_count=1.0) if s["aggregation"] == "token" else dict(seq_count=1.0, max_len=1)
        adv = t["advantages"]
        pl = policy_loss(logp, old, adv, mask, clip_low=cfg.rl.clip_low, clip_high=s["clip_high"],
                         aggregation=s["aggregation"], is_weights=is_w, kl=kl, beta=cfg.rl.beta, **counts)
        total = pl.loss
        n_tok = mask.sum().to(logp.dtype)
        sums = {"policy_loss": pl.pg_loss, "kl_loss": pl.kl_loss, "clipped_tokens": pl.clip_frac * n_tok,
                "approx_kl_tokens": pl.approx_kl * n_tok, "response_tokens": n_tok}
        if self.on_policy:  # the generator-vs-learner gap, measured on this pass
            sums["mismatch_abs_tokens"] = ((old - t["gen_logp"]).abs() * mask).sum()
        if "returns" in t:
            values = token_values(model["value"], batch)
            vl = value_loss(values, t["old_values"], t["returns"], mask, clip=cfg.rl.value_clip,
                            aggregation=s["aggregation"], **counts)
            total = total + cfg.rl.vf_coef * vl.loss
            sums["value_loss"] = vl.loss.detach()
            sums["value_clipped_tokens"] = vl.clip_frac * n_tok
        return total, sums

    def summarize(self, sums: dict[str, float], denominator: float) -> dict[str, float]:
        toks = max(sums.get("response_tokens", 0.0), 1.0)
        out = {"policy_loss": sums.get("policy_loss", 0.0) / denominator,
               "kl_loss": sums.get("kl_loss", 0.0) / denominator,
               "clip_frac": sums.get("clipped_tokens", 0.0) / toks,
               "approx_kl": sums.get("approx_kl_tokens", 0.0) / toks}
        if "mismatch_abs_tokens" in sums:
            out["mismatch/mean_abs"] = sums["mismatch_abs_tokens"] / toks
        if "value_loss" in sums:
            out["value_loss"] = sums["value_loss"] / denominator
            out["value_clip_frac"] = sums.get("value_clipped_tokens", 0.0) / toks
        return out


def advantages(rollouts: list[Rollout], cfg: RLVRConfig, s: dict[str, Any]) -> dict[str, float]:
    """Set each rollout's advantages (and PPO's returns); returns batch statistics for the log."""
    if not rollouts:
        return {}
    have = [f for f in ("old_logp", "ref_logp", "old_values") if getattr(rollouts[0], f) is not None]
    mask, grids = response_grid(rollouts, have)

    rewards = torch.tensor([r.reward for r in rollouts])
    stats: dict[str, float] = {}
    if s["advantage"] == "gae":
        kl = None
        if cfg.rl.beta > 0:
            kl = kl_estimate(grids["old_logp"], grids["ref_logp"], mask, s["kl_estimator"])
            stats["kl"] = float(masked_mean(kl, mask))
        token_rewards = per_token_rewards(rewards, mask, kl=kl, beta=cfg.rl.beta)
        adv, ret = gae(token_rewards, grids["old_values"], mask, gamma=cfg.rl.gamma, lam=cfg.rl.lam)
        if cfg.rl.whiten_advantages:
            adv = masked_whiten(adv, mask)
        for i, r in enumerate(rollouts):
            r.advantages, r.returns = adv[i, :len(r.response_ids)], ret[i, :len(r.response_ids)]
    else:
        g = cfg.rollout.samples_per_prompt
        scale = "none" if s["advantage"] == "group_no_std" else "group"
        adv = group_advantages(rewards, g, scale=scale)
        for r, a in zip(rollouts, adv.tolist()):
            r.advantages = torch.full((len(r.response_ids),), a)
        if cfg.rl.beta > 0 and rollouts[0].old_logp is not None:  # on-policy: the step logs kl_loss instead
            stats["kl"] = float(masked_mean(kl_estimate(grids["old_logp"], grids["ref_logp"], mask, "k1"), mask))
    return stats


# ------------------------------------------------------------------------------------------ the run
def run(cfg: RLVRConfig) -> RunSummary:  # noqa: C901 (one RL batch, read top to bottom)
    from tulu.data.rlvr import load_rlvr_prompts
    from tulu.data.templates import render_prompt
    from tulu.models import load_tokenizer
    from tulu.rollout import SamplingParams, get_backend
    from tulu.rollout.llama import supports
    from tulu.train.rl_learner import make_learner, steps_per_batch
    from tulu.verifiers.timeout import WorkerPool

    out = Path(cfg.output_dir)
    s = cfg.rl.resolved()
    ro = cfg.rollout

    # -- data: every prompt validated and tokenized before the first step (and before any model loads)
    tok = load_tokenizer(cfg.model.path)
    prompts = load_rlvr_prompts(cfg.data.prompts, cfg.train.seed, "train")
    heldout = load_rlvr_prompts(cfg.data.heldout, cfg.train.seed, "heldout") if cfg.data.heldout else []
    ids = [render_prompt(p["messages"], tok, cfg.data.template) for p in prompts]
    verifiers, ground_truths = [p["verifier"] for p in prompts], [p["ground_truth"] for p in prompts]
    heldout_ids = [render_prompt(p["messages"], tok, cfg.data.template) for p in heldout]
    for i, p in enumerate(ids):
        if len(p) > cfg.data.max_length:
            raise DataError(f"{prompts[i].get('source', '?')}: prompt {prompts[i].get('id', i)}: {len(p)} tokens, "
                            f"more than data.max_length={cfg.data.max_length}")

    # -- the learner: policy (trained), reference (only when beta > 0), value model (PPO) on the step engine,
    #    in this process or in a Ray actor (rl.learner)
    learner = make_learner(cfg, tok.pad_token_id, RLTask)
    # -- the generator: vLLM engines and Ray generation actors load the model by path; an in-process CPU
    #    backend shares the local learner's policy. Either way it gets the trained weights after every batch.
    on_gpu_engine = ro.backend in ("vllm", "ray") or (ro.backend == "auto" and torch.cuda.is_available())
    local_model = learner.base_policy if not on_gpu_engine else None
    fast = ro.backend == "fast" or (ro.backend == "auto" and local_model is not None and supports(local_model) is None)
    # rollout.dtype is the fast engine's weight precision: this process's engine, or each Ray actor's
    precision = {"dtype": ro.dtype} if fast else {"worker_kwargs": {"dtype": ro.dtype}} if ro.backend == "ray" else {}
    backend = get_backend(ro.backend, local_model if local_model is not None else cfg.model.path, tok, **precision)
    # -- the plan: batches over the prompt set, a fixed number of optimizer steps per batch
    _, per_batch = steps_per_batch(cfg)
    num_batches = max(1, len(prompts) * cfg.train.num_epochs // ro.prompts_per_batch)
    if cfg.train.max_steps > 0:
        num_batches = max(1, min(num_batches, cfg.train.max_steps // per_batch))
    cursor = PromptCursor(len(prompts), cfg.train.seed)
    start_batch, saved = learner.begin(num_batches, stable_hash(len(prompts), ro.prompts_per_batch,
                                                                ro.samples_per_prompt, per_batch, cfg.train.seed,
                                                                prompts[:16]))
    if saved:
        cursor.load_state_dict(saved)
    learner.sync(backend)  # the generator starts from the (possibly resumed) policy
    is_main = learner.info()["is_main"]
    rollout_log = BatchLog(out / "rollouts.jsonl", start_batch, is_main)
    batch_log = BatchLog(out / "batches.jsonl", start_batch, is_main)
    pool = WorkerPool(cfg.reward.workers) if cfg.reward.workers > 0 else None
    before_path = out / "heldout_before.json"
    if heldout and (start_batch == 0 or not before_path.is_file()):
        before = heldout_accuracy(backend, heldout_ids, heldout, ro.max_new_tokens)
        if is_main:
            atomic_write_text(before_path, json.dumps(before))
    else:
        before = json.loads(before_path.read_text()) if heldout else []
    if before:
        log.info("held-out accuracy before training: %.3f on %d prompts", float(np.mean(before)), len(before))

    def sample(batch_index: int) -> tuple[list[Rollout], dict[str, float]]:
        """Generate, score and (DAPO) filter one batch of rollouts."""
        t0 = time.perf_counter()
        kept: list[Rollout] = []
        sampled: list[Rollout] = []  # every scored rollout, before the dynamic-sampling filter
        groups = dropped = 0
        for round_ in range(ro.max_sampling_rounds if s["dynamic_sampling"] else 1):
            need = ro.prompts_per_batch - groups + dropped if round_ else ro.prompts_per_batch
            indices = cursor.take(need)
            params = SamplingParams(n=ro.samples_per_prompt, temperature=ro.temperature, top_p=ro.top_p,
                                    max_new_tokens=ro.max_new_tokens, logprobs=True,
                                    seed=int(stable_hash(cfg.train.seed, batch_index, round_, length=8), 16))
            rs = generate(backend, ids, indices, params, verifiers, tok.eos_token_id)
            score(rs, ground_truths, correct_score=cfg.reward.correct_score,
                  nonstop_penalty=cfg.reward.nonstop_penalty, pool=pool, timeout_s=cfg.reward.timeout_s or None)
            groups += len(indices)
            sampled += rs
            if s["dynamic_sampling"]:
                g = ro.samples_per_prompt
                zero = zero_std_groups(torch.tensor([r.reward for r in rs]), g).tolist()
                dropped += sum(zero)
                rs = [r for k, r in enumerate(rs) if not zero[k // g]]
            kept += rs
            if len(kept) >= ro.prompts_per_batch * ro.samples_per_prompt:
                break
        kept = kept[:ro.prompts_per_batch * ro.samples_per_prompt]
        # what the policy scored (unbiased by the filter), and how many rollouts the update trains on
        stats = batch_stats(sampled, groups, dropped)
        stats["trained_rollouts"] = len(kept)
        stats["generate_s"] = time.perf_counter() - t0
        return kept, stats

    last: dict[str, Any] = {}  # the final step's record, with its batch
    executor = ThreadPoolExecutor(max_workers=1) if ro.async_steps else None
    pending = None
    t_run = time.perf_counter()
    try:
        for b in range(start_batch, num_batches):
            # 1-4: rollouts (generated ahead, with the weights before the last update, when async)
            if pending is not None:
                rollouts, stats = pending.result()
                stats["staleness"] = 1
            else:
                rollouts, stats = sample(b)
                stats["staleness"] = 0
            if executor is not None and b + 1 < num_batches:
                pending = executor.submit(sample, b + 1)
            # 5: the learner's view of the rollouts (old / reference log-probs, values, the generator gap)
            t0 = time.perf_counter()
            if rollouts:
                rollouts, learner_stats = learner.prepare(rollouts)
                stats.update(learner_stats)
            # 6: advantages
            stats.update(advantages(rollouts, cfg, s))
            stats["prepare_s"] = time.perf_counter() - t0
            # 7: K passes of clipped updates over minibatches
            record = learner.train(rollouts, b, stats, cursor.state_dict())
            stats["train_s"] = record.pop("train_s")
            # 8: the generator gets the new weights; the batch is logged; a checkpoint where resuming is exact
            if pending is not None:
                pending.result()  # finish generating the next batch with the weights it started with
            stats["sync_s"] = learner.sync(backend)
            rollout_log.write(rollout_records(b, rollouts, prompts))
            info = learner.info()
            batch_log.write([{"batch": b, "step": info["global_step"], **stats}])
            last = dict(record, batch=b + 1)
            learner.checkpoint(record)
    finally:
        if executor is not None:
            executor.shutdown(wait=True)
        learner.end()
    after = heldout_accuracy(backend, heldout_ids, heldout, ro.max_new_tokens)
    if pool is not None:
        pool.close()
    backend.close()
    if after:
        log.info("held-out accuracy after training: %.3f on %d prompts", float(np.mean(after)), len(after))
    info = learner.info()
    card = (f"# RLVR ({cfg.rl.algorithm}) from {cfg.model.path}\n\nTrained by `tulu rlvr` for {info['global_step']} "
            f"optimizer steps on {len(prompts)} prompts with verifiable rewards.\n")
    model_dir = learner.save_model(cfg.model.path, card)
    learner.close()
    heldout_block = {}
    if heldout:
        heldout_block = {"prompts": len(heldout), "before": before, "after": after,
                         "verifiers": [p["verifier"] for p in heldout]}
    summary = RunSummary("rlvr", model_dir, info["global_step"], start_batch * per_batch, info["first_loss"], last,
                         {"accuracy": float(np.mean(before))} if before else {},
                         {"accuracy": float(np.mean(after))} if after else {},
                         details={"algorithm": cfg.rl.algorithm, "settings": s, "prompts": len(prompts),
                                  "batches": num_batches, "heldout": heldout_block, "learner": cfg.rl.learner,
                                  "seconds": round(time.perf_counter() - t_run, 1)},
                         precision=info["precision"])
    if is_main:
        summary.write(out)
        log.info("RLVR done: %d steps; model written to %s", info["global_step"], model_dir)
    return summary


__all__ = ["ALGORITHMS", "CONFIG", "RLVRConfig", "RLTask", "Rollout", "run", "collate_rollouts", "advantages"]
