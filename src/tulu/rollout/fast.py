"""Our fast backend: static KV cache, batched decode, continuous batching, shared prompt KV for n > 1.

How one ``generate`` call runs:

1. Prompts are encoded and queued. The longest prefix that all of them share (chat template, system
   prompt, few-shot examples), when it is at least ``MIN_SHARED_PREFIX`` tokens, is prefilled once.
   Prompts are then prefilled several at a time after it, packed into one row (causal attention within
   each prompt and to the shared prefix; :meth:`FastLlama.prefill`), and each prompt's keys/values and
   last-token logits are kept until all its ``n`` samples have been admitted: the prompt is computed
   once however many samples are drawn from it (GRPO groups).
2. A preallocated cache ``[layers, 2, slots, kv_heads, max_len, dim]`` holds up to ``max_batch_size``
   running sequences in rows ``0..B-1``. Admitting a sample copies its prompt's keys/values into a free
   row and draws its first token from the stored logits.
3. Each decode step runs one token for every running row. A sequence that stops (stop token, stop
   string, ``max_new_tokens``, context end) leaves at once; a waiting sample takes its row, or the last
   row moves into the hole so the running rows stay contiguous (continuous batching).

Each sample draws from its own ``torch.Generator`` seeded from (seed, prompt index, sample index).

On CPU fp32 the decode step is one call into compiled code (``csrc/decode.cpp``, built once per machine by
:mod:`tulu.rollout.kernels`): every layer's matmuls on panel-packed weights, norms, RoPE, the cache write
and attention, without Python in between; top-p also runs there. Without a C++ compiler the same
arithmetic runs as a Python step on oneDNN kernels. ``dtype="bfloat16"`` (or ``"auto"``, where a cached
per-machine measurement shows it faster) stores the step's weights as bf16: multiplied in bf16 with fp32
accumulation where the kernels are built for AVX512-BF16, else widened to fp32 as they are read
(:mod:`tulu.rollout.weights`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tulu.rollout import sampling
from tulu.rollout.base import Completion, GenerationBackend, Prompt, RequestOutput, SamplingParams
from tulu.rollout.common import (
    base_seed,
    encode_prompts,
    find_stop,
    make_completion,
    progress_bar,
    sample_seed,
    stop_token_ids,
)
from tulu.rollout.llama import FastLlama

log = logging.getLogger(__name__)

MIN_SHARED_PREFIX = 8  # tokens; a shorter common prefix is not worth its own prefill call


@dataclass
class _Prefix:
    """A prefilled prompt waiting for its samples to be admitted."""

    index: int
    ids: list[int]
    kv: torch.Tensor  # [layers, 2, kv_heads, len - shared prefix, dim]
    logits: torch.Tensor  # [vocab], at the last prompt token
    next_sample: int = 0


@dataclass
class _Seq:
    prompt: int
    sample: int
    prompt_ids: list[int]
    generator: torch.Generator | None
    max_new: int
    out: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    stopped: bool = False

    @property
    def length(self) -> int:  # tokens whose keys/values are (or will be, for the last one) in the cache
        return len(self.prompt_ids) + len(self.out)


class FastBackend(GenerationBackend):
    """``get_backend("fast", model, tokenizer, max_batch_size=32, kv_cache_gb=2.0, prefill_tokens=2048)``.

    ``compiled``: use the compiled CPU decode step and matmul (``None``: whenever they load; ``False``: the
    Python step on oneDNN kernels, for comparison; ``True``: require them).
    ``dtype``: weight precision of the decode step, ``float32`` (default) | ``bfloat16`` | ``auto``
    (:mod:`tulu.rollout.weights`; the choice and why are logged and kept as ``engine.weight_choice``).
    ``share_prefix``: prefill the prefix common to all prompts of a call once (outputs are the same either
    way up to float rounding; ``False`` for comparison).
    """

    name = "fast"

    def __init__(self, model, tokenizer, *, max_batch_size: int = 32, kv_cache_gb: float = 2.0,
                 prefill_tokens: int = 2048, template: str = "tokenizer", device: str | None = None,
                 compiled: bool | None = None, share_prefix: bool = True, dtype: str = "float32"):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.tokenizer = tokenizer
        self.model_config = model.config
        self.generation_config = getattr(model, "generation_config", None)
        self.engine = FastLlama(model, batch_hint=max_batch_size, device=device, compiled=compiled, weights=dtype)
        log.info(self.engine.weight_choice.describe())
        self.max_batch_size = max_batch_size
        self.kv_cache_bytes = int(kv_cache_gb * 2**30)
        self.prefill_tokens = prefill_tokens
        self.template = template
        self.share_prefix = share_prefix

    def update_weights(self, state_dict) -> None:
        """In-place weight update from a training process (HF parameter names)."""
        self.engine.load_state_dict(dict(state_dict))

    # ------------------------------------------------------------------ public API
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        ids = encode_prompts(prompts, self.tokenizer, self.template)
        if not ids:
            return []
        max_pos = self.engine.max_positions
        for i, p in enumerate(ids):
            if len(p) >= max_pos:
                raise ValueError(f"prompt {i}: {len(p)} tokens, the model's context is {max_pos}")
        max_len = min(max(len(p) for p in ids) + params.max_new_tokens, max_pos)
        slots = min(self.max_batch_size, len(ids) * params.n)
        per_row = self.engine.cache_bytes(1, max_len)
        slots = max(1, min(slots, self.kv_cache_bytes // max(per_row, 1)))
        run = _Run(self, ids, params, slots, max_len)
        with progress_bar(len(ids) * params.n, "generate", progress) as bar:
            run.loop(bar)
        return [RequestOutput(prompt_index=i, completions=run.results[i]) for i in range(len(ids))]


    def loglikelihood(self, requests):
        """Teacher-forced log-probs of each request's continuation, through the engine's packed prefill
        (:mod:`tulu.rollout.loglik`)."""
        from tulu.rollout.loglik import encode_requests, fast_loglikelihood

        pairs = encode_requests(requests, self.tokenizer, self.template)
        return fast_loglikelihood(self.engine, pairs, max_tokens=self.prefill_tokens)


class _Run:
    """State of one ``generate`` call."""

    def __init__(self, backend: FastBackend, ids: list[list[int]], params: SamplingParams, slots: int, max_len: int):
        self.b = backend
        self.eng = backend.engine
        self.params = params
        self.ids = ids
        self.max_len = max_len
        self.stop_ids = stop_token_ids(backend.tokenizer, backend.generation_config, params)
        self.cache = self.eng.new_cache(slots, max_len)
        self.slots = slots
        self.waiting: deque[int] = deque(range(len(ids)))
        self.prefixes: deque[_Prefix] = deque()
        self.active: list[_Seq] = []
        self.results: list[list[Completion | None]] = [[None] * params.n for _ in ids]
        self.seed = None if params.greedy else base_seed(params)
        self.shared = self._shared_prefix() if backend.share_prefix else None  # [layers, 2, P, kv_heads, dim]
        self.start = 0 if self.shared is None else self.shared.shape[2]

    # ------------------------------------------------------------------ loop
    def loop(self, bar) -> None:
        while self.waiting or self.prefixes or self.active:
            self._admit(bar)
            if self.active:
                self._step(bar)

    def _admit(self, bar) -> None:
        while len(self.active) < self.slots and (self.prefixes or self.waiting):
            if not self.prefixes:
                self._prefill(self.slots - len(self.active))
            pre = self.prefixes[0]
            seq = self._new_seq(pre)
            pre.next_sample += 1
            if pre.next_sample == self.params.n:
                self.prefixes.popleft()
            row = len(self.active)
            if self.shared is not None:
                self.cache[:, :, row, :, :self.start] = self.shared.permute(0, 1, 3, 2, 4)
            self.cache[:, :, row, :, self.start:len(pre.ids)] = pre.kv
            self._append(seq, pre.logits[None])
            if self._done(seq):
                self._finish(seq, bar)
            else:
                self.active.append(seq)

    def _shared_prefix(self) -> torch.Tensor | None:
        """Keys/values of the longest prefix common to all prompts (each keeps at least one token of its own,
        whose logits it needs), when there are several prompts and it is long enough."""
        if len(self.ids) < 2:
            return None
        first, n = self.ids[0], min(len(p) for p in self.ids) - 1
        for p in self.ids[1:]:
            n = next((j for j in range(n) if p[j] != first[j]), n)
        if n < MIN_SHARED_PREFIX:
            return None
        return self.eng.prefill([first[:n]])[1]

    def _prefill(self, free: int) -> None:
        """Prefill queued prompts packed together: enough samples to fill ``free`` rows, within the
        prefill token budget (always at least one prompt)."""
        batch: list[int] = []
        tokens = samples = 0
        while self.waiting and (not batch or (samples < free and tokens + len(self.ids[self.waiting[0]]) - self.start
                                               <= self.b.prefill_tokens)):
            i = self.waiting.popleft()
            batch.append(i)
            tokens += len(self.ids[i]) - self.start
            samples += self.params.n
        logits, kv = self.eng.prefill([self.ids[i][self.start:] for i in batch], past=self.shared)
        off = 0
        for j, i in enumerate(batch):
            p = len(self.ids[i]) - self.start
            self.prefixes.append(_Prefix(i, self.ids[i], kv[:, :, off:off + p].permute(0, 1, 3, 2, 4),
                                         logits[j]))
            off += p

    def _new_seq(self, pre: _Prefix) -> _Seq:
        gen = None
        if self.seed is not None:
            gen = torch.Generator(device="cpu")
            gen.manual_seed(sample_seed(self.seed, pre.index, pre.next_sample))
        max_new = min(self.params.max_new_tokens, self.max_len - len(pre.ids))
        return _Seq(pre.index, pre.next_sample, pre.ids, gen, max_new)

    def _step(self, bar) -> None:
        seqs = self.active
        tokens = torch.tensor([s.out[-1] for s in seqs], device=self.eng.device)
        positions = torch.tensor([s.length - 1 for s in seqs], device=self.eng.device)
        logits = self.eng.decode(self.cache, tokens, positions)
        self._append_many(seqs, logits)
        done = [r for r, s in enumerate(seqs) if self._done(s)]
        for r in reversed(done):  # fill holes from the back so rows stay contiguous
            self._finish(seqs[r], bar)
            last = len(seqs) - 1
            if r != last:
                n = seqs[last].length - 1  # the last token's keys/values are not cached yet
                self.cache[:, :, r, :, :n] = self.cache[:, :, last, :, :n]
                seqs[r] = seqs[last]
            seqs.pop()

    # ------------------------------------------------------------------ tokens
    def _append(self, seq: _Seq, logits: torch.Tensor) -> None:
        self._append_many([seq], logits)

    def _append_many(self, seqs: list[_Seq], logits: torch.Tensor) -> None:
        p = self.params
        if p.greedy:
            toks, lp = sampling.greedy(logits, self.eng.compiled)  # argmax and log-sum-exp in one pass
            lps = lp.tolist() if p.logprobs else None
        else:
            uniforms = torch.stack([torch.rand((), generator=s.generator) for s in seqs]).to(logits.device)
            toks = sampling.sample(logits, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, uniforms=uniforms,
                                   compiled=self.eng.compiled)
            lps = sampling.token_logprobs(logits, toks, p.temperature, self.eng.compiled).tolist() if p.logprobs else None
        for j, (s, t) in enumerate(zip(seqs, toks.tolist())):
            s.out.append(t)
            if lps is not None:
                s.logprobs.append(lps[j])
            if t in self.stop_ids or p.stop and find_stop(self.b.tokenizer.decode(s.out[-64:], skip_special_tokens=True), p.stop) >= 0:
                s.stopped = True

    def _done(self, s: _Seq) -> bool:
        return s.stopped or len(s.out) >= s.max_new

    def _finish(self, s: _Seq, bar) -> None:
        self.results[s.prompt][s.sample] = make_completion(
            self.b.tokenizer, s.prompt_ids, s.out, s.logprobs if self.params.logprobs else None,
            self.stop_ids, self.params, finished_by_stop=s.stopped)
        bar.update(1)
