"""The GPU engine of `tulu serve`: vLLM's ``AsyncLLMEngine`` behind the same interface as the CPU engine.

vLLM batches continuously by itself (paged KV cache, its own scheduler). This adapter runs its engine on an
asyncio loop in a dedicated thread (vLLM's loop, not the HTTP server's), turns each request into one vLLM
request with ``n`` choices, converts vLLM's cumulative outputs into the text deltas, log-probs and finish
reasons the HTTP layer relays, and aborts a request in vLLM when its client goes away.

vLLM is not installable on the CPU machines this project is developed on: this glue is tested against a
fake engine with vLLM's ``generate(prompt, sampling_params, request_id)`` / ``abort(request_id)``
interface (tests/serve/test_vllm_engine.py); the real engine has not run here. Log-probs are vLLM's own
(by default from the raw logits, i.e. before temperature), not the fast engine's definition.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from tulu.serve.engine import Engine, Event, GenRequest, TokenLogprob

log = logging.getLogger(__name__)


def vllm_sampling_kwargs(req: GenRequest) -> dict:
    """A request's settings as keyword arguments of ``vllm.SamplingParams``."""
    return {"n": req.n, "temperature": req.temperature, "top_p": req.top_p, "max_tokens": req.max_tokens,
            "stop": list(req.stop) or None, "seed": req.seed,
            "logprobs": req.top_logprobs if req.logprobs else None,
            "skip_special_tokens": True, "include_stop_str_in_output": False}


def _logprob_entries(token_ids: list[int], logprobs, k: int) -> list[TokenLogprob]:
    """vLLM gives, per position, a dict token id -> Logprob (``.logprob``) holding the ``k`` most likely
    tokens and the sampled one."""
    out = []
    for tok, entry in zip(token_ids, logprobs or []):
        vals = {int(i): float(getattr(v, "logprob", v)) for i, v in entry.items()}
        top = sorted(vals.items(), key=lambda kv: -kv[1])[:k]
        out.append(TokenLogprob(tok, vals.get(tok, float("nan")), top))
    return out


class VLLMEngine(Engine):
    """``VLLMEngine(name, path, max_model_len=2048, **engine_args)``; ``engine=`` and ``sampling_params_cls=``
    accept a ready engine and its parameter class (tests pass fakes)."""

    continuous_batching = True

    def __init__(self, name: str, path: str | None = None, tokenizer=None, *, max_model_len: int = 2048,
                 engine=None, sampling_params_cls=None, **engine_args):
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"tulu-serve-vllm-{name}", daemon=True)
        self._thread.start()
        if engine is None:
            from tulu.rollout.vllm import vllm_available

            if not vllm_available():
                raise ImportError("--backend vllm needs vLLM (pip install 'tulu[gpu]' on a CUDA machine)")
            from vllm import AsyncEngineArgs, AsyncLLMEngine

            args = AsyncEngineArgs(model=path, max_model_len=max_model_len, **engine_args)
            engine = asyncio.run_coroutine_threadsafe(self._build(AsyncLLMEngine, args), self.loop).result()
        if sampling_params_cls is None:
            from vllm import SamplingParams as sampling_params_cls
        if tokenizer is None:
            from tulu.models import load_tokenizer

            tokenizer = load_tokenizer(path)
        self.engine = engine
        self.sampling_params_cls = sampling_params_cls
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self.ids: dict[int, str] = {}  # id(GenRequest) -> vLLM request id, while it runs
        self.counters = {"requests": 0, "tokens": 0, "cancelled": 0}

    @staticmethod
    async def _build(engine_cls, args):  # vLLM's engine must be created on the loop that will drive it
        return engine_cls.from_engine_args(args)

    def submit(self, req: GenRequest) -> None:
        if len(req.prompt_ids) + req.max_tokens > self.max_model_len:
            raise ValueError(f"prompt ({len(req.prompt_ids)}) + max_tokens ({req.max_tokens}) exceed "
                             f"max_model_len {self.max_model_len}")
        rid = f"tulu-{uuid.uuid4().hex}"
        self.ids[id(req)] = rid
        self.counters["requests"] += 1
        asyncio.run_coroutine_threadsafe(self._run(req, rid), self.loop)

    def cancel(self, req: GenRequest) -> None:
        req.cancelled = True
        rid = self.ids.pop(id(req), None)
        if rid is not None:
            self.counters["cancelled"] += 1
            asyncio.run_coroutine_threadsafe(self.engine.abort(rid), self.loop)

    def stats(self) -> dict:
        return {"backend": "vllm", "continuous_batching": True, "max_model_len": self.max_model_len,
                "running_rows": len(self.ids), "waiting_requests": 0, **self.counters}

    def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    async def _run(self, req: GenRequest, rid: str) -> None:
        params = self.sampling_params_cls(**vllm_sampling_kwargs(req))
        sent = [0] * req.n
        seen = [0] * req.n
        finished = [False] * req.n
        try:
            async for out in self.engine.generate({"prompt_token_ids": list(req.prompt_ids)}, params, rid):
                if req.cancelled:
                    return
                events = []
                for c in out.outputs:
                    j = c.index
                    if finished[j]:
                        continue
                    ids = list(c.token_ids)
                    ev = Event(index=req.index_base + j, text=c.text[sent[j]:], completion_tokens=len(ids))
                    if req.logprobs:
                        ev.logprobs = _logprob_entries(ids[seen[j]:], (c.logprobs or [])[seen[j]:], req.top_logprobs)
                    self.counters["tokens"] += len(ids) - seen[j]
                    sent[j], seen[j] = len(c.text), len(ids)
                    if c.finish_reason is not None:
                        ev.finish_reason = "stop" if c.finish_reason == "stop" else "length"
                        finished[j] = True
                    if ev.text or ev.logprobs or ev.finish_reason:
                        events.append(ev)
                if events and req.stream is not None:
                    req.stream.push(events)
        except Exception as exc:
            log.exception("%s: vLLM generation failed", self.name)
            if req.stream is not None:
                req.stream.push([Event(index=req.index_base + j, finish_reason="error",
                                       error=f"{type(exc).__name__}: {exc}") for j in range(req.n)])
        finally:
            self.ids.pop(id(req), None)
