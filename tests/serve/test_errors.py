"""Bad requests: each gets an OpenAI-style JSON error with a 4xx status, and the server carries on."""

from __future__ import annotations

import urllib.error
import urllib.request

import openai
import pytest

GOOD = {"model": "alpha", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
LONG = "word " * 2500  # > 2048 tokens, the test server's context

CHAT_CASES = {
    "unknown model": ({**GOOD, "model": "gpt-17"}, 404, "model"),
    "missing model": ({k: v for k, v in GOOD.items() if k != "model"}, 400, "model"),
    "messages not a list": ({**GOOD, "messages": "Hello"}, 400, "messages"),
    "message content a number": ({**GOOD, "messages": [{"role": "user", "content": 5}]}, 400, "messages"),
    "max_tokens a string": ({**GOOD, "max_tokens": "ten"}, 400, "max_tokens"),
    "max_tokens a float": ({**GOOD, "max_tokens": 4.5}, 400, "max_tokens"),
    "temperature a string": ({**GOOD, "temperature": "hot"}, 400, "temperature"),
    "stream an int": ({**GOOD, "stream": 1}, 400, "stream"),
    "n a float": ({**GOOD, "n": 1.5}, 400, "n"),
    "negative max_tokens": ({**GOOD, "max_tokens": -5}, 400, "max_tokens"),
    "zero max_tokens": ({**GOOD, "max_tokens": 0}, 400, "max_tokens"),
    "huge max_tokens": ({**GOOD, "max_tokens": 10**9}, 400, "max_tokens"),
    "empty messages": ({**GOOD, "messages": []}, 400, "messages"),
    "unknown role": ({**GOOD, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages"),
    "message without role": ({**GOOD, "messages": [{"content": "hi"}]}, 400, "messages"),
    "prompt longer than the context": ({**GOOD, "messages": [{"role": "user", "content": LONG}]}, 400, "messages"),
    "temperature too high": ({**GOOD, "temperature": 5}, 400, "temperature"),
    "top_p zero": ({**GOOD, "top_p": 0}, 400, "top_p"),
    "n zero": ({**GOOD, "n": 0}, 400, "n"),
    "too many stop strings": ({**GOOD, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    "top_logprobs without logprobs": ({**GOOD, "top_logprobs": 2}, 400, "top_logprobs"),
    "unsupported penalty": ({**GOOD, "presence_penalty": 1.0}, 400, "presence_penalty"),
    "streamed huge max_tokens": ({**GOOD, "stream": True, "max_tokens": 10**9}, 400, "max_tokens"),
}


def check_error(status: int, body: dict, want: int, param: str | None = None) -> None:
    assert status == want, body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] in ("invalid_request_error", "server_error")
    if param is not None:
        assert err["param"] is not None and err["param"].startswith(param), err


@pytest.mark.parametrize("case", list(CHAT_CASES))
def test_bad_chat_request_then_a_good_one(http, case):
    body, want, param = CHAT_CASES[case]
    status, resp = http.post("/v1/chat/completions", body)
    check_error(status, resp, want, param)
    status, resp = http.post("/v1/chat/completions", GOOD)
    assert status == 200 and resp["choices"][0]["message"]["role"] == "assistant", resp


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"a string"', b"\xff\xfe"])
def test_malformed_body(http, raw):
    status, resp = http.post("/v1/chat/completions", raw=raw)
    check_error(status, resp, 400)
    assert http.post("/v1/chat/completions", GOOD)[0] == 200


def test_bad_completion_requests(http):
    good = {"model": "beta", "prompt": "Once", "max_tokens": 3}
    for body, param in [({**good, "prompt": [10**8]}, "prompt"), ({**good, "prompt": []}, "prompt"),
                        ({**good, "prompt": 5}, "prompt"), ({**good, "logprobs": 9}, "logprobs"),
                        ({**good, "echo": True}, "echo"), ({**good, "prompt": LONG}, "prompt")]:
        status, resp = http.post("/v1/completions", body)
        check_error(status, resp, 400, param)
        assert http.post("/v1/completions", good)[0] == 200


def test_unknown_route_and_method(server, http):
    status, resp = http.get("/v1/nothing-here")
    check_error(status, resp, 404)
    status, resp = http.get("/v1/chat/completions")
    check_error(status, resp, 405)
    status, resp = http.get("/v1/models/nope")
    check_error(status, resp, 404)
    req = urllib.request.Request(server.url + "/v1/models", data=b"{}", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 405


def test_openai_client_sees_typed_errors(client):
    with pytest.raises(openai.NotFoundError, match="gpt-17"):
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="context"):
        client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "hi"}], max_tokens=10**6)
    assert client.chat.completions.create(model="alpha", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=2).usage.completion_tokens == 2
