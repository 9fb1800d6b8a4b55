"""A live `tulu serve` app on loopback with two tiny random Llamas (``alpha``, ``beta``), once per session."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

MODELS = {"alpha": 0, "beta": 1}  # served name -> tiny_model seed


@pytest.fixture(scope="session")
def tiny_models(tokenizer):
    from tulu.models import tiny_model

    return {name: tiny_model(seed=seed, tokenizer=tokenizer)[0] for name, seed in MODELS.items()}


@pytest.fixture(scope="session")
def server(tiny_models, tokenizer):
    from tulu.serve.app import create_app
    from tulu.serve.engine import FastEngine
    from tulu.serve.server import ServerThread

    engines = {name: FastEngine(name, model, tokenizer, max_batch_size=8, max_model_len=2048)
               for name, model in tiny_models.items()}
    with ServerThread(create_app(engines)) as srv:
        srv.engines = engines
        yield srv
    for e in engines.values():
        e.close()


@pytest.fixture()
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


class HTTP:
    """Plain-HTTP helper (for what the openai client hides: status codes, error bodies, raw SSE)."""

    def __init__(self, base: str):
        self.base = base

    def post(self, path: str, body=None, *, raw: bytes | None = None, timeout: float = 60) -> tuple[int, dict]:
        return post(self.base + path, body, raw=raw, timeout=timeout)

    def get(self, path: str, timeout: float = 30) -> tuple[int, dict]:
        return get(self.base + path, timeout)


@pytest.fixture()
def http(server) -> HTTP:
    return HTTP(server.url)


def post(url: str, body, *, raw: bytes | None = None, timeout: float = 60) -> tuple[int, dict]:
    """POST JSON (or ``raw`` bytes) and return (status, decoded JSON body), for error statuses too."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def get(url: str, timeout: float = 30) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
