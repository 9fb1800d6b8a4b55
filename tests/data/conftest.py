"""A small OpenAI-compatible HTTP server with canned answers, for the data commands that call models.

Generator models (any name but ``judge``) answer a prompt by looking up their own name in it: a prompt
``"p1 a=5 b=3"`` makes model ``a`` answer ``"a on p1 [q=5]"``. Prompts without the model's name get
``"<model> on <first word> [q=3]"``; persona prompts get a request built from the persona.
The ``judge`` model reads the ``[q=N]`` marker in the answer it is asked to rate and rates every aspect N;
``[q=g]`` makes it answer prose that cannot be parsed, ``[q=f]`` answers prose at temperature 0 and
``Helpfulness: 4 ...`` when retried at a higher temperature. Every request is counted (``server.calls``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


def _rating(n: int) -> str:
    return f"Helpfulness: {n}\nInstruction following: {n}\nHonesty: {n}\nTruthfulness: {n}"


def canned_reply(model: str, messages: list[dict], temperature: float) -> str:
    user = messages[-1]["content"]
    if model == "judge":
        m = re.search(r"### Answer to rate\n(.*?)\n\n### Your reply", user, re.DOTALL)
        answer = m.group(1) if m else ""
        q = re.search(r"\[q=(\w)\]", answer)
        q = q.group(1) if q else "3"
        if q == "g" or (q == "f" and temperature == 0):
            return "This answer seems fine to me overall."
        n = 4 if q == "f" else int(q)
        return f"Rating: {n}" if "Reply with one line: Rating" in user else _rating(n)
    if "Persona: " in user:
        persona = user.split("Persona: ", 1)[1].split("\n", 1)[0]
        template = "math" if "math word problem" in user else "code" if "programming task" in user else "if"
        if "twin" in persona.lower():  # two personas with "twin" give the same prompt: a duplicate
            return "Request: How do I share chores fairly between twins?"
        if "silent" in persona.lower():
            return "ok"  # too short: unusable
        return f"Request: As {persona.lower().rstrip('.')}, give me a {template} task about my day."
    m = re.search(rf"\b{re.escape(model)}=(\w)", user)
    first = user.split()[0] if user.split() else "?"
    if m:
        return f"{model} on {first} [q={m.group(1)}]"
    if model == "relaxer":
        return f"answer to: {user}"
    return f"{model} on {first} [q=3]"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if srv.delay:
            time.sleep(srv.delay)
        model = body.get("model", "")
        text = canned_reply(model, body["messages"], float(body.get("temperature") or 0))
        with srv.lock:
            srv.calls[model] += 1
            srv.log.append((model, body["messages"][-1]["content"], text))
        out = {"id": "x", "object": "chat.completion", "model": model,
               "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                           for i in range(int(body.get("n") or 1))]}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class CannedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.calls: Counter = Counter()
        self.log: list = []
        self.lock = threading.Lock()
        self.delay = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def endpoint(self, model: str) -> str:
        return f"openai:{model}@{self.url}"


@pytest.fixture()
def canned():
    srv = CannedServer()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()
