"""An async client for OpenAI-compatible HTTP servers (vLLM, SGLang, llama.cpp, OpenAI itself).

For LLM judges, synthetic-data generation and evaluating a served model. Bounded concurrency (a
semaphore), retries with exponential backoff and jitter on connection errors, timeouts, 408/409/429 and
5xx (honouring ``Retry-After``), and a per-request timeout. Chat messages go to ``/chat/completions``;
strings and token ids go to ``/completions``.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Sequence
from typing import Any, Self

from tulu.rollout.base import Completion, GenerationBackend, Prompt, RequestOutput, SamplingParams

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class OpenAIError(RuntimeError):
    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): full jitter on ``base * 2**attempt``, capped."""
    if retry_after is not None:
        return min(cap, max(0.0, retry_after))
    return random.uniform(0, min(cap, base * 2 ** attempt))


class OpenAIClient:
    """``async with OpenAIClient(base_url) as c: await c.chat(messages, model=..., max_tokens=...)``."""

    def __init__(self, base_url: str, *, api_key: str | None = None, concurrency: int = 8, max_retries: int = 4,
                 timeout: float = 120.0, backoff_base: float = 0.5, backoff_cap: float = 20.0):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._session = None
        self._sem: asyncio.Semaphore | None = None

    async def __aenter__(self) -> Self:
        import aiohttp

        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._session = aiohttp.ClientSession(headers=headers)
        self._sem = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON with retries; returns the decoded response or raises :class:`OpenAIError`."""
        import aiohttp

        if self._session is None or self._sem is None:
            raise RuntimeError("use the client inside `async with`")
        url = f"{self.base_url}/{path.lstrip('/')}"
        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            async with self._sem:
                try:
                    async with self._session.post(url, json=body,
                                                  timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                        if resp.status == 200:
                            return await resp.json()
                        text = (await resp.text())[:300]
                        last = f"HTTP {resp.status}: {text}"
                        if resp.status not in RETRY_STATUS:
                            raise OpenAIError(f"{url}: {last}", resp.status)
                        ra = resp.headers.get("Retry-After")
                        retry_after = float(ra) if ra and ra.replace(".", "", 1).isdigit() else None
                except TimeoutError:
                    last = f"timed out after {self.timeout}s"
                except aiohttp.ClientError as exc:
                    last = f"{type(exc).__name__}: {exc}"
            if attempt < self.max_retries:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap, retry_after))
        raise OpenAIError(f"{url}: gave up after {self.max_retries + 1} attempts; last error: {last}")

    async def chat(self, messages: list[dict], **body) -> dict[str, Any]:
        return await self.post("chat/completions", {"messages": messages, **body})

    async def complete(self, prompt: str | list[int], **body) -> dict[str, Any]:
        return await self.post("completions", {"prompt": prompt, **body})


def request_body(model: str, params: SamplingParams, chat: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "n": params.n, "temperature": params.temperature, "top_p": params.top_p,
                                "max_tokens": params.max_new_tokens}
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    if params.top_k > 0:
        body["top_k"] = params.top_k  # vLLM / SGLang extension
    if params.stop_token_ids:
        body["stop_token_ids"] = list(params.stop_token_ids)  # vLLM extension
    if params.logprobs:
        body["logprobs"] = True if chat else 1
    return body


def parse_choice(choice: dict[str, Any], chat: bool, tokenizer=None) -> Completion:
    """One ``choices[i]`` entry as a :class:`Completion` (token ids re-tokenized when a tokenizer is given)."""
    if chat:
        text = (choice.get("message") or {}).get("content") or ""
    else:
        text = choice.get("text") or ""
    lp = choice.get("logprobs")
    logprobs = None
    if lp:
        logprobs = [t["logprob"] for t in lp.get("content") or []] if chat else list(lp.get("token_logprobs") or [])
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else []
    return Completion(text=text, token_ids=ids, logprobs=logprobs,
                      finish_reason="stop" if choice.get("finish_reason") == "stop" else "length")


class OpenAIBackend(GenerationBackend):
    """``get_backend("openai", "served-model-name", tokenizer=None, base_url="http://127.0.0.1:8000/v1",
    concurrency=8, max_retries=4, timeout=120)``. Completion ``token_ids`` are the tokenizer's encoding
    of the returned text (empty without a tokenizer): servers do not return ids."""

    name = "openai"

    def __init__(self, model: str, tokenizer=None, *, base_url: str = "http://127.0.0.1:8000/v1", **client_kwargs):
        self.model = model
        self.tokenizer = tokenizer
        self.base_url = base_url
        self.client_kwargs = client_kwargs

    async def agenerate(self, prompts: Sequence[Prompt], params: SamplingParams) -> list[RequestOutput]:
        async with OpenAIClient(self.base_url, **self.client_kwargs) as client:
            async def one(i: int, prompt: Prompt) -> RequestOutput:
                chat = isinstance(prompt, (list, tuple)) and bool(prompt) and isinstance(prompt[0], dict)
                body = request_body(self.model, params, chat)
                resp = await (client.chat(list(prompt), **body) if chat else client.complete(prompt, **body))
                choices = sorted(resp.get("choices") or [], key=lambda c: c.get("index", 0))
                if len(choices) != params.n:
                    raise OpenAIError(f"prompt {i}: expected {params.n} choices, the server returned {len(choices)}")
                return RequestOutput(prompt_index=i, completions=[parse_choice(c, chat, self.tokenizer) for c in choices])

            return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts))))

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.agenerate(prompts, params))
        # called from inside an event loop (a notebook, an async server): run in a helper thread
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["out"] = asyncio.run(self.agenerate(prompts, params))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["err"] = exc

        t = threading.Thread(target=target)
        t.start()
        t.join()
        if "err" in box:
            raise box["err"]
        return box["out"]
