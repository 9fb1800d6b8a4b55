"""The one training loop that every trainer (SFT, DPO, RM, RL) shares.

Contract for an algorithm file
------------------------------
An algorithm supplies a :class:`Task` (its batch -> loss step) and a list of training items; the loop
owns everything else. A Task implements:

* ``weight(item) -> float``: the item's share of the **step normaliser** ``D``. The loss that is back-
  propagated for one optimizer step is ``sum(loss sums of all micro-batches on all processes) / D`` with
  ``D = sum(weight(item) for item in the step)``. SFT with ``sum`` reduction uses 1 per sequence (loss =
  summed token NLL per sequence of the step); ``mean`` uses the item's number of target tokens (a true
  token mean over the whole effective batch); DPO uses 1 per pair. ``D`` is computed from the items
  themselves, so every process knows it without communication and 1 process == N processes.
* ``num_tokens(item) -> int``: tokens the item puts through the model (for tokens/s).
* ``collate(items) -> batch``: one micro-batch (tensors, or any object with ``.to(device)``).
* ``loss(model, batch) -> (loss_sum, sums)``: ``loss_sum`` is a scalar tensor summed over the micro-
  batch's items (NOT averaged); ``sums`` maps metric names to detached scalar tensors that add up over
  micro-batches and processes (e.g. ``{"nll": ..., "tokens": ...}``). ``model`` is the raw model (a
  transformers model, or a peft wrapper): call any of its submodules (backbone, head) directly. The loop
  runs this method as the ``forward`` of a wrapper module, so DDP/FSDP/DeepSpeed see one forward per
  micro-batch and gradient synchronisation is correct however the step uses the model.
* ``summarize(sums, denominator) -> dict``: turn the step's summed metrics into logged values (optional).

Then::

    trainer = Trainer(cfg.train, model, task, items, output_dir, run_config=to_dict(cfg))
    result = trainer.train()           # resumes from output_dir/checkpoints when cfg.resume == "auto"
    trainer.save_model(tokenizer, output_dir / "model", model_card=...)

Batching: a step takes ``effective_batch_size`` items from a per-epoch permutation (seeded by ``seed`` and
the epoch, so the data order never depends on RNG state). They are dealt into ``processes x accumulation``
micro-batch slots of ``per_device_batch_size`` items; the last step of an epoch may be smaller (its slots
are filled evenly) and is dropped only if it cannot give every slot one item.

Checkpoints (``output_dir/checkpoints/checkpoint-<step>``) hold accelerate's state (model, optimizer,
every process's Python/NumPy/torch RNG state; sharded under FSDP/DeepSpeed) plus ``trainer_state.json``
(step, data position, schedule). They are written to a temporary folder and renamed when complete, so
a run killed at any moment resumes from the last complete one and ends with the same weights.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from tulu.train.common import TrainConfig
from tulu.train.plan import (Plan, accumulation_steps, deal, epoch_order, lr_factor, make_plan, step_items,  # noqa: F401 (re-exported)
                             warmup_steps_for)
from tulu.utils import atomic_write_json, atomic_write_text, progress, seed_everything, stable_hash

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"


class ResumeError(RuntimeError):
    """A checkpoint that does not fit this run (other data, other batch layout)."""


# ------------------------------------------------------------------------------------------- the Task
class Task:
    """Base class of an algorithm's batch -> loss step (see the module docstring)."""

    def weight(self, item: Any) -> float:
        return 1.0

    def num_tokens(self, item: Any) -> int:
        return 0

    def collate(self, items: Sequence[Any]) -> Any:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def summarize(self, sums: dict[str, float], denominator: float) -> dict[str, float]:
        return {}


class _StepModule(nn.Module):
    """Makes ``task.loss(model, batch)`` the forward pass that accelerate wraps (DDP/FSDP/DeepSpeed)."""

    def __init__(self, model: nn.Module, task: Task):
        super().__init__()
        self.model = model
        self._task = task  # plain attribute: not a submodule

    def forward(self, batch: Any):
        loss, sums = self._task.loss(self.model, batch)
        return loss, sums


