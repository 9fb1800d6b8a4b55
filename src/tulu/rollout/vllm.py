"""A thin vLLM backend (GPU): the same interface, plus in-place weight updates for RLVR.

vLLM is not installable on the CPU machines this project is developed on, so this module is glue only:
it converts our :class:`SamplingParams` to vLLM's, our prompts to ``{"prompt_token_ids": ...}``, vLLM's
outputs back to :class:`Completion`, and pushes a training process's state dict into the engine's model.
The glue is unit-tested with a fake engine (tests/rollout/test_vllm_glue.py); the real engine is
exercised only where a GPU and vLLM exist (see docs/rollout.md for the command).

Log-probs: vLLM reports them according to its ``logprobs_mode``; we ask for ``processed_logprobs``
(after temperature) when the installed version knows that option, which matches our definition except
that vLLM applies top-k/top-p first. RL code that needs exact old log-probs should recompute them.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Sequence
from typing import Any

from tulu.rollout.base import Completion, GenerationBackend, Prompt, RequestOutput, SamplingParams
from tulu.rollout.common import encode_prompts


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def to_vllm_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Our settings as keyword arguments of ``vllm.SamplingParams``."""
    return {
        "n": params.n, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k if params.top_k > 0 else -1,
        "max_tokens": params.max_new_tokens, "stop": list(params.stop) or None, "stop_token_ids": list(params.stop_token_ids) or None,
        "seed": params.seed, "logprobs": 0 if params.logprobs else None, "skip_special_tokens": True,
        "include_stop_str_in_output": False,
    }


def _sampled_logprobs(token_ids: list[int], logprobs) -> list[float] | None:
    """vLLM gives, per position, a dict token id -> Logprob (or a float); keep the sampled token's."""
    if logprobs is None:
        return None
    out = []
    for tok, entry in zip(token_ids, logprobs):
        val = entry.get(tok) if isinstance(entry, dict) else entry
        out.append(float(getattr(val, "logprob", val)))
    return out


def _load_weights_on_worker(worker, items) -> None:  # runs inside a vLLM worker (collective_rpc)
    worker.model_runner.model.load_weights(weights=items)


_MODEL_PATHS = (  # where the torch model sits when the engine runs in this process (by vLLM version)
    ("llm_engine", "model_executor", "driver_worker", "model_runner", "model"),
    ("llm_engine", "model_executor", "driver_worker", "worker", "model_runner", "model"),
)


def _in_process_model(llm):
    for path in _MODEL_PATHS:
        obj = llm
        for attr in path:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "load_weights"):
            return obj
    return None


class VLLMBackend(GenerationBackend):
    """``get_backend("vllm", "path/or/hub-id", tokenizer=None, **vllm_LLM_kwargs)``.

    ``llm=`` accepts a ready engine (anything with vLLM's ``LLM.generate`` signature) and
    ``sampling_params_cls=`` the class that builds its sampling parameters; tests pass fakes there.
    """

    name = "vllm"

    def __init__(self, model=None, tokenizer=None, *, llm=None, sampling_params_cls=None, template: str = "tokenizer",
                 **llm_kwargs):
        if llm is None:
            if not vllm_available():
                raise ImportError("backend 'vllm' needs vLLM (pip install 'tulu[gpu]' on a CUDA machine); "
                                  "use backend 'fast' or 'hf' here")
            import vllm

            if not isinstance(model, str):
                raise TypeError("backend 'vllm' takes the model as a path or hub id")
            if "logprobs_mode" not in llm_kwargs and "logprobs_mode" in inspect.signature(vllm.EngineArgs).parameters:
                llm_kwargs["logprobs_mode"] = "processed_logprobs"
            llm = vllm.LLM(model=model, **llm_kwargs)
        if sampling_params_cls is None:
            from vllm import SamplingParams as sampling_params_cls
        self.llm = llm
        self.sampling_params_cls = sampling_params_cls
        self.tokenizer = tokenizer if tokenizer is not None else llm.get_tokenizer()
        self.template = template

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        ids = encode_prompts(prompts, self.tokenizer, self.template)
        sp = self.sampling_params_cls(**to_vllm_kwargs(params))
        outs = self.llm.generate([{"prompt_token_ids": p} for p in ids], sp, use_tqdm=progress)
        results = []
        for i, (p, out) in enumerate(zip(ids, outs)):
            comps = [Completion(text=c.text, token_ids=list(c.token_ids),
                                logprobs=_sampled_logprobs(list(c.token_ids), c.logprobs) if params.logprobs else None,
                                finish_reason="stop" if c.finish_reason == "stop" else "length",
                                prompt_token_ids=p)
                     for c in out.outputs]
            results.append(RequestOutput(prompt_index=i, completions=comps))
        return results

    def loglikelihood(self, requests, *, progress: bool = False):
        """Log-probs of each request's continuation from vLLM's ``prompt_logprobs``
        (:mod:`tulu.rollout.loglik`)."""
        from tulu.rollout.loglik import encode_requests, vllm_loglikelihood

        pairs = encode_requests(requests, self.tokenizer, self.template)
        return vllm_loglikelihood(self.llm, self.sampling_params_cls, pairs, progress=progress)

    def update_weights(self, state_dict) -> None:
        """Load new policy weights into the running engine (HF parameter names), then drop cached prefixes."""
        items = [(k, v) for k, v in dict(state_dict).items()]
        model = _in_process_model(self.llm)
        if model is not None:
            model.load_weights(weights=items)
        elif hasattr(self.llm, "collective_rpc"):
            self.llm.collective_rpc(_load_weights_on_worker, args=(items,))
        else:
            raise RuntimeError("cannot reach the vLLM model to update its weights (unknown vLLM version)")
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
