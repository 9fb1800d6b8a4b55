"""The async OpenAI-compatible client against a local stdlib server on 127.0.0.1 that injects failures."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tulu.rollout import SamplingParams, get_backend
from tulu.rollout.openai import OpenAIClient, OpenAIError, backoff_delay


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.attempts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.bodies: list[dict] = []


def _handler(state: _State):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):  # keep pytest output clean
            pass

        def _send(self, code: int, obj: dict, headers: dict | None = None):
            # The request stops counting as in flight *before* the client can read the answer: counting it
            # until after the write let a loaded machine see the client's next request overlap this one's
            # tail and over-count concurrency (5 > 3 seen under load).
            self._leave()
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            chat = self.path.endswith("/chat/completions")
            key = body["messages"][-1]["content"] if chat else str(body["prompt"])
            with state.lock:
                state.attempts[key] += 1
                attempt = state.attempts[key]
                state.bodies.append(body)
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
            self._left = False  # one handler may serve several requests on a kept-alive connection
            try:
                if "fail-twice" in key and attempt <= 2:
                    return self._send(503, {"error": "overloaded"})
                if "rate-limited" in key and attempt == 1:
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0.05"})
                if "bad-request" in key:
                    return self._send(400, {"error": "bad"})
                if "slow-once" in key and attempt == 1:
                    time.sleep(1.0)
                time.sleep(0.05)
                choices = []
                for i in range(body.get("n", 1)):
                    text = f"echo {key} #{i}"
                    lp = [-0.5, -0.25]
                    if chat:
                        choices.append({"index": i, "message": {"role": "assistant", "content": text},
                                        "finish_reason": "stop",
                                        "logprobs": {"content": [{"token": "x", "logprob": v} for v in lp]}})
                    else:
                        choices.append({"index": i, "text": text, "finish_reason": "length",
                                        "logprobs": {"token_logprobs": lp}})
                self._send(200, {"choices": list(reversed(choices))})
            finally:
                self._leave()

        def _leave(self):
            if not getattr(self, "_left", False):
                self._left = True
                with state.lock:
                    state.in_flight -= 1

    return H


@pytest.fixture()
def server():
    state = _State()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1", state
    srv.shutdown()
    srv.server_close()


def test_chat_and_completions_with_bounded_concurrency(server):
    url, state = server
    be = get_backend("openai", "served-model", None, base_url=url, concurrency=3, backoff_base=0.01)
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(10)] + ["plain text", [1, 2, 3]]
    outs = be.generate(prompts, SamplingParams(n=2, temperature=0.7, max_new_tokens=5, stop=["\n"], seed=4))
    assert [o.prompt_index for o in outs] == list(range(12))
    assert [c.text for c in outs[3].completions] == ["echo q3 #0", "echo q3 #1"]  # sorted by choice index
    assert outs[3].completions[0].finish_reason == "stop" and outs[3].completions[0].logprobs == [-0.5, -0.25]
    assert outs[10].completions[1].text == "echo plain text #1" and outs[10].completions[0].finish_reason == "length"
    assert outs[11].completions[0].text == "echo [1, 2, 3] #0"
    assert 2 <= state.max_in_flight <= 3
    body = state.bodies[0]
    assert body["model"] == "served-model" and body["max_tokens"] == 5 and body["stop"] == ["\n"]
    assert body["seed"] == 4 and body["n"] == 2


def test_retries_on_5xx_429_and_timeouts(server):
    url, state = server
    be = get_backend("openai", "m", None, base_url=url, max_retries=3, timeout=0.4, backoff_base=0.01)
    outs = be.generate(["fail-twice", "rate-limited", "slow-once"], SamplingParams(max_new_tokens=3))
    assert [o.completions[0].text for o in outs] == ["echo fail-twice #0", "echo rate-limited #0", "echo slow-once #0"]
    assert state.attempts["fail-twice"] == 3 and state.attempts["rate-limited"] == 2
    assert state.attempts["slow-once"] == 2


def test_gives_up_and_does_not_retry_client_errors(server):
    url, state = server
    be = get_backend("openai", "m", None, base_url=url, max_retries=1, backoff_base=0.01)
    with pytest.raises(OpenAIError, match="HTTP 400"):
        be.generate(["bad-request"], SamplingParams(max_new_tokens=3))
    assert state.attempts["bad-request"] == 1
    with pytest.raises(OpenAIError, match="gave up after 2 attempts"):
        be.generate(["fail-twice"], SamplingParams(max_new_tokens=3))


def test_unreachable_server_fails_cleanly():
    import asyncio

    async def go():
        async with OpenAIClient("http://127.0.0.1:9/v1", max_retries=1, backoff_base=0.01, timeout=1) as c:
            await c.complete("x")

    with pytest.raises(OpenAIError, match="gave up"):
        asyncio.run(go())


def test_backoff_delay_is_capped_and_honours_retry_after():
    assert backoff_delay(0, 1.0, 5.0, retry_after=2.5) == 2.5
    assert backoff_delay(3, 1.0, 5.0, retry_after=60) == 5.0
    assert all(0 <= backoff_delay(a, 0.5, 4.0) <= min(4.0, 0.5 * 2 ** a) for a in range(8))


def test_generate_inside_a_running_event_loop(server):
    import asyncio

    url, _ = server
    be = get_backend("openai", "m", None, base_url=url)

    async def inside():
        return be.generate(["hi"], SamplingParams(max_new_tokens=2))

    assert asyncio.run(inside())[0].completions[0].text == "echo hi #0"