# --------------------------------------------------------------------------------------------- logging
class MetricsLog:
    """metrics.jsonl (+ TensorBoard / W&B). Only the main process writes."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, run_config: dict, enabled: bool, resume_step: int):
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        # Drop lines a killed run wrote after its last checkpoint, so the log matches the resumed state.
        if self.path.exists():
            keep = [ln for ln in self.path.read_text().splitlines() if _step_of(ln) <= resume_step]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))
        if "tensorboard" in cfg.report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RuntimeError("train.report_to: tensorboard needs `pip install tensorboard`") from exc
            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        if "wandb" in cfg.report_to:
            try:
                import wandb
            except ImportError as exc:
                raise RuntimeError("train.report_to: wandb needs `pip install wandb`") from exc
            self.wandb = wandb.init(project=cfg.wandb_project, config=run_config, dir=str(out_dir),
                                    resume="allow", id=stable_hash(str(out_dir.resolve()), run_config, length=12))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:  # one whole line per append; resume rewrites the file atomically
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        step = record["step"]
        for k, v in record.items():
            if k == "step" or not isinstance(v, (int, float)):
                continue
            if self.tb is not None:
                self.tb.add_scalar(f"train/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _step_of(line: str) -> float:
    """Step of a metrics line; a line cut short by a kill (or blank) counts as after any resume point."""
    try:
        return json.loads(line).get("step", 0)
    except (json.JSONDecodeError, AttributeError):
        return float("inf")


# ---------------------------------------------------------------------------------------------- trainer
@dataclass
class TrainResult:
    global_step: int
    total_steps: int
    final_metrics: dict[str, float]
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    if hasattr(batch, "to"):
        return batch.to(device)
    return batch


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only (norm weights and biases are 1-D)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; the fused kernel when asked and every parameter can use it."""
    groups = param_groups(model, cfg.weight_decay)
    kwargs = dict(lr=cfg.learning_rate, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
    params = [p for g in groups for p in g["params"]]
    fusable = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.bfloat16, torch.float16)
                  for p in params)
    if cfg.adam_fused and fusable:
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not ckpt_root.is_dir():
        return []
    found = []
    for p in ckpt_root.iterdir():
        if p.is_dir() and p.name.startswith("checkpoint-") and (p / STATE_FILE).is_file():
            try:
                found.append((int(p.name.split("-", 1)[1]), p))
            except ValueError:
                continue
    return [p for _, p in sorted(found)]


def build_accelerator(cfg: TrainConfig):
    """The Accelerator for a run. Create it BEFORE loading the model when DeepSpeed ZeRO-3 is configured
    (``zero3_init_flag``), so transformers shards the weights while loading."""
    from accelerate import Accelerator
    from accelerate.state import PartialState
    from accelerate.utils import GradientAccumulationPlugin

    # Without a GPU, ask for CPU explicitly: that is what turns a torchrun/`accelerate launch` environment
    # (WORLD_SIZE > 1) into multi-process CPU training over gloo.
    cpu = not torch.cuda.is_available()
    nproc = PartialState(cpu=cpu).num_processes
    accumulation = accumulation_steps(cfg, nproc)
    acc = Accelerator(
        cpu=cpu,
        mixed_precision=cfg.mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=accumulation, sync_with_dataloader=False),
    )
    plugin = getattr(acc.state, "deepspeed_plugin", None)
    if plugin is not None:  # no dataloader is prepared, so fill DeepSpeed's "auto" batch fields ourselves
        ds = plugin.deepspeed_config
        ds["train_micro_batch_size_per_gpu"] = cfg.per_device_batch_size
        ds["gradient_accumulation_steps"] = accumulation
        ds["train_batch_size"] = cfg.effective_batch_size
        if ds.get("gradient_clipping", "auto") == "auto":
            ds["gradient_clipping"] = cfg.max_grad_norm if cfg.max_grad_norm > 0 else 0.0
    return acc


