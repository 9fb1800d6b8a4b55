"""The OpenAI API of `tulu serve`, through the official `openai` client, on tiny random Llamas."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tulu.rollout import SamplingParams
from tulu.rollout.fast import FastBackend

Q = [{"role": "user", "content": "Write one line about the sea."}]


def test_models_and_health(client, http):
    assert [m.id for m in client.models.list().data] == ["alpha", "beta"]
    assert client.models.retrieve("beta").id == "beta"
    status, body = http.get("/health")
    assert status == 200 and body["status"] == "ok"
    assert body["models"]["alpha"]["backend"] == "fast" and body["models"]["alpha"]["continuous_batching"]
    assert body["models"]["alpha"]["cached_head_tokens"] > 8  # SmolLM2's template: default system prompt + header


def test_seeded_chat_equals_fast_backend_and_repeats(client, tiny_models, tokenizer):
    """n samples with a seed: the same texts, token counts and log-probs as FastBackend.generate of the same
    prompt with the same seed, the same again on a second call, and usage counts that add up."""
    kw = {"model": "alpha", "messages": Q, "max_tokens": 12, "temperature": 1.0, "top_p": 0.9, "seed": 7, "n": 3, "logprobs": True}
    first = client.chat.completions.create(**kw)
    again = client.chat.completions.create(**kw)
    # with a second prompt, the fast backend prefills the chat template's start once and the rest after it,
    # which is what the server does for every prompt that begins with that start
    other = [{"role": "user", "content": "Zzz"}]
    ref = FastBackend(tiny_models["alpha"], tokenizer).generate(
        [Q, other], SamplingParams(n=3, temperature=1.0, top_p=0.9, max_new_tokens=12, seed=7))[0].completions
    assert [c.message.content for c in first.choices] == [c.text for c in ref]
    assert [c.message.content for c in again.choices] == [c.text for c in ref]
    assert len({c.text for c in ref}) > 1  # the three samples differ
    for choice, c in zip(first.choices, ref):
        assert choice.finish_reason == c.finish_reason
        got = [t.logprob for t in choice.logprobs.content]
        want = c.logprobs[:-1] if c.finish_reason == "stop" and c.token_ids[-1] == tokenizer.eos_token_id else c.logprobs
        assert got == pytest.approx(want, abs=1e-5)
    from tulu.data.templates import render_prompt

    u = first.usage
    assert u.prompt_tokens == len(render_prompt(Q, tokenizer))
    assert u.completion_tokens == sum(len(c.token_ids) for c in ref)
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens


def test_greedy_top_logprobs(client):
    r = client.chat.completions.create(model="beta", messages=Q, max_tokens=4, temperature=0, logprobs=True,
                                       top_logprobs=3)
    for t in r.choices[0].logprobs.content:
        assert len(t.top_logprobs) == 3
        assert t.top_logprobs[0].token == t.token  # greedy picks the most likely token
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob, abs=1e-5)
        assert bytes(t.bytes).decode() == t.token


def raw_sse(url: str, body: dict) -> list[str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [line for line in resp.read().decode().split("\n") if line]


def test_streaming_matches_plain_and_ends_with_done(client, server):
    body = {"model": "alpha", "messages": Q, "max_tokens": 16, "temperature": 0.8, "seed": 3, "n": 2}
    plain = client.chat.completions.create(**body)
    lines = raw_sse(server.url + "/v1/chat/completions", {**body, "stream": True})
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    texts, finish = {0: "", 1: ""}, {}
    for c in chunks:
        for ch in c["choices"]:
            texts[ch["index"]] += ch["delta"].get("content") or ""
            if ch["finish_reason"]:
                finish[ch["index"]] = ch["finish_reason"]
    assert [texts[0], texts[1]] == [c.message.content for c in plain.choices]
    assert [finish[0], finish[1]] == [c.finish_reason for c in plain.choices]
    assert chunks[-1]["usage"] == plain.usage.model_dump(exclude_none=True)  # usage rides on the last chunk
    assert sum(1 for c in chunks for ch in c["choices"] if ch["delta"].get("content")) > 2  # it did stream

    # the openai client's stream, with the usage-only final chunk of stream_options
    stream = client.chat.completions.create(**body, stream=True, stream_options={"include_usage": True})
    got, usage = {0: "", 1: ""}, None
    for chunk in stream:
        for ch in chunk.choices:
            got[ch.index] += ch.delta.content or ""
        usage = chunk.usage or usage
    assert got == texts and usage == plain.usage


def test_stop_strings(client):
    free = client.chat.completions.create(model="alpha", messages=Q, max_tokens=20, temperature=0).choices[0]
    text = free.message.content
    stop = text[len(text) // 2:len(text) // 2 + 3]
    cut = client.chat.completions.create(model="alpha", messages=Q, max_tokens=20, temperature=0, stop=[stop, "@@"])
    assert cut.choices[0].message.content == text[:text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="alpha", messages=Q, max_tokens=20, temperature=0, stop=stop, stream=True) if c.choices)
    assert streamed == cut.choices[0].message.content  # no part of the stop string leaked into the stream


def test_completions_endpoint(client):
    r = client.completions.create(model="beta", prompt=["Once upon a time", "def f(x):"], max_tokens=6, n=2,
                                  temperature=0, logprobs=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text == r.choices[1].text and r.choices[2].text == r.choices[3].text  # greedy
    assert r.choices[0].text != r.choices[2].text
    assert all(len(c.logprobs.tokens) == 6 and len(c.logprobs.top_logprobs[0]) == 2 for c in r.choices)
    assert r.usage.completion_tokens == 24
    ids = client.completions.create(model="beta", prompt=[1, 2, 3, 4], max_tokens=3, temperature=0)
    assert ids.usage.prompt_tokens == 4 and ids.choices[0].finish_reason == "length"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="beta", prompt="Once upon a time", max_tokens=6, temperature=0, stream=True) if c.choices)
    assert streamed == r.choices[0].text
