"""Continuous batching seen from outside: concurrent clients get the answers they get alone, a late request
joins the running batch, a client that disconnects frees its slot at once, /health stays responsive."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tulu.rollout import kernels

needs_kernels = pytest.mark.skipif(
    not kernels.available(),
    reason="bitwise batch invariance needs the compiled decode step (built by `make setup`; needs g++)")


def ask_stream(client, **kw) -> tuple[str, str, float, float]:
    """(text, finish_reason, seconds to first text, total seconds) of one streamed chat request."""
    t0 = time.perf_counter()
    first, text, finish = None, "", None
    for chunk in client.chat.completions.create(stream=True, **kw):
        for ch in chunk.choices:
            if ch.delta.content:
                first = first or time.perf_counter() - t0
                text += ch.delta.content
            finish = ch.finish_reason or finish
    return text, finish, first or 0.0, time.perf_counter() - t0


def stats(http, model: str) -> dict:
    return http.get("/health")[1]["models"][model]


@needs_kernels
def test_eight_concurrent_streams_equal_their_lone_answers(client, http):
    reqs = [{"model": "alpha", "messages": [{"role": "user", "content": f"Question {i}: {'why ' * i}?"}],
                 "max_tokens": 24 + 3 * i, "temperature": [0.0, 0.7, 1.0, 1.3][i % 4], "top_p": [1.0, 0.9][i % 2], "seed": 100 + i}
            for i in range(8)]
    alone = [ask_stream(client, **r)[:2] for r in reqs]
    before = stats(http, "alpha")
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda r: ask_stream(client, **r), reqs))
    after = stats(http, "alpha")
    assert [t[:2] for t in together] == alone
    # they shared decode steps: on average well over one row per step
    assert (after["tokens"] - before["tokens"]) / (after["steps"] - before["steps"]) > 2


def test_late_request_joins_the_running_batch(client, http):
    long = {"model": "beta", "messages": [{"role": "user", "content": "Tell a long story."}], "max_tokens": 500,
                "temperature": 1.0, "seed": 11}
    started = threading.Event()
    box = {}

    def run_long():
        text = ""
        for chunk in client.chat.completions.create(stream=True, **long):
            for ch in chunk.choices:
                text += ch.delta.content or ""
                if text:
                    started.set()
        box["text"] = text

    t = threading.Thread(target=run_long)
    t.start()
    assert started.wait(30)
    short = client.chat.completions.create(model="beta", messages=[{"role": "user", "content": "Hi"}], max_tokens=8,
                                           temperature=0)
    # the short request finished while the long one was still decoding: it did not wait for a free engine
    assert stats(http, "beta")["running_rows"] >= 1 and "text" not in box
    lat = []
    for _ in range(5):  # the event loop answers while the engine thread decodes
        t0 = time.perf_counter()
        http.get("/health")
        lat.append(time.perf_counter() - t0)
    t.join(60)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 8
    assert max(lat) < 0.5, lat
    assert box["text"] == client.chat.completions.create(**long).choices[0].message.content


def test_disconnect_frees_the_slot_at_once(server, http):
    body = {"model": "alpha", "messages": [{"role": "user", "content": "Go on forever."}], "max_tokens": 1900,
            "temperature": 1.0, "stream": True}
    cancelled = stats(http, "alpha")["cancelled"]
    req = urllib.request.Request(server.url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    resp = urllib.request.urlopen(req, timeout=30)
    line = b""
    while b'"content": "' not in line or b'"content": ""' in line:  # up to the first generated text
        line = resp.readline()
    assert stats(http, "alpha")["running_rows"] == 1
    resp.close()
    t0 = time.perf_counter()
    while stats(http, "alpha")["running_rows"] and time.perf_counter() - t0 < 5:
        time.sleep(0.02)
    assert stats(http, "alpha")["running_rows"] == 0
    assert stats(http, "alpha")["cancelled"] == cancelled + 1
    assert time.perf_counter() - t0 < 2


def test_non_streaming_client_that_leaves_is_cancelled(server, http):
    import socket

    body = json.dumps({"model": "beta", "messages": [{"role": "user", "content": "Go on."}], "max_tokens": 1900,
                       "temperature": 1.0}).encode()
    cancelled = stats(http, "beta")["cancelled"]
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    t0 = time.perf_counter()
    while not stats(http, "beta")["running_rows"] and time.perf_counter() - t0 < 5:
        time.sleep(0.01)
    sock.close()
    while stats(http, "beta")["running_rows"] and time.perf_counter() - t0 < 10:
        time.sleep(0.02)
    assert stats(http, "beta")["running_rows"] == 0 and stats(http, "beta")["cancelled"] == cancelled + 1
