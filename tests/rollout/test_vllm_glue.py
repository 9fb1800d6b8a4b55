"""The vLLM backend's glue, around a fake engine (vLLM itself needs a GPU and is not installed here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch

from tulu.rollout import SamplingParams, get_backend
from tulu.rollout.vllm import VLLMBackend, to_vllm_kwargs, vllm_available


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    stop: list | None = None
    stop_token_ids: list | None = None
    seed: int | None = None
    logprobs: int | None = None
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False


@dataclass
class FakeModel:
    loaded: list = field(default_factory=list)

    def load_weights(self, weights):
        self.loaded.append(dict(weights))


class FakeLLM:
    """Mimics vllm.LLM: generate(list of {"prompt_token_ids"}, SamplingParams, use_tqdm) -> outputs."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model = FakeModel()
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(
            driver_worker=SimpleNamespace(model_runner=SimpleNamespace(model=self.model))))
        self.calls = []
        self.prefix_resets = 0

    def get_tokenizer(self):
        return self.tokenizer

    def reset_prefix_cache(self):
        self.prefix_resets += 1

    def generate(self, prompts, sp, use_tqdm=False):
        self.calls.append((prompts, sp))
        outs = []
        for p in prompts:
            comps = []
            for i in range(sp.n):
                ids = [p["prompt_token_ids"][-1] + i, 2]
                lps = [{t: SimpleNamespace(logprob=-0.1 * (k + 1)), 999: SimpleNamespace(logprob=-9.0)}
                       for k, t in enumerate(ids)]
                comps.append(SimpleNamespace(text=f"t{i}", token_ids=ids, logprobs=lps if sp.logprobs is not None
                                             else None, finish_reason="stop" if i == 0 else "length"))
            outs.append(SimpleNamespace(outputs=comps))
        return outs


def test_sampling_params_translation():
    kw = to_vllm_kwargs(SamplingParams(n=3, temperature=0.7, top_p=0.9, top_k=0, max_new_tokens=9, stop=["x"],
                                       stop_token_ids=[5], seed=2))
    assert kw["top_k"] == -1 and kw["max_tokens"] == 9 and kw["stop"] == ["x"] and kw["stop_token_ids"] == [5]
    assert kw["logprobs"] == 0 and kw["n"] == 3 and kw["seed"] == 2
    FakeSamplingParams(**kw)  # every key is a vLLM SamplingParams field
    assert to_vllm_kwargs(SamplingParams(top_k=7, logprobs=False))["logprobs"] is None


def test_generate_and_weight_update_through_fake_engine(tokenizer):
    llm = FakeLLM(tokenizer)
    be = get_backend("vllm", None, None, llm=llm, sampling_params_cls=FakeSamplingParams)
    outs = be.generate([[{"role": "user", "content": "hi"}], [7, 8]], SamplingParams(n=2, max_new_tokens=4))
    prompts, sp = llm.calls[0]
    assert prompts[1] == {"prompt_token_ids": [7, 8]} and sp.max_tokens == 4 and sp.n == 2
    c0, c1 = outs[1].completions
    assert c0.token_ids == [8, 2] and c0.logprobs == pytest.approx([-0.1, -0.2]) and c0.finish_reason == "stop"
    assert c1.finish_reason == "length" and c1.prompt_token_ids == [7, 8]
    sd = {"model.embed_tokens.weight": torch.zeros(2, 2)}
    be.update_weights(sd)
    assert list(llm.model.loaded[0]) == ["model.embed_tokens.weight"] and llm.prefix_resets == 1


def test_weight_update_through_collective_rpc(tokenizer):
    seen = []

    class RpcLLM(FakeLLM):
        def __init__(self, tok):
            super().__init__(tok)
            self.llm_engine = SimpleNamespace()  # engine in another process: no in-process model

        def collective_rpc(self, fn, args=()):
            worker = SimpleNamespace(model_runner=SimpleNamespace(model=self.model))
            seen.append(fn(worker, *args))

    llm = RpcLLM(tokenizer)
    VLLMBackend(llm=llm, sampling_params_cls=FakeSamplingParams).update_weights({"w": torch.ones(1)})
    assert seen and "w" in llm.model.loaded[0]


@pytest.mark.skipif(vllm_available(), reason="vLLM is installed")
def test_clear_error_without_vllm():
    with pytest.raises(ImportError, match="needs vLLM"):
        get_backend("vllm", "embedded")
