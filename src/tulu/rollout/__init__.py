"""Generation for every stage (evaluation, RLVR, preference data): one interface, several backends.

Stable API (eval and RLVR code depend on it)::

    from tulu.rollout import SamplingParams, get_backend

    backend = get_backend("fast", model, tokenizer)            # or "hf", "vllm", "ray", "openai", "auto"
    outs = backend.generate(prompts, SamplingParams(n=4, temperature=1.0, max_new_tokens=256, seed=1))
    for out in outs:                                           # one RequestOutput per prompt, in order
        for c in out.completions:                              # n Completion objects
            c.text, c.token_ids, c.logprobs, c.finish_reason   # "stop" | "length"
    backend.update_weights(policy.state_dict())                # RLVR: push new weights (fast, hf, vllm, ray)
    backend.close()

* ``prompts``: chat messages (the chat template and assistant header are applied), token ids (used as
  they are) or plain strings (tokenized with the tokenizer's defaults, no chat template).
* ``token_ids`` include the final stop token (EOS or a ``stop_token_ids`` entry) when generation
  stopped on one; ``text`` never contains it and ends before a matched stop string.
* ``logprobs[i]`` is ``log_softmax(logits / T)`` of the i-th generated token over the whole vocabulary
  (``T = 1`` for greedy); top-k/top-p only restrict which tokens can be drawn.
* Sampled outputs are reproducible for a given ``seed``: every sample has its own generator seeded
  from (seed, prompt index, sample index).

Backends and their keyword arguments (``get_backend(name, model, tokenizer, **kw)``):

* ``hf``: HF ``generate``, the reference. ``batch_size=8``.
* ``fast``: ours (static KV cache, continuous batching, prompt KV shared across n samples).
  ``max_batch_size=32, kv_cache_gb=2.0, prefill_tokens=2048, dtype="float32"`` (weight precision of the
  decode step: float32 | bfloat16 | auto, :mod:`tulu.rollout.weights`). Llama-family models only.
* ``auto``: ``vllm`` on a GPU with vLLM installed, else ``fast`` if the model is supported, else ``hf``.
* ``vllm``: ``model`` is a path or hub id (or an ``vllm.LLM``); keyword arguments go to ``vllm.LLM``.
* ``ray``: ``model`` is a path; ``num_workers=2, worker_backend="fast", worker_kwargs={}, num_cpus_per_worker=1``.
* ``openai``: ``model`` is the served model's name; ``base_url``, ``api_key``, ``concurrency``,
  ``max_retries``, ``timeout``; ``tokenizer`` may be ``None`` (then messages go to /chat/completions).

``model`` may also be a string for ``hf``/``fast``: it is loaded with :func:`tulu.models.load_model`.
"""

from __future__ import annotations

from tulu.rollout.base import Completion, GenerationBackend, Prompt, RequestOutput, SamplingParams

BACKENDS = ("auto", "hf", "fast", "vllm", "ray", "openai")

__all__ = ["BACKENDS", "Completion", "GenerationBackend", "Prompt", "RequestOutput", "SamplingParams",
           "get_backend", "load_backend"]


def load_backend(model: str, backend: str = "auto", device: str | None = None, dtype: str = "auto") -> GenerationBackend:
    """A backend for a model given by name (a folder, ``embedded`` or a hub id), loaded with ``device`` and
    ``dtype``; ``vllm`` and ``openai`` take the name as it is. The evaluation, the pipeline and the server
    all build their backends here.

    On CPU, when the fast backend runs the model (``fast``, or ``auto`` on a supported model), the model is
    loaded in fp32 and ``dtype`` is the fast backend's weight precision (:mod:`tulu.rollout.weights`:
    ``bfloat16`` stores the decode step's weights as bf16 with fp32 arithmetic; ``auto`` does so only where a
    cached per-machine measurement shows it faster). Elsewhere ``dtype`` is the model's own dtype, as
    :func:`tulu.models.parse_dtype` reads it (``auto``: fp32 on CPU, bf16 on GPUs that have it)."""
    if backend in ("vllm", "openai"):
        return get_backend(backend, model)
    from tulu.models import load_model_and_tokenizer, parse_dtype
    from tulu.rollout.weights import is_cpu_weight_precision

    if is_cpu_weight_precision(backend, device, dtype):
        from tulu.rollout.llama import supports

        mdl, tok = load_model_and_tokenizer(model, dtype="float32", device="cpu")
        if backend == "fast" or supports(mdl) is None:
            return get_backend("fast", mdl, tok, dtype=dtype)
        return get_backend("hf", mdl.to(parse_dtype(dtype, "cpu")), tok)  # hf: the model's dtype, as elsewhere
    kwargs = {"dtype": dtype}
    if device:
        kwargs["device"] = device
    mdl, tok = load_model_and_tokenizer(model, **kwargs)
    return get_backend(backend, mdl, tok)


def _load(model, tokenizer):
    if isinstance(model, str):
        from tulu.models import load_model, load_tokenizer

        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model)
        model = load_model(model)
    if tokenizer is None:
        raise ValueError("a tokenizer is required when the model is given as an object")
    return model, tokenizer


def get_backend(name: str, model=None, tokenizer=None, **kwargs) -> GenerationBackend:
    """Build a generation backend by name (see the module docstring for each one's arguments)."""
    if name == "auto":
        import torch

        from tulu.rollout.llama import supports
        from tulu.rollout.vllm import vllm_available

        if torch.cuda.is_available() and vllm_available() and isinstance(model, str):
            return get_backend("vllm", model, tokenizer, **kwargs)
        model, tokenizer = _load(model, tokenizer)
        return get_backend("fast" if supports(model) is None else "hf", model, tokenizer, **kwargs)
    if name == "hf":
        from tulu.rollout.hf import HFBackend

        return HFBackend(*_load(model, tokenizer), **kwargs)
    if name == "fast":
        from tulu.rollout.fast import FastBackend

        return FastBackend(*_load(model, tokenizer), **kwargs)
    if name == "vllm":
        from tulu.rollout.vllm import VLLMBackend

        return VLLMBackend(model, tokenizer, **kwargs)
    if name == "ray":
        from tulu.rollout.ray import RayBackend

        return RayBackend(model, tokenizer, **kwargs)
    if name == "openai":
        from tulu.rollout.openai import OpenAIBackend

        return OpenAIBackend(model, tokenizer, **kwargs)
    raise ValueError(f"unknown generation backend {name!r}; choose one of {BACKENDS}")
