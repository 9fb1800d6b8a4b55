"""Config pieces shared by every trainer (SFT, DPO, RM, RL): the ``train:`` block of a recipe.

Numbers in the help texts that come from the Tulu 3 report (Lambert et al. 2024, "Tulu 3: Pushing Frontiers
in Open Language Model Post-Training", Table 3 for SFT) or from its public code (allenai/open-instruct,
``finetune.py``) say so. The defaults are the report's SFT numbers for the 8B model; other trainers and the
CPU recipes override them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tulu.config import option

Precision = Literal["auto", "no", "bf16", "fp16"]
Schedule = Literal["linear", "constant", "cosine"]


@dataclass
class ModelConfig:
    path: str = option("embedded", "The model to start from: 'embedded' (SmolLM2-135M-Instruct, offline), a local "
                                   "transformers folder, or a hub id (Tulu 3: Llama-3.1-8B for SFT, then each "
                                   "stage starts from the previous stage's model).")
    dtype: str = option("auto", "Dtype of the trained weights: auto (fp32 on CPU, bf16 on GPUs that have it), "
                                "float32, bfloat16. The compute dtype is train.mixed_precision's (auto: bf16 "
                                "autocast over fp32 weights where the host measures it faster). For exact AdamW "
                                "updates keep fp32 weights and let train.mixed_precision pick bf16 compute.")


@dataclass
class TrainConfig:
    seed: int = option(123, "One seed for Python, NumPy, torch, model init (LoRA) and the data order "
                            "(Tulu 3 SFT: 123). Resuming restores every RNG state, so a resumed run matches.")
    learning_rate: float = option(5e-6, "Peak learning rate of AdamW (Tulu 3 SFT: 5e-6 for 8B, 2e-6 for 70B).")
    lr_scheduler: Schedule = option("linear", "Schedule after warmup: linear decay to 0 (Tulu 3), constant, "
                                              "or cosine decay to 0.")
    warmup_ratio: float = option(0.03, "Fraction of the optimizer steps spent warming up linearly from 0 "
                                       "(Tulu 3 SFT: 0.03). Warmup steps = ceil(ratio * total steps), as transformers.")
    weight_decay: float = option(0.0, "AdamW decoupled weight decay, applied to matrices only, not to norms or "
                                      "biases (Tulu 3 SFT: 0).")
    adam_beta1: float = option(0.9, "AdamW beta1.")
    adam_beta2: float = option(0.999, "AdamW beta2.")
    adam_epsilon: float = option(1e-8, "AdamW epsilon.")
    adam_fused: bool = option(True, "Use torch's fused AdamW kernel (CPU and CUDA; the same update, measured ~4x "
                                    "faster than the default multi-tensor kernel on this CPU for 135M parameters).")
    num_epochs: int = option(2, "Passes over the training data (Tulu 3 SFT: 2).")
    max_steps: int = option(0, "Stop after this many optimizer steps (0: run num_epochs). The schedule is "
                               "built for the smaller of the two.")
    effective_batch_size: int = option(128, "Sequences per optimizer step, over all processes and "
                                            "accumulation steps (Tulu 3: 128 = per-device batch x accumulation x "
                                            "GPUs). Must be a multiple of per_device_batch_size x processes.")
    per_device_batch_size: int = option(1, "Sequences per micro-batch on each process. For SFT they are packed "
                                           "into one padding-free row. Gradient accumulation steps = "
                                           "effective_batch_size / (per_device_batch_size x processes).")
    max_grad_norm: float = option(0.0, "Clip the global gradient norm to this value (0: no clipping; "
                                       "open-instruct's SFT default is no clipping). The norm is logged either way.")
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass to save memory "
                                                 "(Tulu 3 uses it for 8B/70B; slower, so off on CPU).")
    mixed_precision: Precision = option(
        "auto", "Compute dtype of the training step: auto | no | bf16 | fp16. bf16/fp16: autocast, weights and "
                "optimizer state stay in model.dtype (fp32 master weights; Tulu 3 trains in bf16 on GPUs). no: "
                "the weights' own dtype. auto: bf16 autocast on a GPU with bf16, and on a CPU with native bf16 "
                "(avx512_bf16 / AMX) where a once-per-machine micro-measurement at the model's shapes finds it "
                "faster; fp32 elsewhere, and when model.dtype is not fp32 (tulu.precision; the choice and why "
                "are logged and written to summary.json). YAML's bare `no` is read as 'no'.")
    checkpoint_every: int = option(0, "Save a resumable checkpoint (model, optimizer, schedule position, every RNG "
                                      "state, data position) every N optimizer steps (0: only at the end).")
    keep_checkpoints: int = option(2, "How many of the newest checkpoints to keep (older ones are deleted).")
    resume: str = option("auto", "'auto': continue from the newest complete checkpoint in output_dir if there is "
                                 "one; 'never': start fresh (existing checkpoints are ignored); or a checkpoint path.")
    log_every: int = option(1, "Write metrics (JSONL, TensorBoard, W&B) every N optimizer steps.")
    report_to: list[str] = option(default_factory=list, help="Extra metric sinks besides metrics.jsonl: "
                                                             "'tensorboard' and/or 'wandb' (optional packages).")
    wandb_project: str = option("tulu", "W&B project name when report_to contains 'wandb'.")
    num_threads: int = option(0, "torch CPU threads per process (0: leave torch's default).")
    cpu_fast_paths: bool = option(True, "When training on CPU: keep large freed blocks in glibc's heap instead of "
                                        "re-mapping them every step, and compute the input embedding's gradient with "
                                        "a dense index_add (tulu.train.cpu; the same results, measured ~20% faster "
                                        "per SFT step on 2 cores).")

    def __post_init__(self) -> None:
        if self.mixed_precision is False:  # TrainConfig(mixed_precision=False), as YAML would read `no`
            self.mixed_precision = "no"
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(f"train.mixed_precision: {self.mixed_precision!r} is not one of auto, no, bf16, fp16")
        if self.learning_rate <= 0:
            raise ValueError(f"train.learning_rate: must be > 0, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"train.warmup_ratio: must be in [0, 1), got {self.warmup_ratio}")
        if self.num_epochs < 1 and self.max_steps <= 0:
            raise ValueError("train.num_epochs: must be >= 1 (or set train.max_steps)")
        if self.effective_batch_size < 1 or self.per_device_batch_size < 1:
            raise ValueError("train.effective_batch_size and train.per_device_batch_size must be >= 1")
        if self.effective_batch_size % self.per_device_batch_size:
            raise ValueError(f"train.effective_batch_size ({self.effective_batch_size}) must be a multiple of "
                             f"train.per_device_batch_size ({self.per_device_batch_size})")
        if self.max_grad_norm < 0:
            raise ValueError(f"train.max_grad_norm: must be >= 0 (0 = no clipping), got {self.max_grad_norm}")
        if self.keep_checkpoints < 1:
            raise ValueError("train.keep_checkpoints: must be >= 1")
        for sink in self.report_to:
            if sink not in ("tensorboard", "wandb"):
                raise ValueError(f"train.report_to: unknown sink {sink!r} (choose from tensorboard, wandb)")


@dataclass
class LoraConfig:
    enabled: bool = option(False, "Train LoRA adapters (peft) instead of all weights.")
    r: int = option(16, "LoRA rank.")
    alpha: int = option(32, "LoRA alpha (the update is scaled by alpha / r).")
    dropout: float = option(0.0, "Dropout on the LoRA input.")
    target_modules: list[str] = option(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        help="Module names that get adapters (Llama-style names by default).")
    merge_on_save: bool = option(True, "Merge the adapters into the weights when writing the final model, so the "
                                       "output is a plain transformers folder; false writes the adapter folder.")


def apply_lora(model, lora: LoraConfig, seed: int):
    """Wrap a causal LM with peft LoRA adapters as configured (SFT and DPO share this). The adapters' A
    matrices are initialised at random: from ``seed`` (the run's train.seed), so a rerun is the same run."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    pcfg = PeftLoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                          target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(model, pcfg)
