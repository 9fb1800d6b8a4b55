"""Shared helpers for the SFT/DDP tests: a tiny model saved as a folder and a tiny recipe writer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TULU_PROGRESS": "0", "HF_HUB_OFFLINE": "1",
       "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tokenizer):
    from tulu.models import save_model, tiny_model

    model, tok = tiny_model(seed=0, tokenizer=tokenizer)
    return save_model(model, tok, tmp_path_factory.mktemp("tiny") / "tiny")


def write_recipe(path: Path, tiny_dir: Path, out: Path, **train) -> Path:
    recipe = {
        "output_dir": str(out),
        "model": {"path": str(tiny_dir)},
        "data": {"mixture": {"synthetic:math": 16, "synthetic:constraints": 16}, "max_length": 160},
        "train": {"learning_rate": 3e-3, "warmup_ratio": 0.1, "effective_batch_size": 8,
                  "per_device_batch_size": 4, "num_epochs": 2, "num_threads": 1, **train},
    }
    path.write_text(yaml.safe_dump(recipe))
    return path


@pytest.fixture()
def one_thread():
    """Tiny-model ops on a busy 2-core box run ~10x faster on 1 thread than on 2 (OpenMP waits)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
