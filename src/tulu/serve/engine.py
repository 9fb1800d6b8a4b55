"""Continuous batching for `tulu serve`: one scheduler thread per model over the fast backend's primitives.

The asyncio server never runs model code. Each :class:`FastEngine` owns a thread and a preallocated KV
cache ``[layers, 2, slots, kv_heads, max_len, dim]`` (rows ``0..B-1`` are the running sequences). Its loop:

1. takes new requests and cancellations off a thread-safe queue (blocking only when idle);
2. drops the rows of cancelled requests at once (a client that disconnects frees its slots before the
   next decode step);
3. while rows are free, prefills waiting prompts after the chat template's fixed start (its default system
   prompt and user header, computed once at start-up and copied into each row), several packed into one call within ``prefill_tokens``
   (:meth:`FastLlama.prefill`; one such call per decode step while other rows are running, so a burst of
   arrivals delays the running streams by one call at a time), and admits their choices: a prompt is
   computed once for its ``n`` choices, each choice copies its keys/values into a free row and draws its
   first token;
4. runs one decode step for every running row (:meth:`FastLlama.decode`), samples each row with its own
   request's temperature / top-p / generator, detokenizes incrementally, applies stop tokens and stop
   strings, and hands the new text to the request's asyncio queue with ``loop.call_soon_threadsafe``;
5. a finished row leaves at once and the last row moves into its hole, so a request arriving while
   others decode joins the very next step.

Seeds: choice ``j`` of a request with ``seed`` draws from a generator seeded with
``sample_seed(seed, 0, j)``, the seed the fast backend gives sample ``j`` of a lone prompt, and one
uniform per step exactly as it does. With the compiled CPU kernels a row's logits do not depend on the
other rows of its batch (see docs/rollout.md, "Batch invariance"), so a seeded request returns the same
tokens whether it runs alone or among 63 others, and the same as ``FastBackend.generate`` of that
prompt with the same seed (tested).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import queue
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from tulu.rollout import sampling
from tulu.rollout.common import encode_prompt, find_stop, sample_seed, stop_token_ids

log = logging.getLogger(__name__)

MIN_HEAD_TOKENS = 8  # a shorter chat-template head is not worth its own keys/values


@dataclass
class TokenLogprob:
    token_id: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)  # (token id, logprob), most likely first


@dataclass
class Event:
    """What one choice of a request produced since the last event: new text (possibly empty), the
    log-probs of its new tokens when asked for, and, on its last event, why it stopped."""

    index: int
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" | "error"
    completion_tokens: int = 0  # generated tokens so far, stop token included
    error: str | None = None


@dataclass
class GenRequest:
    """One request as the engine sees it. ``stream`` receives lists of :class:`Event` on the event loop."""

    prompt_ids: list[int]
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    stream: EventStream | None = None
    index_base: int = 0  # added to choice indices in events (several prompts of one /v1/completions call)
    cancelled: bool = False
    arrived: float = field(default_factory=time.perf_counter)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


class EventStream:
    """Carries a request's events from the engine thread to one asyncio consumer."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.loop = loop or asyncio.get_running_loop()
        self.queue: asyncio.Queue[list[Event]] = asyncio.Queue()

    def push(self, events: list[Event]) -> None:  # engine thread
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, events)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    async def get(self) -> list[Event]:
        return await self.queue.get()


class Engine(abc.ABC):
    """What the HTTP layer needs from a model: encoding, limits, submission, cancellation, stats."""

    name: str
    tokenizer: object
    max_model_len: int
    continuous_batching: bool = False

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return encode_prompt(messages, self.tokenizer, "tokenizer")

    def encode_text(self, text: str) -> list[int]:
        return encode_prompt(text, self.tokenizer)

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    @abc.abstractmethod
    def submit(self, req: GenRequest) -> None:
        """Queue ``req``; its events go to ``req.stream``. Never blocks."""

    def cancel(self, req: GenRequest) -> None:
        """Stop ``req`` and free its slots (idempotent)."""
        req.cancelled = True
        self._wake()

    def _wake(self) -> None:
        pass

    @abc.abstractmethod
    def stats(self) -> dict:
        pass

    def close(self) -> None:
        pass


class ThreadedEngine(Engine):
    """An engine whose generation runs in one thread of its own, fed through a queue (the event loop never
    waits on it). Subclasses implement ``_run``, which takes requests from ``self.inbox`` (``None`` wakes it)."""

    def _start_thread(self, name: str) -> None:
        self.inbox: queue.SimpleQueue[GenRequest | None] = queue.SimpleQueue()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"tulu-serve-{name}", daemon=True)
        self._thread.start()

    @abc.abstractmethod
    def _run(self) -> None: ...

    def submit(self, req: GenRequest) -> None:
        if len(req.prompt_ids) + req.max_tokens > self.max_model_len:
            raise ValueError(f"prompt ({len(req.prompt_ids)}) + max_tokens ({req.max_tokens}) exceed "
                             f"max_model_len {self.max_model_len}")
        self.inbox.put(req)

    def _wake(self) -> None:
        self.inbox.put(None)

    def close(self) -> None:
        self._closing = True
        self._wake()
        self._thread.join(timeout=10)


