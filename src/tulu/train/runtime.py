"""What the step engine is built from: the accelerator, the optimizer, the metrics log and checkpoint listing.

tulu.train.engine puts these together; they live apart so each can be read (and tested) on its own.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tulu.train.common import TrainConfig
from tulu.train.plan import accumulation_steps
from tulu.utils import atomic_write_text, stable_hash

log = logging.getLogger(__name__)
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"


# --------------------------------------------------------------------------------------------- logging
class MetricsLog:
    """metrics.jsonl (+ TensorBoard / W&B). Only the main process writes. Opened once per run: lines a
    killed run wrote after its last checkpoint are dropped then, so the log matches the resumed state."""

    def __init__(self, out_dir: Path, cfg: TrainConfig, run_config: dict, enabled: bool, resume_step: int):
        self.path = out_dir / METRICS_FILE
        self.enabled = enabled
        self.tb = self.wandb = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
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
        with open(self.path, "a") as fh:  # one whole line per append
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        step = record["step"]
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=step)

    def first(self, key: str) -> float | None:
        """``key`` of the first logged line (e.g. the first loss of a run that was resumed)."""
        if not self.path.is_file():
            return None
        for line in self.path.read_text().splitlines():
            if line.strip():
                return json.loads(line).get(key)
        return None

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


# ------------------------------------------------------------------------------------- optimizer, setup
def param_groups(model: nn.Module, weight_decay: float, lr: float | None = None) -> list[dict]:
    """Decay matrices only (norm weights and biases are 1-D). ``lr`` sets a group learning rate."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    extra = {} if lr is None else {"lr": lr}
    groups = [{"params": decay, "weight_decay": weight_decay, **extra}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0, **extra})
    return groups


def make_optimizer(model: nn.Module | dict[str, nn.Module], cfg: TrainConfig,
                   lr_scales: dict[str, float] | None = None) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters (one group pair per module when given several, each with its own
    learning-rate scale); the fused kernel when asked and every parameter can use it."""
    if isinstance(model, dict):
        groups = []
        for name, m in model.items():
            scale = (lr_scales or {}).get(name, 1.0)
            for g in param_groups(m, cfg.weight_decay, cfg.learning_rate * scale):
                groups.append(dict(g, lr_scale=scale))
    else:
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


def accelerate_precision(mixed_precision: str, cpu: bool) -> str:
    """What accelerate is told. On a CPU the engine enters bf16 autocast itself, around the whole loss (our
    loss calls the backbone and the LM head directly, past the model's ``forward`` that accelerate wraps), so
    accelerate gets 'no' unless fp16 was asked. On a GPU accelerate does it (FSDP / DeepSpeed need to know):
    'auto' becomes bf16 where the GPU has it."""
    if cpu:
        return "fp16" if mixed_precision == "fp16" else "no"
    if mixed_precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return mixed_precision


def build_accelerator(cfg: TrainConfig):
    """The Accelerator for a run. The engine creates it BEFORE the model is loaded, so that DeepSpeed ZeRO-3
    (``zero3_init_flag``) shards the weights while transformers loads them."""
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
        mixed_precision=accelerate_precision(cfg.mixed_precision, cpu),
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


# ------------------------------------------------------------------------------------- engine helpers
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
