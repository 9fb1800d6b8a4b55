"""Shared fixtures. Tests never touch the network: hub access is switched off for the whole session."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TULU_PROGRESS", "0")

import pytest  # noqa: E402
import torch  # noqa: E402

# `make test` runs two pytest workers on two cores: one torch thread each. Two threads per worker
# oversubscribe the cores and made small-model ops ~10x slower in measurement.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tokenizer():
    """The embedded SmolLM2 tokenizer (converts the embedded model into the user cache once)."""
    from tulu.models import load_tokenizer

    return load_tokenizer("embedded")


@pytest.fixture()
def tiny(tokenizer):
    """A fresh tiny random Llama (seed 0) with the embedded tokenizer: (model, tokenizer)."""
    from tulu.models import tiny_model

    return tiny_model(seed=0, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2-135M-Instruct in fp32, loaded once per session: (model, tokenizer)."""
    from tulu.models import load_model_and_tokenizer

    return load_model_and_tokenizer("embedded", dtype="float32", device="cpu")
