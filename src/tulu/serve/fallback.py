"""The fallback engine for models the fast backend cannot run (non-Llama architectures): HF ``generate``.

One request at a time in a worker thread, through :class:`tulu.rollout.hf.HFBackend`: no continuous
batching, and a streamed answer arrives as one chunk when its generation ends. Sampling parameters,
stop strings, seeds and sampled-token log-probs work as in the fast engine; ``top_logprobs`` come back
empty. A request cancelled while it waits never runs; one already generating runs to its end.
"""

from __future__ import annotations

import logging

from tulu.rollout.base import SamplingParams
from tulu.serve.engine import Event, ThreadedEngine, TokenLogprob

log = logging.getLogger(__name__)


class HFEngine(ThreadedEngine):
    continuous_batching = False

    def __init__(self, name: str, model, tokenizer, *, max_model_len: int = 2048):
        from tulu.rollout.hf import HFBackend

        self.name = name
        self.tokenizer = tokenizer
        self.backend = HFBackend(model, tokenizer, batch_size=1)
        limit = getattr(model.config, "max_position_embeddings", None) or max_model_len
        self.max_model_len = min(max_model_len, limit)
        self.counters = {"requests": 0, "tokens": 0, "cancelled": 0}
        self.busy = False
        self._start_thread(name)

    def stats(self) -> dict:
        return {"backend": "hf", "continuous_batching": False, "max_model_len": self.max_model_len,
                "running_rows": int(self.busy), "waiting_requests": self.inbox.qsize(), **self.counters}

    def _run(self) -> None:
        while not self._closing:
            req = self.inbox.get()
            if req is None or req.cancelled:
                if req is not None:
                    self.counters["cancelled"] += 1
                continue
            self.counters["requests"] += 1
            self.busy = True
            try:
                params = SamplingParams(n=req.n, temperature=req.temperature, top_p=req.top_p,
                                        max_new_tokens=req.max_tokens, stop=list(req.stop), seed=req.seed,
                                        logprobs=req.logprobs)
                out = self.backend.generate([req.prompt_ids], params)[0]
                events = []
                for j, c in enumerate(out.completions):
                    lps = [TokenLogprob(t, lp) for t, lp in zip(c.token_ids, c.logprobs or [])] if req.logprobs else []
                    events.append(Event(index=req.index_base + j, text=c.text, logprobs=lps, finish_reason=c.finish_reason,
                                        completion_tokens=len(c.token_ids)))
                    self.counters["tokens"] += len(c.token_ids)
            except Exception as exc:
                log.exception("%s: generation failed", self.name)
                events = [Event(index=req.index_base + j, finish_reason="error", error=f"{type(exc).__name__}: {exc}")
                          for j in range(req.n)]
            finally:
                self.busy = False
            if req.stream is not None and not req.cancelled:
                req.stream.push(events)
