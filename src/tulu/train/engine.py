"""The step engine under every trainer (SFT, DPO, RM, RLVR). See docs/engine.md for a walk-through.

A trainer drives it in four moves::

    engine = Engine(cfg.train, output_dir, run_config=to_dict(cfg), desc="sft")   # 1. setup
    model = load_model(...)                                                       #    (after the accelerator)
    engine.prepare(model, task)                                                   # 2. model(s) + optimizer
    result = train_epochs(engine, items)       # 3. a batch source calls engine.step() (or an RL loop does)
    engine.save_model(tokenizer, out / "model", model_card=...)                   # 4. the result

**Setup** (``Engine.__init__``) seeds Python/NumPy/torch from ``train.seed``, sets the torch threads, and
builds the accelerate ``Accelerator`` *before* any model is loaded (DeepSpeed ZeRO-3 shards the weights
while transformers loads them, so the order matters).

**The Task** is an algorithm's batch -> loss step:

* ``collate(items) -> batch``: one micro-batch (tensors, or any object with ``.to(device)``);
* ``loss(model, batch) -> (loss_sum, sums)``: ``loss_sum`` is a scalar summed over the micro-batch's items
  (NOT averaged); ``sums`` maps metric names to detached scalars that add up over micro-batches and
  processes. ``model`` is the raw model, or a ``ModuleDict`` when several modules were prepared. The engine
  runs this as the ``forward`` of a wrapper module, so DDP/FSDP/DeepSpeed see one forward per micro-batch;
* ``weight(item)``, ``num_tokens(item)``, ``summarize(sums, denominator)``: see :class:`Task`.

**A step** (:meth:`Engine.step`) takes this process's micro-batches of one optimizer step and the step
normaliser ``D``. The back-propagated loss is ``sum(loss sums of all micro-batches on all processes) / D``:
``D`` is computed from the items themselves (1 per sequence for SFT's sum reduction, target tokens for a
token mean, 1 per pair for DPO, tokens or sequences for RL), so every process knows it without
communication and 1 process == N processes. The step sets the learning rate from the schedule, accumulates
gradients, clips, steps the optimizer, reduces the metrics across processes, appends one line to
``metrics.jsonl`` (and TensorBoard/W&B) and advances the progress bar.

**Batch sources** decide what a step sees:

* :func:`train_epochs`: epochs over a fixed dataset (SFT, DPO, RM). A step takes ``effective_batch_size``
  items of a per-epoch permutation seeded by (seed, epoch), dealt into ``processes x accumulation``
  micro-batch slots. The data cursor is the step count itself.
* an RL loop (tulu.train.rlvr): generate a batch of rollouts, then call ``step`` on minibatches of it for K
  passes; it registers its prompt cursor and generator RNG with :meth:`Engine.register_state`.

**What RLVR needs, and where it is:**

* two trainable modules (policy and value model) with their own learning rates: ``prepare({"policy": p,
  "value": v}, task, lr_scales={...})`` (one AdamW with a parameter group per module);
* a frozen reference model, never loaded when β = 0: :meth:`Engine.prepare_frozen` (the caller decides
  whether to load it);
* per-token log-probs at a sampling temperature: :func:`tulu.train.logprobs.label_logprobs`
  (``temperature=``) on the hidden states from :func:`tulu.train.logprobs.label_hidden`;
* a per-position value head: the same ``label_hidden`` positions through the value model's score head;
* handing the current weights to a generation backend after a step, LoRA merged on the way:
  :meth:`Engine.sync_weights`.

**Checkpoints** (``output_dir/checkpoints/checkpoint-<step>``) hold accelerate's state (model(s), optimizer,
every process's Python/NumPy/torch RNG state; sharded under FSDP/DeepSpeed), ``trainer_state.json`` (step,
schedule, a fingerprint of the data and batch settings) and ``extra_state.pt`` (what the driver registered).
They are written to a temporary folder and renamed when complete, so a run killed at any moment resumes
from the last complete one and ends with the same weights. ``metrics.jsonl`` is cut back to the resumed
step once, then only appended to.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
from torch import nn

from tulu.precision import PrecisionChoice, Shapes, weights_dtype, choose as choose_precision
from tulu.train.common import TrainConfig
from tulu.train.plan import (accumulation_steps, lr_factor, make_plan, my_micro_batches, same_rates_so_far,
                             step_items, warmup_steps_for)
from tulu.train.runtime import (METRICS_FILE, STATE_FILE, MetricsLog, _to_device, _with_state,  # noqa: F401 (re-exported)
                                build_accelerator, fill_deepspeed_sizes, list_checkpoints, make_optimizer, param_groups)
from tulu.utils import atomic_write_json, progress, seed_everything, stable_hash

log = logging.getLogger(__name__)
EXTRA_STATE_FILE = "extra_state.pt"


class ResumeError(RuntimeError):
    """A checkpoint that does not fit this run (other data, other batch layout)."""


# ------------------------------------------------------------------------------------------- the Task
class Task:
    """Base class of an algorithm's batch -> loss step (see the module docstring)."""

    def weight(self, item: Any) -> float:
        """The item's share of the step normaliser ``D``."""
        return 1.0

    def num_tokens(self, item: Any) -> int:
        """Tokens the item puts through the model (for tokens/s)."""
        return 0

    def collate(self, items: Sequence[Any]) -> Any:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def summarize(self, sums: dict[str, float], denominator: float) -> dict[str, float]:
        """Turn the step's summed metrics into logged values."""
        return {}