@dataclass
class _Prefill:
    """A prefilled prompt whose choices wait for free rows."""

    req: GenRequest
    kv: torch.Tensor  # [layers, 2, kv_heads, prompt_len - start, dim]
    logits: torch.Tensor  # [vocab] at the last prompt token
    start: int = 0  # tokens of the cached chat-template head this prompt begins with (0: none)
    next_choice: int = 0


@dataclass
class _Row:
    req: GenRequest
    index: int  # choice index within the request
    generator: torch.Generator | None
    max_new: int
    out: list[int] = field(default_factory=list)
    text: str = ""  # detokenized so far (see FastEngine._detokenize)
    prefix_offset: int = 0
    read_offset: int = 0
    sent: int = 0  # characters of text already handed out
    finish: str | None = None

    @property
    def length(self) -> int:  # tokens whose keys/values are (or, for the last one, will be) cached
        return len(self.req.prompt_ids) + len(self.out)


class FastEngine(ThreadedEngine):
    """``FastEngine(name, model, tokenizer, max_batch_size=32, max_model_len=2048, kv_cache_gb=4.0)``.

    ``max_model_len`` bounds prompt + completion tokens (and the cache's length axis); the number of
    slots is ``max_batch_size`` or fewer if ``kv_cache_gb`` cannot hold that many full-length rows. On
    CPU with the compiled kernels the cache is left uninitialised and the OS commits its pages only as
    rows fill up, so the figure is an upper bound rather than memory taken at start.
    """

    continuous_batching = True

    def __init__(self, name: str, model, tokenizer, *, max_batch_size: int = 32, max_model_len: int = 2048,
                 kv_cache_gb: float = 4.0, prefill_tokens: int = 512, device: str | None = None,
                 compiled: bool | None = None, weights: str = "float32"):
        """``weights``: the compiled CPU decode step's weight precision (float32 | bfloat16 | auto;
        :mod:`tulu.rollout.weights`), logged once."""
        from tulu.rollout.llama import FastLlama

        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.name = name
        self.tokenizer = tokenizer
        self.eng = FastLlama(model, batch_hint=max_batch_size, device=device, compiled=compiled, weights=weights)
        log.info("%s: %s", name, self.eng.weight_choice.describe())
        self.max_model_len = min(max_model_len, self.eng.max_positions)
        per_row = self.eng.cache_bytes(1, self.max_model_len)
        self.slots = max(1, min(max_batch_size, int(kv_cache_gb * 2**30) // per_row))
        self.prefill_tokens = prefill_tokens
        self.stop_ids = stop_token_ids(tokenizer, getattr(model, "generation_config", None), _NoExtraStops)
        self.cache = self.eng.new_cache(self.slots, self.max_model_len)
        self.head, self.head_kv = self._template_head()
        self.waiting: deque[GenRequest] = deque()
        self.prefilled: deque[_Prefill] = deque()
        self.rows: list[_Row] = []
        self.counters = {"requests": 0, "steps": 0, "tokens": 0, "peak_rows": 0, "cancelled": 0}
        self._start_thread(name)

    # ------------------------------------------------------------------ public
    def stats(self) -> dict:
        return {"backend": "fast", "continuous_batching": True, "slots": self.slots,
                "max_model_len": self.max_model_len, "running_rows": len(self.rows),
                "waiting_requests": len(self.waiting) + len(self.prefilled), "compiled_kernels": self.eng.compiled,
                "cached_head_tokens": len(self.head), **self.counters}

    # ------------------------------------------------------------------ loop
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while not self._closing:
            try:
                self._take(block=not (self.rows or self.waiting or self.prefilled))
                if self._closing:
                    break
                self._drop_cancelled()
                self._admit()
                if self.rows:
                    self._step()
            except Exception as exc:
                log.exception("%s: generation failed", self.name)
                self._fail_all(f"{type(exc).__name__}: {exc}")

    def _take(self, block: bool) -> None:
        try:
            item = self.inbox.get(block=block)
        except queue.Empty:
            return
        while True:
            if item is not None:
                self.waiting.append(item)
                self.counters["requests"] += 1
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _drop_cancelled(self) -> None:
        if any(r.cancelled for r in self.waiting):
            self.waiting = deque(r for r in self.waiting if not r.cancelled)
        if any(p.req.cancelled for p in self.prefilled):
            self.prefilled = deque(p for p in self.prefilled if not p.req.cancelled)
        gone = [i for i, row in enumerate(self.rows) if row.req.cancelled]
        for i in reversed(gone):
            self._remove_row(i)
            self.counters["cancelled"] += 1

    def _fail_all(self, message: str) -> None:
        reqs = {id(r.req): r.req for r in self.rows} | {id(p.req): p.req for p in self.prefilled}
        reqs |= {id(r): r for r in self.waiting}
        for req in reqs.values():
            if req.stream is not None:
                req.stream.push([Event(index=req.index_base + j, finish_reason="error", error=message)
                                 for j in range(req.n)])
        self.rows.clear()
        self.waiting.clear()
        self.prefilled.clear()

    # ------------------------------------------------------------------ admission
    def _admit(self) -> None:
        events: dict[int, tuple[GenRequest, list[Event]]] = {}
        packs = 0
        while len(self.rows) < self.slots and (self.prefilled or self.waiting):
            if not self.prefilled:
                # one prefill call per decode step while rows are running, so a burst of arrivals does not
                # stall the running streams for the whole burst's prefill; first tokens go out per call
                if packs and self.rows:
                    break
                self._flush(events)
                events = {}
                self._prefill(self.slots - len(self.rows))
                packs += 1
                continue
            pre = self.prefilled[0]
            req, j = pre.req, pre.next_choice
            pre.next_choice += 1
            if pre.next_choice == req.n:
                self.prefilled.popleft()
            gen = None
            if not req.greedy:
                gen = torch.Generator(device="cpu")
                gen.manual_seed(sample_seed(req.seed, 0, j) if req.seed is not None else random.getrandbits(62))
            row = _Row(req, j, gen, max_new=min(req.max_tokens, self.max_model_len - len(req.prompt_ids)))
            slot = len(self.rows)
            if pre.start:
                self.cache[:, :, slot, :, :pre.start] = self.head_kv
            self.cache[:, :, slot, :, pre.start:len(req.prompt_ids)] = pre.kv
            self.rows.append(row)
            self._sample([row], pre.logits[None], events)
            if row.finish is not None:
                self.rows.pop()
        self.counters["peak_rows"] = max(self.counters["peak_rows"], len(self.rows))
        self._flush(events)

    def _template_head(self) -> tuple[list[int], torch.Tensor | None]:
        """The chat template's fixed start (e.g. its default system prompt and the user header), prefilled
        once: the tokens two different one-message conversations share. Prompts that begin with it (and go
        on past it) prefill only the rest, attending to these keys/values, exactly as the fast backend
        prefills a prefix shared by a batch. Whether a prompt uses it depends only on the prompt, never on
        what else is queued, so batching still does not change answers."""
        try:
            a, b = (self.encode_chat([{"role": "user", "content": c}]) for c in ("Alpha?", "Zulu!"))
        except Exception:  # noqa: BLE001 - no chat template: no head to cache
            return [], None
        n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        if n < MIN_HEAD_TOKENS:
            return [], None
        kv = self.eng.prefill([a[:n]])[1]  # [layers, 2, n, kv_heads, dim]
        return a[:n], kv.permute(0, 1, 3, 2, 4).contiguous()

    def _start(self, ids: list[int]) -> int:
        h = len(self.head)
        return h if h and len(ids) > h and ids[:h] == self.head else 0

    def _prefill(self, free: int) -> None:
        """Prefill waiting prompts packed together: enough choices for ``free`` rows, within the token
        budget (always at least one prompt). Prompts that begin with the template head are packed apart
        from the others and computed after it."""
        batch: list[GenRequest] = []
        tokens = choices = 0
        start = self._start(self.waiting[0].prompt_ids)
        while self.waiting and (not batch or (choices < free and self._start(self.waiting[0].prompt_ids) == start
                                              and tokens + len(self.waiting[0].prompt_ids) - start
                                              <= self.prefill_tokens)):
            req = self.waiting.popleft()
            batch.append(req)
            tokens += len(req.prompt_ids) - start
            choices += req.n
        past = self.head_kv.permute(0, 1, 3, 2, 4) if start else None
        logits, kv = self.eng.prefill([r.prompt_ids[start:] for r in batch], past=past)
        off = 0
        for j, req in enumerate(batch):
            p = len(req.prompt_ids) - start
            self.prefilled.append(_Prefill(req, kv[:, :, off:off + p].permute(0, 1, 3, 2, 4), logits[j], start))
            off += p

    # ------------------------------------------------------------------ decoding
    def _step(self) -> None:
        rows = self.rows
        dev = self.eng.device
        tokens = torch.tensor([r.out[-1] for r in rows], device=dev)
        positions = torch.tensor([r.length - 1 for r in rows], device=dev)
        logits = self.eng.decode(self.cache, tokens, positions)
        self.counters["steps"] += 1
        events: dict[int, tuple[GenRequest, list[Event]]] = {}
        self._sample(rows, logits, events)
        for i in reversed([i for i, r in enumerate(rows) if r.finish is not None]):
            self._remove_row(i)
        self._flush(events)

    def _remove_row(self, i: int) -> None:
        """Free row ``i``: the last row moves into it so the running rows stay contiguous."""
        last = len(self.rows) - 1
        if i != last:
            n = self.rows[last].length - 1  # the last token's keys/values are not cached yet
            self.cache[:, :, i, :, :n] = self.cache[:, :, last, :, :n]
            self.rows[i] = self.rows[last]
        self.rows.pop()

    def _sample(self, rows: list[_Row], logits: torch.Tensor, events: dict) -> None:
        """Draw the next token of every row (rows grouped by their sampling settings), then update text."""
        groups: dict[tuple[float, float], list[int]] = {}
        for i, r in enumerate(rows):
            groups.setdefault((r.req.temperature, r.req.top_p), []).append(i)
        toks: list[int] = [0] * len(rows)
        lps: list[float | None] = [None] * len(rows)
        compiled = self.eng.compiled
        for (temp, top_p), idx in groups.items():
            z = logits if len(idx) == len(rows) else logits[idx]
            want_lp = any(rows[i].req.logprobs for i in idx)
            if temp == 0.0:
                t, lp = sampling.greedy(z, compiled)
                lp_list = lp.tolist()
            else:
                uniforms = torch.stack([torch.rand((), generator=rows[i].generator) for i in idx]).to(z.device)
                t = sampling.sample(z, temperature=temp, top_k=0, top_p=top_p, uniforms=uniforms, compiled=compiled)
                lp_list = sampling.token_logprobs(z, t, temp, compiled).tolist() if want_lp else [None] * len(idx)
            for k, i in enumerate(idx):
                toks[i] = int(t[k])
                lps[i] = lp_list[k]
        for i, r in enumerate(rows):
            top: list[tuple[int, float]] = []
            if r.req.top_logprobs:
                z = sampling.scaled(logits[i].float(), r.req.temperature or 1.0).log_softmax(-1)
                vals, ids = z.topk(r.req.top_logprobs)
                top = list(zip(ids.tolist(), vals.tolist()))
            self._advance(r, toks[i], lps[i], top, events)
        self.counters["tokens"] += len(rows)

    def _advance(self, r: _Row, tok: int, lp: float | None, top: list, events: dict) -> None:
        r.out.append(tok)
        req = r.req
        ev = Event(index=req.index_base + r.index)
        if tok in self.stop_ids:
            r.finish = "stop"
        else:
            if req.logprobs:
                ev.logprobs.append(TokenLogprob(tok, float(lp), top))
            self._detokenize(r)
            if req.stop and find_stop(r.text, req.stop) >= 0:
                r.finish = "stop"
            elif len(r.out) >= r.max_new:
                r.finish = "length"
        if r.finish is None:
            text = _holdback(r.text, req.stop)
        else:  # the whole text once, decoded in one piece, cut before a stop string
            body = r.out[:-1] if r.out[-1] in self.stop_ids else r.out
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            cut = find_stop(text, req.stop) if req.stop else -1
            text = text[:cut] if cut >= 0 else text
        if len(text) > r.sent:
            ev.text = text[r.sent:]
            r.sent = len(text)
        ev.finish_reason = r.finish
        ev.completion_tokens = len(r.out)
        if ev.text or ev.logprobs or ev.finish_reason:
            events.setdefault(id(req), (req, []))[1].append(ev)

    def _detokenize(self, r: _Row) -> None:
        """Extend ``r.text`` with the newest token's text, decoding only a short window of tokens (a full
        decode per step is quadratic in the answer's length). The window starts a few tokens back so that
        tokenizers whose pieces depend on their neighbours decode as they do in one piece; a token that
        ends inside a UTF-8 character waits for the next one."""
        before = self.tokenizer.decode(r.out[r.prefix_offset:r.read_offset], skip_special_tokens=True)
        after = self.tokenizer.decode(r.out[r.prefix_offset:], skip_special_tokens=True)
        if len(after) > len(before) and not after.endswith("\ufffd"):
            r.text += after[len(before):]
            r.prefix_offset = r.read_offset
            r.read_offset = len(r.out)

    @staticmethod
    def _flush(events: dict) -> None:
        for req, evs in events.values():
            if req.stream is not None and not req.cancelled:
                req.stream.push(evs)


class _NoExtraStops:  # stop_token_ids() reads .stop_token_ids from a SamplingParams-like object
    stop_token_ids: tuple[int, ...] = ()


def _holdback(text: str, stops: list[str]) -> str:
    """The part of a running completion's text that is safe to send: without a tail that could be the start
    of a stop string."""
    keep = len(text)
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if text.endswith(s[:k]):
                keep = min(keep, len(text) - k)
                break
    return text[:keep]