def fill_deepspeed_sizes(ds: dict, model_config) -> None:
    """Fill the model-size-dependent "auto" ZeRO fields from the hidden size, with accelerate's own formulas.

    accelerate fills them from ``.config`` of the module it prepares; ours is the step wrapper (model + task),
    so it cannot, and refuses the config (seen on the H100). Values already set in the JSON are kept."""
    hidden = getattr(model_config, "hidden_size", None) or max(getattr(model_config, "hidden_sizes", None) or [0])
    if not hidden:
        return
    zero = ds.get("zero_optimization", {})
    for key, value in (("reduce_bucket_size", hidden * hidden),
                       ("stage3_prefetch_bucket_size", int(0.9 * hidden * hidden)),
                       ("stage3_param_persistence_threshold", 10 * hidden)):
        if zero.get(key) == "auto":
            zero[key] = value


class Trainer:
    def __init__(self, cfg: TrainConfig, model: nn.Module, task: Task, items: Sequence[Any],
                 output_dir: str | os.PathLike, *, run_config: dict | None = None, desc: str = "train",
                 accelerator=None):
        self.cfg, self.task, self.items = cfg, task, items
        self.out = Path(output_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.run_config = run_config or {}
        self.desc = desc
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        logging.getLogger("accelerate").setLevel(logging.WARNING)  # per-file INFO lines on every checkpoint
        self.accelerator = accelerator if accelerator is not None else build_accelerator(cfg)
        self.plan = make_plan(len(items), cfg, self.accelerator.num_processes)
        self.raw_model = model
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(model, "config"):
                model.config.use_cache = False
        if cfg.cpu_fast_paths and self.accelerator.device.type == "cpu":
            from tulu.train.cpu import install_embedding_grad, tune_malloc

            tune_malloc()
            install_embedding_grad(model)
        self.step_module = _StepModule(model, task)
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None:
            fill_deepspeed_sizes(plugin.deepspeed_config, getattr(model, "config", None))
        optimizer = make_optimizer(model, cfg)
        self.wrapped, self.optimizer = self.accelerator.prepare(self.step_module, optimizer)
        self.warmup = warmup_steps_for(self.plan.total_steps, cfg.warmup_ratio)
        self.fingerprint = stable_hash(len(items), self.plan.effective_batch, self.plan.steps_per_epoch,
                                       cfg.seed, [task.num_tokens(items[i]) for i in range(min(len(items), 256))])

    # ------------------------------------------------------------------------------------- helpers
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def lr_at(self, step: int) -> float:
        return self.cfg.learning_rate * lr_factor(step, self.plan.total_steps, self.warmup, self.cfg.lr_scheduler)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _my_slots(self, indices: list[int]) -> list[list[int]]:
        """This process's micro-batches: slots p, p+P, p+2P, ... of the step's deal."""
        slots = deal(indices, self.plan.slots)
        p, P = self.accelerator.process_index, self.plan.num_processes
        return [slots[p + a * P] for a in range(self.plan.accumulation)]

    # ------------------------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, step: int, history_tail: dict | None = None) -> Path:
        acc = self.accelerator
        final = self.ckpt_root / f"checkpoint-{step}"
        tmp = self.ckpt_root / f".checkpoint-{step}.tmp"
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=False)
        acc.wait_for_everyone()
        if self.is_main:
            atomic_write_json(tmp / STATE_FILE, {
                "global_step": step, "total_steps": self.plan.total_steps,
                "steps_per_epoch": self.plan.steps_per_epoch, "epoch": step / self.plan.steps_per_epoch,
                "fingerprint": self.fingerprint, "num_processes": self.plan.num_processes,
                "last_metrics": history_tail or {},
            })
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in list_checkpoints(self.ckpt_root)[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return final

    def _find_resume(self) -> Path | None:
        r = self.cfg.resume
        if r == "never":
            return None
        if r == "auto":
            found = list_checkpoints(self.ckpt_root)
            return found[-1] if found else None
        path = Path(r)
        if not (path / STATE_FILE).is_file():
            raise ResumeError(f"train.resume: {path} is not a complete checkpoint (no {STATE_FILE})")
        return path

    def load_checkpoint(self, path: Path) -> int:
        state = json.loads((path / STATE_FILE).read_text())
        if state.get("fingerprint") != self.fingerprint or state.get("total_steps") != self.plan.total_steps:
            raise ResumeError(
                f"{path}: checkpoint was written for other data or batch settings (total_steps "
                f"{state.get('total_steps')} vs {self.plan.total_steps}); use train.resume=never or another output_dir")
        self.accelerator.load_state(str(path))
        return int(state["global_step"])

    # ----------------------------------------------------------------------------------------- train
    def train(self) -> TrainResult:
        cfg, acc, plan = self.cfg, self.accelerator, self.plan
        seed_everything(cfg.seed)
        start = 0
        resume_path = self._find_resume()
        if resume_path is not None:
            start = self.load_checkpoint(resume_path)
            log.info("resumed from %s (step %d of %d)", resume_path, start, plan.total_steps)
        if self.is_main:
            shutil.rmtree(self.ckpt_root / f".checkpoint-{start}.tmp", ignore_errors=True)
        logger = MetricsLog(self.out, cfg, self.run_config, self.is_main, start)
        if self.is_main:
            log.info("training: %d items, %d steps (%d per epoch), %d processes x %d accumulation x %d per micro-batch",
                     plan.num_items, plan.total_steps, plan.steps_per_epoch, plan.num_processes, plan.accumulation,
                     cfg.per_device_batch_size)
        history: list[dict] = []
        last: dict[str, float] = {}
        bar = (progress(total=plan.total_steps, initial=start, desc=self.desc, unit="step", log_hidden=False)
               if self.is_main else None)  # hidden: the loop logs its own lines, with the loss
        t_run = time.perf_counter()
        tokens_run = 0
        params = [p for p in self.wrapped.parameters() if p.requires_grad]
        try:
            for step in range(start, plan.total_steps):
                t0 = time.perf_counter()
                indices = step_items(plan, cfg.seed, step)
                denom = float(sum(self.task.weight(self.items[i]) for i in indices))
                step_tokens = sum(self.task.num_tokens(self.items[i]) for i in indices)
                scale = plan.num_processes * plan.accumulation / max(denom, 1e-12)
                lr = self.lr_at(step)
                self._set_lr(lr)
                self.wrapped.train()
                # Accumulate on the device: one device->host transfer per step, not one per micro-batch.
                loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
                sums: dict[str, torch.Tensor] = {}
                for mb in self._my_slots(indices):
                    batch = _to_device(self.task.collate([self.items[i] for i in mb]), acc.device)
                    with acc.accumulate(self.wrapped), acc.autocast():
                        loss, mb_sums = self.wrapped(batch)
                        acc.backward(loss * scale)
                    loss_sum += loss.detach().double()
                    for k, v in mb_sums.items():
                        v = v.detach().to(acc.device, torch.float64)
                        sums[k] = sums[k] + v if k in sums else v
                if cfg.max_grad_norm > 0:
                    norm = acc.clip_grad_norm_(params, cfg.max_grad_norm)
                else:
                    norm = acc.clip_grad_norm_(params, float("inf"))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                keys = sorted(sums)
                vec = torch.stack([loss_sum] + [sums[k] for k in keys])
                vec = acc.reduce(vec, reduction="sum").double().cpu().tolist()
                dt = time.perf_counter() - t0
                tokens_run += step_tokens
                record = {"step": step + 1, "epoch": round((step + 1) / plan.steps_per_epoch, 4), "lr": lr,
                          "loss": vec[0] / denom,
                          "grad_norm": float(norm) if norm is not None else float("nan"),
                          "sequences": len(indices), "tokens": step_tokens,
                          "tokens_per_s": step_tokens / dt if dt > 0 else 0.0, "step_time_s": dt}
                record.update(self.task.summarize(dict(zip(keys, vec[1:])), denom))
                history.append(record)
                last = record
                if (step + 1) % cfg.log_every == 0 or step + 1 == plan.total_steps:
                    logger.write(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{record['loss']:.4g}", tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
                    bar.update(1)
                    if bar.disable and (step + 1) % max(1, plan.total_steps // 10) == 0:
                        # No bar (CI, or output to a file): a progress line every ~10% instead.
                        eta = (plan.total_steps - step - 1) * (time.perf_counter() - t_run) / max(1, step + 1 - start)
                        log.info("%s: step %d/%d, loss %.4g, %.0f tokens/s, ETA %.0fs", self.desc, step + 1,
                                 plan.total_steps, record["loss"], record["tokens_per_s"], eta)
                done = step + 1
                if cfg.checkpoint_every and done % cfg.checkpoint_every == 0 and done < plan.total_steps:
                    self.save_checkpoint(done, record)
        finally:
            if bar is not None:
                bar.close()
            logger.close()
        elapsed = time.perf_counter() - t_run
        if history:
            last = dict(last, run_tokens_per_s=tokens_run / elapsed if elapsed > 0 else 0.0)
        return TrainResult(global_step=plan.total_steps, total_steps=plan.total_steps, final_metrics=last,
                           history=history, resumed_from=start)

    # ----------------------------------------------------------------------------------- final model
    def unwrapped_model(self) -> nn.Module:
        return self.accelerator.unwrap_model(self.wrapped).model

    @contextlib.contextmanager
    def evaluation_model(self):
        """The trained model with whole parameters and the run's mixed precision, for an evaluation pass after
        training (held-out DPO/RM metrics). Every process must enter it: under FSDP (``summon_full_params``)
        and DeepSpeed ZeRO-3 (``GatheredParameters``) gathering the weights is a collective, and each process
        then holds the whole model for the pass. Without this, FSDP's unwrapped module mixes bf16 and fp32
        weights and ZeRO-3's holds empty partitions."""
        acc, model = self.accelerator, self.unwrapped_model()
        with contextlib.ExitStack() as stack:
            kind = acc.distributed_type.value
            if kind == "FSDP":
                from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

                if isinstance(self.wrapped, FSDP):
                    stack.enter_context(FSDP.summon_full_params(self.wrapped, writeback=False))
            elif kind == "DEEPSPEED" and any(hasattr(p, "ds_id") for p in model.parameters()):
                # ZeRO-3 partitioned parameters (the plugin's zero_stage is unset when a JSON config is used)
                import deepspeed

                stack.enter_context(deepspeed.zero.GatheredParameters(list(model.parameters())))
            stack.enter_context(acc.autocast())
            yield model

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The full (gathered under FSDP/ZeRO-3) state dict of the raw model, on every process's main."""
        sd = self.accelerator.get_state_dict(self.wrapped)
        return {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}

    def save_model(self, tokenizer, out_dir: str | os.PathLike, *, model_card: str | None = None,
                   merge_lora: bool = True) -> Path | None:
        """Write the trained model as a transformers folder (main process; all processes must call it)."""
        from tulu.models import save_model

        acc = self.accelerator
        acc.wait_for_everyone()
        model = self.unwrapped_model()
        is_peft = hasattr(model, "get_base_model")
        sharded = acc.distributed_type.value in ("FSDP", "DEEPSPEED")
        state = self.full_state_dict() if sharded and not is_peft else None  # a collective: every process
        out = None
        if self.is_main:
            if is_peft and merge_lora:
                model = model.merge_and_unload()
            elif state is not None:
                model = _with_state(model, state)
            if hasattr(model, "gradient_checkpointing_disable") and self.cfg.gradient_checkpointing:
                model.gradient_checkpointing_disable()
            if hasattr(model, "config"):
                model.config.use_cache = True
            out = save_model(model, tokenizer, out_dir, model_card=model_card)
        acc.wait_for_everyone()
        return out


def _with_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """A model whose ``save_pretrained`` writes ``state`` (the gathered full weights)."""

    class _Saver:
        def __init__(self, m):
            self.m = m

        def save_pretrained(self, path, **kw):
            return self.m.save_pretrained(path, state_dict=state, **kw)

        def __getattr__(self, name):
            return getattr(self.m, name)

    return _Saver(model)  # type: ignore[return-value]