class _StepModule(nn.Module):
    """Makes ``task.loss(model, batch)`` the forward pass that accelerate wraps (DDP/FSDP/DeepSpeed)."""

    def __init__(self, model: nn.Module, task: Task):
        super().__init__()
        self.model = model
        self._task = task  # plain attribute: not a submodule

    def forward(self, batch: Any):
        return self._task.loss(self.model, batch)


class StateHolder(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


# ------------------------------------------------------------------------------------------- results
@dataclass
class TrainResult:
    global_step: int
    total_steps: int
    final_metrics: dict[str, float]
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0
    first_loss: float | None = None


@dataclass
class RunSummary:
    """What every trainer's ``run()`` returns (and writes as ``summary.json``): the pipeline reads it as is."""

    stage: str
    model_dir: str | None
    steps: int
    resumed_from: int
    first_loss: float | None
    final_metrics: dict[str, float]
    heldout_before: dict[str, float] = field(default_factory=dict)
    heldout_after: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    precision: dict[str, Any] = field(default_factory=dict)  # Engine.precision: compute dtype and why

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, out_dir: str | os.PathLike) -> Path:
        return atomic_write_json(Path(out_dir) / "summary.json", self.to_dict())


# -------------------------------------------------------------------------------------------- engine
class Engine:
    """Setup, one optimizer step at a time, checkpoint/resume, and the final model (module docstring)."""

    def __init__(self, cfg: TrainConfig, output_dir: str | os.PathLike, *, run_config: dict | None = None,
                 desc: str = "train"):
        self.cfg = cfg
        self.out = Path(output_dir)
        self.ckpt_root = self.out / "checkpoints"
        self.run_config = run_config or {}
        self.desc = desc
        seed_everything(cfg.seed)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        logging.getLogger("accelerate").setLevel(logging.WARNING)  # per-file INFO lines on every checkpoint
        self.accelerator = build_accelerator(cfg)
        self.accumulation = accumulation_steps(cfg, self.accelerator.num_processes)
        self.global_step = 0
        self.total_steps = 0
        self.warmup = 0
        self.fingerprint = ""
        self.show = ("loss",)  # metrics shown on the progress bar besides tokens/s
        self._extra: dict[str, StateHolder] = {}
        self._names: list[str] | None = None
        self._last_saved = 0
        self._logger: MetricsLog | None = None
        self._bar = None
        self._t_run = 0.0
        self._tokens_run = 0
        self._started_at = 0
        self.precision: PrecisionChoice | None = None  # resolved in prepare(), when the model is known

    # --------------------------------------------------------------------------------------- setup
    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def prepare(self, model: nn.Module | dict[str, nn.Module], task: Task, *,
                lr_scales: dict[str, float] | None = None) -> None:
        """Wrap the trainable module(s) and the task for the accelerator and build the optimizer. Several
        modules (``{"policy": p, "value": v}``) reach ``task.loss`` as one ``ModuleDict``."""
        cfg = self.cfg
        modules = model if isinstance(model, dict) else {"model": model}
        for m in modules.values():
            if cfg.gradient_checkpointing:
                m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                if hasattr(m, "config"):
                    m.config.use_cache = False
            if cfg.cpu_fast_paths and self.device.type == "cpu":
                from tulu.train.cpu import install_embedding_grad, tune_malloc

                tune_malloc()
                install_embedding_grad(m)
        self._names = list(model) if isinstance(model, dict) else None
        self.resolve_precision(next(iter(modules.values())))
        body = nn.ModuleDict(model) if isinstance(model, dict) else model
        self.task = task
        plugin = getattr(self.accelerator.state, "deepspeed_plugin", None)
        if plugin is not None:
            fill_deepspeed_sizes(plugin.deepspeed_config, getattr(next(iter(modules.values())), "config", None))
        optimizer = make_optimizer(model, cfg, lr_scales)
        self.wrapped, self.optimizer = self.accelerator.prepare(_StepModule(body, task), optimizer)
        self._params = [p for p in self.wrapped.parameters() if p.requires_grad]

    def resolve_precision(self, model: nn.Module) -> PrecisionChoice:
        """Decide (once) the compute precision for ``model`` (``train.mixed_precision``; see tulu.precision)
        and log it. :meth:`prepare` calls it; a trainer calls it earlier when a pass before training (DPO's
        reference log-probs) must run in the same precision as the training step."""
        if self.precision is None:
            self.precision = choose_precision(self.cfg.mixed_precision, self.device, weights_dtype(model),
                                              Shapes.of(model))
            if self.is_main:
                log.info("%s: %s", self.desc, self.precision.describe())
        return self.precision

    def autocast(self):
        """The run's compute precision as a context: bf16 autocast when :attr:`precision` says so (the engine
        wraps every micro-batch's loss in it; a driver wraps its own no-grad passes of the trained model, e.g.
        RL's old log-probs, so both see the same numbers), else nothing. On a GPU, accelerate's autocast."""
        p = self.precision
        if self.device.type != "cpu" or (p is not None and p.compute == "fp16"):
            return self.accelerator.autocast()
        if p is None or not p.autocast:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def precision_record(self) -> dict:
        """The resolved precision for ``summary.json`` (empty before :meth:`prepare`)."""
        return self.precision.to_dict() if self.precision is not None else {}

    def prepare_frozen(self, model: nn.Module) -> nn.Module:
        """A model that is only run, never trained (the RL reference policy): eval mode, no gradients, on
        the training device."""
        model.requires_grad_(False)
        model.eval()
        return model.to(self.device)

    def register_state(self, name: str, holder: StateHolder) -> None:
        """Save ``holder.state_dict()`` in every checkpoint and restore it on resume (a prompt cursor, an RL
        driver's state, a generator's RNG). Values may be tensors, numbers, strings, lists and dicts."""
        self._extra[name] = holder

    def plan(self, total_steps: int, fingerprint: str = "") -> None:
        """The number of optimizer steps (the schedule runs over it) and a fingerprint of what the steps
        see, which a checkpoint must match to be resumed."""
        self.total_steps = total_steps
        self.warmup = warmup_steps_for(total_steps, self.cfg.warmup_ratio)
        self.fingerprint = fingerprint

    def lr_at(self, step: int) -> float:
        return self.cfg.learning_rate * lr_factor(step, self.total_steps, self.warmup, self.cfg.lr_scheduler)

    # ----------------------------------------------------------------------------------- resume/run
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

    def begin(self) -> int:
        """Resume from the newest checkpoint (per ``train.resume``), open the metrics log and the progress
        bar. Returns the step the run continues from (0 for a fresh run)."""
        start = 0
        path = self._find_resume()
        if path is not None:
            start = self.load_checkpoint(path)
            log.info("resumed from %s (step %d of %d)", path, start, self.total_steps)
        if self.is_main:
            shutil.rmtree(self.ckpt_root / f".checkpoint-{start}.tmp", ignore_errors=True)
        self.global_step = self._last_saved = self._started_at = start
        self._logger = MetricsLog(self.out, self.cfg, self.run_config, self.is_main, start)
        # hidden bar when not a TTY: the engine logs its own progress lines, with the loss
        self._bar = (progress(total=self.total_steps, initial=start, desc=self.desc, unit="step", log_hidden=False)
                     if self.is_main else None)
        self._t_run = time.perf_counter()
        self._tokens_run = 0
        return start

    def step(self, micro_batches: Sequence[Sequence[Any]], denominator: float, *, tokens: int = 0,
             items: int | None = None, extra: dict[str, float] | None = None) -> dict[str, float]:
        """One optimizer step over this process's ``micro_batches`` (lists of items, collated by the task).
        ``denominator`` is the step normaliser ``D`` (same on every process); ``extra`` metrics go into the
        logged record as they are. Returns the record.

        There are at most ``accumulation`` micro-batches (effective batch / (per-device batch x processes)).
        Fewer (an RL minibatch that lost groups to dynamic sampling) are padded with empty ones, which run no
        forward pass: accelerate counts micro-steps to decide when gradients synchronise and the optimizer
        steps, and divides every loss by the accumulation, so the count must match. With several processes,
        every process must then hold a micro-batch in the same slots (DDP synchronises on the last one)."""
        cfg, acc = self.cfg, self.accelerator
        if self._logger is None:
            raise RuntimeError("Engine.step: call begin() first")
        if len(micro_batches) > self.accumulation:
            raise ValueError(f"Engine.step: {len(micro_batches)} micro-batches, more than the "
                             f"{self.accumulation} of train.effective_batch_size / (per_device_batch_size x processes)")
        micro_batches = [*micro_batches, *[[]] * (self.accumulation - len(micro_batches))]
        t0 = time.perf_counter()
        step = self.global_step
        # accelerate divides each micro-batch's loss by the accumulation; D is the step's real normaliser
        scale = acc.num_processes * self.accumulation / max(denominator, 1e-12)
        lr = self.lr_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.wrapped.train()
        # Accumulate on the device: one device->host transfer per step, not one per micro-batch.
        loss_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
        sums: dict[str, torch.Tensor] = {}
        for mb in micro_batches:
            if not mb:
                with acc.accumulate(self.wrapped):  # keeps accelerate's micro-step count (see above)
                    continue
            batch = _to_device(self.task.collate(mb), acc.device)
            with acc.accumulate(self.wrapped), self.autocast():
                loss, mb_sums = self.wrapped(batch)
                acc.backward(loss * scale)
            loss_sum += loss.detach().double()
            for k, v in mb_sums.items():
                v = v.detach().to(acc.device, torch.float64)
                sums[k] = sums[k] + v if k in sums else v
        norm = acc.clip_grad_norm_(self._params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        keys = sorted(sums)
        vec = torch.stack([loss_sum] + [sums[k] for k in keys])
        vec = acc.reduce(vec, reduction="sum").double().cpu().tolist()
        dt = time.perf_counter() - t0
        self.global_step = done = step + 1
        self._tokens_run += tokens
        record = {"step": done, "lr": lr, "loss": vec[0] / denominator,
                  "grad_norm": float(norm) if norm is not None else float("nan"),
                  "sequences": items if items is not None else sum(len(mb) for mb in micro_batches),
                  "tokens": tokens, "tokens_per_s": tokens / dt if dt > 0 else 0.0, "step_time_s": dt}
        record.update(self.task.summarize(dict(zip(keys, vec[1:])), denominator))
        record.update(extra or {})
        if done % cfg.log_every == 0 or done == self.total_steps:
            self._logger.write(record)
        self._progress(record)
        return record

    def _progress(self, record: dict) -> None:
        bar, done = self._bar, self.global_step
        if bar is None:
            return
        shown = {k: f"{record[k]:.4g}" for k in self.show if isinstance(record.get(k), (int, float))}
        bar.set_postfix(**shown, tok_s=f"{record['tokens_per_s']:.0f}", refresh=False)
        bar.update(1)
        if bar.disable and done % max(1, self.total_steps // 10) == 0:
            # No bar (CI, or output to a file): a progress line every ~10% instead.
            eta = (self.total_steps - done) * (time.perf_counter() - self._t_run) / max(1, done - self._started_at)
            log.info("%s: step %d/%d, %s, %.0f tokens/s, ETA %.0fs", self.desc, done, self.total_steps,
                     ", ".join(f"{k} {v}" for k, v in shown.items()), record["tokens_per_s"], eta)

    def maybe_checkpoint(self, last_metrics: dict | None = None) -> Path | None:
        """Save a checkpoint when ``checkpoint_every`` steps have passed since the last one (never at the
        final step: the model folder is the result). A batch source calls it where resuming is exact: after
        every step for epochs over a dataset, after a whole rollout batch for RL."""
        every, done = self.cfg.checkpoint_every, self.global_step
        if every and done - self._last_saved >= every and done < self.total_steps:
            return self.save_checkpoint(done, last_metrics)
        return None

    def end(self) -> float:
        """Close the bar and the metrics log; returns the run's tokens/s."""
        if self._bar is not None:
            self._bar.close()
        if self._logger is not None:
            self._logger.close()
        elapsed = time.perf_counter() - self._t_run
        return self._tokens_run / elapsed if elapsed > 0 else 0.0

    def first_logged(self, key: str = "loss") -> float | None:
        return MetricsLog(self.out, self.cfg, {}, False, 0).first(key)

    # ------------------------------------------------------------------------------------ checkpoint
    def save_checkpoint(self, step: int, last_metrics: dict | None = None) -> Path:
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
            if self._extra:
                torch.save({k: h.state_dict() for k, h in self._extra.items()}, tmp / EXTRA_STATE_FILE)
            atomic_write_json(tmp / STATE_FILE, {
                "global_step": step, "total_steps": self.total_steps, "fingerprint": self.fingerprint,
                "num_processes": acc.num_processes, "last_metrics": last_metrics or {},
            })
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in list_checkpoints(self.ckpt_root)[:-self.cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        self._last_saved = step
        return final

    def load_checkpoint(self, path: Path) -> int:
        state = json.loads((path / STATE_FILE).read_text())
        if state.get("fingerprint") != self.fingerprint:
            raise ResumeError(f"{path}: checkpoint was written for other data or batch settings; use "
                              f"train.resume=never or another output_dir")
        planned, step = int(state.get("total_steps", -1)), int(state["global_step"])
        if planned != self.total_steps:  # max_steps changed: only where the steps taken stay the same
            if not same_rates_so_far(step, planned, self.total_steps, self.cfg.warmup_ratio, self.cfg.lr_scheduler):
                raise ResumeError(f"{path}: checkpoint was written for a run of {planned} steps, this one plans "
                                  f"{self.total_steps}; resuming needs the same learning rates for the {step} steps taken "
                                  f"and a checkpoint not past the new end. Use train.resume=never or another output_dir")
            log.warning("%s: run planned for %d steps, continuing to %d (same learning rates for the %d steps "
                        "taken)", path, planned, self.total_steps, step)
        self.accelerator.load_state(str(path))
        if self._extra:
            extra_path = path / EXTRA_STATE_FILE
            if not extra_path.is_file():
                raise ResumeError(f"{path}: no {EXTRA_STATE_FILE} (the run registers {', '.join(self._extra)})")
            saved = torch.load(extra_path, map_location="cpu", weights_only=True)
            for name, holder in self._extra.items():
                if name not in saved:
                    raise ResumeError(f"{extra_path}: no state for {name!r}")
                holder.load_state_dict(saved[name])
        return int(state["global_step"])

    # ----------------------------------------------------------------------------------- final model
    def unwrapped_model(self, name: str | None = None) -> nn.Module:
        body = self.accelerator.unwrap_model(self.wrapped).model
        if self._names is None:
            return body
        return body[name or self._names[0]]

    @contextlib.contextmanager
    def evaluation_model(self, name: str | None = None) -> Iterator[nn.Module]:
        """The trained model with whole parameters and the run's mixed precision, for an evaluation pass after
        training (held-out DPO/RM metrics). Every process must enter it: under FSDP (``summon_full_params``)
        and DeepSpeed ZeRO-3 (``GatheredParameters``) gathering the weights is a collective, and each process
        then holds the whole model for the pass. Without this, FSDP's unwrapped module mixes bf16 and fp32
        weights and ZeRO-3's holds empty partitions."""
        acc, model = self.accelerator, self.unwrapped_model(name)
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
            stack.enter_context(self.autocast())
            yield model

    def full_state_dict(self, name: str | None = None) -> dict[str, torch.Tensor]:
        """The full (gathered under FSDP/ZeRO-3) state dict of one raw model. A collective: every process."""
        sd = self.accelerator.get_state_dict(self.wrapped)
        prefix = "model." if self._names is None else f"model.{name or self._names[0]}."
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}

    def generation_state(self, name: str | None = None) -> dict[str, torch.Tensor]:
        """The current weights as a generation backend wants them: plain transformers names, LoRA merged
        (``W + scale·B·A``) without touching the trained adapters."""
        model = self.unwrapped_model(name)
        if not hasattr(model, "get_base_model"):
            return {k: v.detach() for k, v in model.state_dict().items()}
        from peft.tuners.lora import LoraLayer

        base = model.get_base_model()
        state = {k.replace(".base_layer.", "."): v.detach() for k, v in base.state_dict().items() if "lora_" not in k}
        with torch.no_grad():
            for mod_name, mod in base.named_modules():
                if isinstance(mod, LoraLayer) and not mod.merged:
                    for adapter in mod.active_adapters:
                        if adapter in mod.lora_A:
                            key = f"{mod_name}.weight"
                            state[key] = state[key] + mod.get_delta_weight(adapter).to(state[key].dtype)
        return state

    def sync_weights(self, backend, name: str | None = None) -> float:
        """Hand the current weights to a generation backend (``backend.update_weights``); returns seconds."""
        t0 = time.perf_counter()
        backend.update_weights(self.generation_state(name))
        return time.perf_counter() - t0

    def save_model(self, tokenizer, out_dir: str | os.PathLike, *, model_card: str | None = None,
                   merge_lora: bool = True, name: str | None = None) -> Path | None:
        """Write a trained model as a transformers folder (main process; all processes must call it). Packed
        attention is switched back to stock SDPA first, so the written config loads anywhere."""
        from tulu.models import save_model
        from tulu.train.attention import set_packed_attention, uses_packed_attention

        acc = self.accelerator
        acc.wait_for_everyone()
        model = self.unwrapped_model(name)
        if uses_packed_attention(model):
            set_packed_attention(model, False)
        is_peft = hasattr(model, "get_base_model")
        sharded = acc.distributed_type.value in ("FSDP", "DEEPSPEED")
        state = self.full_state_dict(name) if sharded and not is_peft else None  # a collective
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


# ------------------------------------------------------------------------------ batch source: epochs
def train_epochs(engine: Engine, items: Sequence[Any]) -> TrainResult:
    """Epochs over a fixed dataset (SFT, DPO, RM): plan the steps, resume, step, checkpoint, finish."""
    cfg, task = engine.cfg, engine.task
    plan = make_plan(len(items), cfg, engine.accelerator.num_processes)
    engine.plan(plan.total_steps, stable_hash(len(items), plan.effective_batch, plan.steps_per_epoch, cfg.seed,
                                              [task.num_tokens(items[i]) for i in range(min(len(items), 256))]))
    start = engine.begin()
    if engine.is_main:
        log.info("training: %d items, %d steps (%d per epoch), %d processes x %d accumulation x %d per micro-batch",
                 plan.num_items, plan.total_steps, plan.steps_per_epoch, plan.num_processes, plan.accumulation,
                 cfg.per_device_batch_size)
    history: list[dict] = []
    try:
        for step in range(start, plan.total_steps):
            indices = step_items(plan, cfg.seed, step)
            mine = my_micro_batches(indices, plan, engine.accelerator.process_index)
            record = engine.step([[items[i] for i in mb] for mb in mine],
                                 float(sum(task.weight(items[i]) for i in indices)),
                                 tokens=sum(task.num_tokens(items[i]) for i in indices), items=len(indices),
                                 extra={"epoch": round((step + 1) / plan.steps_per_epoch, 4)})
            history.append(record)
            engine.maybe_checkpoint(record)
    finally:
        tokens_per_s = engine.end()
    last = dict(history[-1], run_tokens_per_s=tokens_per_s) if history else {}
    first = history[0]["loss"] if history and start == 0 else engine.first_logged("loss")
    return TrainResult(global_step=plan.total_steps, total_steps=plan.total_steps, final_metrics=last,
                       history=history, resumed_from=start, first_loss=first)


__all__ = ["Engine", "Task", "TrainResult", "RunSummary", "ResumeError", "train_epochs", "build_accelerator",
           "make_optimizer", "param_groups", "list_checkpoints", "fill_deepspeed_sizes", "my_micro_batches", "fit"]


def fit(cfg: TrainConfig, model: nn.Module, task: Task, items: Sequence[Any], output_dir: str | os.PathLike, *,
        run_config: dict | None = None, desc: str = "train") -> tuple[Engine, TrainResult]:
    """Epochs over ``items`` for a caller that already holds its model (tests, benchmarks). A trainer's
    ``run()`` builds the Engine itself before loading the model (see the module docstring)."""
    engine = Engine(cfg, output_dir, run_config=run_config, desc=desc)
    engine.prepare(model, task)
    return engine, train_epochs(engine, items)
