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


@pytest.fixture()
def compiled_kernels() -> None:
    """Tests of the compiled decode step. Where a C++ compiler exists (and always in CI, where `make setup`
    installs one) a kernel that does not build is a FAILURE with the compiler's message, never a silent skip.
    Only a machine without any compiler skips them (generation then runs its Python step)."""
    from tulu.rollout import kernels

    if kernels.available():
        return
    if os.environ.get("TULU_KERNELS", "1").lower() in ("0", "false", "no", "off"):
        pytest.skip("compiled decode step switched off by TULU_KERNELS=0")
    if kernels._compiler() is None and not os.environ.get("CI"):
        pytest.skip("no C++ compiler on this machine: the compiled decode step cannot be built")
    try:
        kernels.build()
    except kernels.KernelBuildError as exc:
        pytest.fail(f"the compiled decode step failed to build: {exc}")
    pytest.fail("the compiled decode step built but did not load (see the warning in the log)")

