"""The vLLM engine's glue, around a fake ``AsyncLLMEngine`` (vLLM needs a GPU and is not installed here)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from tulu.serve.engine import GenRequest
from tulu.serve.vllm_engine import VLLMEngine, vllm_sampling_kwargs

WORDS = ["alpha", " beta", " gamma", " delta", " epsilon", " zeta", " eta", " theta"]


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: list | None = None
    seed: int | None = None
    logprobs: int | None = None
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False


@dataclass
class FakeAsyncEngine:
    """vLLM's async interface: ``generate(prompt, params, request_id)`` yields cumulative RequestOutputs (choice
    j emits word (t + j) % 8 at step t); ``abort(request_id)`` ends a request."""

    step_s: float = 0.005
    seen: list = field(default_factory=list)
    aborted: list = field(default_factory=list)

    async def generate(self, prompt, params, request_id):
        self.seen.append((prompt, params, request_id))
        toks = [[] for _ in range(params.n)]
        for t in range(params.max_tokens):
            await asyncio.sleep(self.step_s)
            if request_id in self.aborted:
                return
            outs = []
            for j in range(params.n):
                toks[j].append((t + j) % len(WORDS))
                lps = None
                if params.logprobs is not None:
                    lps = [{tok: SimpleNamespace(logprob=-1.0, rank=1), 99: SimpleNamespace(logprob=-2.0, rank=2)}
                           for tok in toks[j]]
                last = t == params.max_tokens - 1
                outs.append(SimpleNamespace(index=j, text="".join(WORDS[i] for i in toks[j]), token_ids=list(toks[j]),
                                            logprobs=lps, finish_reason="length" if last else None))
            yield SimpleNamespace(request_id=request_id, outputs=outs, finished=t == params.max_tokens - 1)

    async def abort(self, request_id):
        self.aborted.append(request_id)


def test_sampling_kwargs():
    req = GenRequest(prompt_ids=[1, 2], n=3, temperature=0.7, top_p=0.9, max_tokens=5, stop=["\n"], seed=4,
                     logprobs=True, top_logprobs=2)
    kw = vllm_sampling_kwargs(req)
    assert kw == {"n": 3, "temperature": 0.7, "top_p": 0.9, "max_tokens": 5, "stop": ["\n"], "seed": 4,
                  "logprobs": 2, "skip_special_tokens": True, "include_stop_str_in_output": False}
    FakeSamplingParams(**kw)  # the fake takes exactly vLLM's names


@pytest.fixture()
def vllm_server(tokenizer):
    from tulu.serve.app import create_app
    from tulu.serve.server import ServerThread

    fake = FakeAsyncEngine()
    engine = VLLMEngine("v", tokenizer=tokenizer, engine=fake, sampling_params_cls=FakeSamplingParams,
                        max_model_len=256)
    with ServerThread(create_app({"v": engine})) as srv:
        yield srv, fake, engine
    engine.close()


def test_vllm_engine_through_the_api(vllm_server):
    from openai import OpenAI

    srv, fake, _ = vllm_server
    client = OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
    r = client.chat.completions.create(model="v", messages=[{"role": "user", "content": "Hi"}], n=2, max_tokens=4,
                                       seed=3, logprobs=True, top_logprobs=2)
    assert [c.message.content for c in r.choices] == ["alpha beta gamma delta", " beta gamma delta epsilon"]
    assert r.usage.completion_tokens == 8 and [c.finish_reason for c in r.choices] == ["length", "length"]
    lp = r.choices[0].logprobs.content
    assert len(lp) == 4 and lp[0].logprob == -1.0 and [t.logprob for t in lp[0].top_logprobs] == [-1.0, -2.0]
    prompt, params, _ = fake.seen[-1]
    assert prompt["prompt_token_ids"][-3:] and params.seed == 3 and params.n == 2 and params.logprobs == 2
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="v", messages=[{"role": "user", "content": "Hi"}], max_tokens=6, stream=True) if c.choices)
    assert text == "".join(WORDS[:6])


def test_vllm_request_is_aborted_when_the_client_leaves(vllm_server):
    srv, fake, engine = vllm_server
    body = {"model": "v", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 200, "stream": True}
    req = urllib.request.Request(srv.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    resp = urllib.request.urlopen(req, timeout=30)
    while b"delta\": {\"content\": \"alpha" not in resp.readline():  # read up to the first generated text
        pass
    rid = fake.seen[-1][2]
    resp.close()
    t0 = time.perf_counter()
    while rid not in fake.aborted and time.perf_counter() - t0 < 5:
        time.sleep(0.02)
    assert rid in fake.aborted and engine.stats()["running_rows"] == 0
