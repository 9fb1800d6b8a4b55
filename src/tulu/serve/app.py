"""The FastAPI application: the OpenAI routes, /health, and the chat page at /.

Routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/chat/completions``, ``POST /v1/completions``
(both plain and ``stream: true``), ``GET /health``, ``GET /`` (the chat page) and ``/static/*``.

Handlers only parse, validate, tokenize (in a worker thread) and wait on their request's event queue:
generation runs in each model's engine thread (:mod:`tulu.serve.engine`), so the event loop stays free.
Every error is an OpenAI-style ``{"error": {...}}`` body with a 4xx status (5xx only for a failure of
our own), and the server carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tulu.serve.engine import Engine, Event, EventStream, GenRequest
from tulu.serve.protocol import (
    APIError,
    ChatCompletionRequest,
    CompletionRequest,
    describe_validation_errors,
    error_body,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
POLL_S = 0.5  # how often a waiting handler checks whether its client is still there


def create_app(engines: dict[str, Engine], *, sources: dict[str, str] | None = None) -> FastAPI:
    """The server for ``engines`` (served name -> engine); ``sources`` maps names to where they came from."""
    if not engines:
        raise ValueError("no model to serve")
    app = FastAPI(title="tulu serve", description="OpenAI-compatible server for tulu models", version="1")
    app.state.engines = engines
    created = int(time.time())
    sources = sources or {}

    # ------------------------------------------------------------------ errors
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        message, param = describe_validation_errors(list(exc.errors()))
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {exc.detail}", code=code),
                            status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}: {exc}", type="server_error"),
                            status_code=500)

    # ------------------------------------------------------------------ small routes
    @app.get("/health")
    async def health():
        return {"status": "ok", "models": {name: e.stats() for name, e in engines.items()}}

    def model_card(name: str) -> dict[str, Any]:
        e = engines[name]
        return {"id": name, "object": "model", "created": created, "owned_by": "tulu",
                "root": sources.get(name, name), "max_model_len": e.max_model_len,
                "continuous_batching": e.continuous_batching}

    @app.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": [model_card(n) for n in engines]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        engine_for(model_id)
        return model_card(model_id)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def engine_for(model: str) -> Engine:
        if model not in engines:
            raise APIError(404, f"the model {model!r} does not exist; served models: {', '.join(engines)}",
                           param="model", code="model_not_found")
        return engines[model]

    # ------------------------------------------------------------------ chat
    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = parse(ChatCompletionRequest, await read_json(request))
        engine = engine_for(body.model)
        body.check_supported()
        ids = await encode(engine.encode_chat, body.chat_messages(), "messages")
        gen = make_request(engine, body, ids, body.requested_max_tokens(), logprobs=body.logprobs,
                           top_logprobs=body.top_logprobs or 0)
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = submit(engine, [gen])
        if body.stream:
            return SSEResponse(engine, [gen], chat_chunks(engine, gen, stream, rid, body.model, include_usage))
        results = await collect(request, engine, [gen], stream)
        choices = []
        for j in range(body.n):
            text, lps, finish, _ = results[j]
            choices.append({"index": j, "message": {"role": "assistant", "content": text},
                            "logprobs": {"content": [chat_logprob(engine, t) for t in lps]} if body.logprobs else None,
                            "finish_reason": finish})
        return {"id": rid, "object": "chat.completion", "created": int(time.time()), "model": body.model,
                "system_fingerprint": f"tulu-{engine.stats()['backend']}", "choices": choices,
                "usage": usage([gen], results)}

    async def chat_chunks(engine: Engine, gen: GenRequest, stream: EventStream, rid: str, model: str,
                          include_usage: bool) -> AsyncIterator[str]:
        created_at = int(time.time())

        def chunk(choices: list[dict], **extra) -> dict:
            return {"id": rid, "object": "chat.completion.chunk", "created": created_at, "model": model,
                    "system_fingerprint": f"tulu-{engine.stats()['backend']}", "choices": choices, **extra}

        yield sse([chunk([{"index": j, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                           "finish_reason": None}]) for j in range(gen.n)])

        def choice(ev: Event) -> dict:
            lp = {"content": [chat_logprob(engine, t) for t in ev.logprobs]} if gen.logprobs else None
            return {"index": ev.index, "delta": {"content": ev.text} if ev.text else {}, "logprobs": lp,
                    "finish_reason": ev.finish_reason}

        async for piece in relay(engine, [gen], stream, include_usage, chunk, choice):
            yield piece

    # ------------------------------------------------------------------ completions
    @app.post("/v1/completions")
    async def completions(request: Request):
        body = parse(CompletionRequest, await read_json(request))
        engine = engine_for(body.model)
        body.check_supported()
        gens = []
        for i, prompt in enumerate(body.prompts()):
            if isinstance(prompt, str):
                ids = await encode(engine.encode_text, prompt, "prompt")
            else:
                vocab = len(engine.tokenizer)
                bad = next((t for t in prompt if not 0 <= t < vocab), None)
                if bad is not None:
                    raise APIError(400, f"prompt: token id {bad} is outside the vocabulary (0..{vocab - 1})",
                                   param="prompt")
                ids = list(prompt)
            top = body.logprobs or 0
            gens.append(make_request(engine, body, ids, body.requested_max_tokens(), logprobs=body.logprobs is not None,
                                     top_logprobs=top, index_base=i * body.n, prompt_param="prompt"))
        rid = f"cmpl-{uuid.uuid4().hex[:24]}"
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        stream = submit(engine, gens)
        if body.stream:
            return SSEResponse(engine, gens, completion_chunks(engine, gens, stream, rid, body.model, include_usage))
        results = await collect(request, engine, gens, stream)
        choices = []
        for k in range(len(gens) * body.n):
            text, lps, finish, _ = results[k]
            choices.append({"index": k, "text": text, "finish_reason": finish,
                            "logprobs": completion_logprobs(engine, lps) if body.logprobs is not None else None})
        return {"id": rid, "object": "text_completion", "created": int(time.time()), "model": body.model,
                "choices": choices, "usage": usage(gens, results)}

    async def completion_chunks(engine: Engine, gens: list[GenRequest], stream: EventStream, rid: str, model: str,
                                include_usage: bool) -> AsyncIterator[str]:
        created_at = int(time.time())

        def chunk(choices: list[dict], **extra) -> dict:
            return {"id": rid, "object": "text_completion", "created": created_at, "model": model,
                    "choices": choices, **extra}

        def choice(ev: Event) -> dict:
            lp = completion_logprobs(engine, ev.logprobs) if gens[0].logprobs else None
            return {"index": ev.index, "text": ev.text, "logprobs": lp, "finish_reason": ev.finish_reason}

        async for piece in relay(engine, gens, stream, include_usage, chunk, choice):
            yield piece

    return app


# ---------------------------------------------------------------------- request plumbing
def sse(objs: list[dict]) -> str:
    return "".join(f"data: {json.dumps(o, ensure_ascii=False)}\n\n" for o in objs)


async def relay(engine: Engine, gens: list[GenRequest], stream: EventStream, include_usage: bool, chunk,
                choice) -> AsyncIterator[str]:
    """The SSE body after the first chunk: one chunk per event (those of one engine step in one write),
    usage on the last chunk (or, with ``stream_options.include_usage``, in a final chunk with no
    choices, as OpenAI sends it), then ``data: [DONE]``."""
    total = sum(g.n for g in gens)
    results: dict[int, list] = {}
    async for events in stream_events(engine, gens, stream, results):
        err = next((ev.error for ev in events if ev.error), None)
        if err:
            yield sse([error_body(f"generation failed: {err}", type="server_error")])
            return
        out = [chunk([choice(ev)]) for ev in events]
        finished = sum(r[2] is not None for r in results.values())
        if finished == total and not include_usage and out:
            out[-1]["usage"] = usage(gens, results)
        yield sse(out)
    if include_usage:
        yield sse([chunk([], usage=usage(gens, results))])
    yield "data: [DONE]\n\n"


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(400, f"the body is not valid JSON: {exc}", code="invalid_json") from None


def parse(model_cls, obj: Any):
    if not isinstance(obj, dict):
        raise APIError(400, f"the body must be a JSON object, got {type(obj).__name__}")
    try:
        return model_cls.model_validate(obj)
    except ValidationError as exc:
        message, param = describe_validation_errors(exc.errors())
        raise APIError(400, message, param=param) from None


async def encode(fn, arg, param: str) -> list[int]:
    try:
        ids = await run_in_threadpool(fn, arg)
    except Exception as exc:  # noqa: BLE001 - a template that rejects the conversation is a client error
        raise APIError(400, f"{param}: cannot be encoded: {exc}", param=param) from None
    if not ids:
        raise APIError(400, f"{param}: encodes to zero tokens", param=param)
    return ids


def make_request(engine: Engine, body, ids: list[int], max_tokens: int | None, *, logprobs: bool, top_logprobs: int,
                 index_base: int = 0, prompt_param: str = "messages") -> GenRequest:
    limit = engine.max_model_len
    if len(ids) >= limit:
        raise APIError(400, f"the prompt is {len(ids)} tokens; this model's context (max_model_len) is {limit} "
                            f"tokens, including the completion", param=prompt_param, code="context_length_exceeded")
    if max_tokens is None:
        max_tokens = limit - len(ids)
    elif len(ids) + max_tokens > limit:
        raise APIError(400, f"max_tokens is {max_tokens} and the prompt is {len(ids)} tokens: together "
                            f"{len(ids) + max_tokens}, more than this model's context of {limit} tokens",
                       param="max_tokens", code="context_length_exceeded")
    return GenRequest(prompt_ids=ids, n=body.n, temperature=float(body.temperature), top_p=float(body.top_p),
                      max_tokens=max_tokens, stop=body.stop_list(), seed=body.seed, logprobs=logprobs,
                      top_logprobs=top_logprobs, index_base=index_base)


def submit(engine: Engine, gens: list[GenRequest]) -> EventStream:
    stream = EventStream()
    for g in gens:
        g.stream = stream
        try:
            engine.submit(g)
        except ValueError as exc:
            for s in gens:
                engine.cancel(s)
            raise APIError(400, str(exc)) from None
    return stream


async def stream_events(engine: Engine, gens: list[GenRequest], stream: EventStream, results: dict[int, list],
                        request: Request | None = None) -> AsyncIterator[list[Event]]:
    """Yield the events of the submitted ``gens`` as they come, keeping per-choice totals in ``results``
    (index -> [text, logprobs, finish_reason, completion_tokens]). Cancels them on any early exit."""
    total = sum(g.n for g in gens)
    done = 0
    checked = time.monotonic()
    try:
        while done < total:
            try:
                events = await asyncio.wait_for(stream.get(), POLL_S)
            except TimeoutError:
                events = []
            if request is not None and time.monotonic() - checked >= POLL_S:
                checked = time.monotonic()
                if await request.is_disconnected():
                    raise APIError(499, "the client closed the request", code="client_closed_request")
            if not events:
                continue
            for ev in events:
                r = results.setdefault(ev.index, ["", [], None, 0])
                r[0] += ev.text
                r[1].extend(ev.logprobs)
                r[3] = ev.completion_tokens or r[3]
                if ev.finish_reason is not None:
                    r[2] = ev.finish_reason
                    done += 1
            yield events
    finally:
        if done < total:
            for g in gens:
                engine.cancel(g)


async def collect(request: Request, engine: Engine, gens: list[GenRequest], stream: EventStream) -> dict[int, list]:
    results: dict[int, list] = {}
    async for events in stream_events(engine, gens, stream, results, request):
        err = next((ev.error for ev in events if ev.error), None)
        if err:
            raise APIError(500, f"generation failed: {err}", type="server_error")
    return results


def usage(gens: list[GenRequest], results: dict[int, list]) -> dict[str, int]:
    prompt = sum(len(g.prompt_ids) for g in gens)
    completion = sum(r[3] for r in results.values())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_logprob(engine: Engine, t) -> dict[str, Any]:
    def entry(token_id: int, lp: float) -> dict[str, Any]:
        s = engine.token_text(token_id)
        return {"token": s, "logprob": lp, "bytes": list(s.encode("utf-8"))}

    return {**entry(t.token_id, t.logprob), "top_logprobs": [entry(i, lp) for i, lp in t.top]}


def completion_logprobs(engine: Engine, lps) -> dict[str, Any]:
    tokens = [engine.token_text(t.token_id) for t in lps]
    offsets, pos = [], 0
    for s in tokens:
        offsets.append(pos)
        pos += len(s)
    return {"tokens": tokens, "token_logprobs": [t.logprob for t in lps],
            "top_logprobs": [{engine.token_text(i): lp for i, lp in t.top} for t in lps], "text_offset": offsets}


class SSEResponse(StreamingResponse):
    """A ``text/event-stream`` response that cancels its requests however the stream ends (a client
    that disconnects frees its slots at once, even before the generator's first step)."""

    def __init__(self, engine: Engine, gens: list[GenRequest], content):
        super().__init__(content, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._engine = engine
        self._gens = gens

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            for g in self._gens:
                if g.stream is not None:
                    self._engine.cancel(g)
