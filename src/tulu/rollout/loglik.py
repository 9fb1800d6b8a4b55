"""Log-likelihood requests: the log-probability of a given continuation after a context.

Multiple-choice evaluation (MMLU MC, TruthfulQA MC1/MC2) scores each answer option by how likely the model
finds it, instead of generating. The request type sits beside ``generate`` in the rollout interface::

    from tulu.rollout.loglik import LoglikRequest

    outs = backend.loglikelihood([LoglikRequest(messages, " A"), LoglikRequest(messages, " B")])
    outs[0].logprob          # sum of log p(token | everything before it) over the continuation's tokens
    outs[0].token_logprobs   # one value per continuation token
    outs[0].greedy           # True when every continuation token is the argmax at its position

Encoding: the context goes through the same path as a generation prompt (chat messages -> chat template
plus assistant header; token ids as they are; a string tokenized as is), and the continuation is
tokenized on its own without special tokens (or given as token ids). The scored tokens are therefore
exactly the continuation's ids, whatever the tokenizer would have merged across the boundary.

``logprob`` is ``log_softmax(logits)`` at temperature 1 over the whole vocabulary, in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from tulu.rollout.base import Prompt
from tulu.rollout.common import PromptError, encode_prompt

Continuation = str | list[int]


@dataclass
class LoglikRequest:
    context: Prompt
    continuation: Continuation


@dataclass
class LoglikOutput:
    logprob: float
    token_logprobs: list[float]
    greedy: bool
    token_ids: list[int] = field(default_factory=list)


def encode_requests(requests: Sequence[LoglikRequest], tokenizer,
                    template: str = "tokenizer") -> list[tuple[list[int], list[int]]]:
    """(context ids, continuation ids) for every request; the message names the bad request's index."""
    out = []
    for i, req in enumerate(requests):
        try:
            ctx = encode_prompt(req.context, tokenizer, template)
        except (TypeError, ValueError, KeyError) as exc:
            raise PromptError(f"loglikelihood request {i}: context: {exc}") from exc
        cont = req.continuation
        if isinstance(cont, str):
            cont = list(tokenizer(cont, add_special_tokens=False)["input_ids"])
        else:
            cont = [int(t) for t in cont]
        if not ctx:
            raise PromptError(f"loglikelihood request {i}: the context encodes to zero tokens")
        if not cont:
            raise PromptError(f"loglikelihood request {i}: the continuation encodes to zero tokens")
        out.append((ctx, cont))
    return out


def score_continuation(logits: torch.Tensor, context_len: int, cont_ids: list[int]) -> LoglikOutput:
    """Score a continuation from the logits of the whole sequence ``context + continuation``.

    ``logits[j]`` predicts token ``j + 1``, so continuation token ``k`` (at position ``context_len + k``)
    is scored by row ``context_len + k - 1``. ``logits`` may be for the full sequence or stop at its
    second-to-last token; rows beyond are ignored."""
    n = len(cont_ids)
    rows = logits[context_len - 1: context_len - 1 + n].float()
    if rows.shape[0] != n:
        raise ValueError(f"need {context_len - 1 + n} logit rows, got {logits.shape[0]}")
    logp = rows.log_softmax(-1)
    target = torch.tensor(cont_ids, device=rows.device)
    tok_lp = logp.gather(-1, target[:, None])[:, 0]
    greedy = bool((rows.argmax(-1) == target).all())
    vals = tok_lp.tolist()
    return LoglikOutput(logprob=float(sum(vals)), token_logprobs=vals, greedy=greedy, token_ids=list(cont_ids))


def _check_length(pairs: list[tuple[list[int], list[int]]], max_positions: int | None) -> None:
    if not max_positions:
        return
    for i, (ctx, cont) in enumerate(pairs):
        if len(ctx) + len(cont) > max_positions:
            raise ValueError(f"loglikelihood request {i}: {len(ctx) + len(cont)} tokens, the model's context "
                             f"is {max_positions}")


def _unique_inputs(pairs: list[tuple[list[int], list[int]]]) -> tuple[list[list[int]], list[int]]:
    """The distinct model inputs ``context + continuation[:-1]`` (the last token is never an input) and, per
    request, the index of its input: the options of a multiple-choice question with one-token answers
    (" A".." D") share one forward pass."""
    index: dict[tuple[int, ...], int] = {}
    which = []
    for ctx, cont in pairs:
        which.append(index.setdefault(tuple(ctx + cont[:-1]), len(index)))
    return [list(k) for k in index], which


@torch.inference_mode()
def hf_loglikelihood(model, pairs: list[tuple[list[int], list[int]]], *, batch_size: int = 8,
                     pad_id: int = 0) -> list[LoglikOutput]:
    """Teacher-forced forward passes of a transformers causal LM, ``batch_size`` distinct inputs at a time
    (right-padded, so positions need no shifting)."""
    _check_length(pairs, getattr(model.config, "max_position_embeddings", None))
    device = next(model.parameters()).device
    seqs, which = _unique_inputs(pairs)
    rows: list[torch.Tensor] = []
    for start in range(0, len(seqs), max(1, batch_size)):
        chunk = seqs[start:start + batch_size]
        width = max(len(s) for s in chunk)
        ids = torch.tensor([s + [pad_id] * (width - len(s)) for s in chunk], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in chunk], device=device)
        logits = model(input_ids=ids, attention_mask=mask).logits
        rows += [logits[j, :len(s)] for j, s in enumerate(chunk)]
    return [score_continuation(rows[w], len(ctx), cont) for w, (ctx, cont) in zip(which, pairs)]


def fast_loglikelihood(engine, pairs: list[tuple[list[int], list[int]]], *,
                       max_tokens: int = 2048) -> list[LoglikOutput]:
    """The same through the fast backend's engine (:class:`tulu.rollout.llama.FastLlama`): the distinct
    inputs are packed into prefill calls of up to ``max_tokens`` tokens with causal attention within each,
    and the logits of every position are kept."""
    _check_length(pairs, getattr(engine, "max_positions", None))
    seqs, which = _unique_inputs(pairs)
    rows: list[torch.Tensor | None] = [None] * len(seqs)
    batch: list[int] = []
    used = 0

    def flush() -> None:
        nonlocal batch, used
        if batch:
            logits, _ = engine.prefill([seqs[i] for i in batch], all_logits=True)
            for i, r in zip(batch, logits.split([len(seqs[i]) for i in batch])):
                rows[i] = r
        batch, used = [], 0

    for i in sorted(range(len(seqs)), key=lambda i: -len(seqs[i])):
        if batch and used + len(seqs[i]) > max_tokens:
            flush()
        batch.append(i)
        used += len(seqs[i])
    flush()
    return [score_continuation(rows[w], len(ctx), cont) for w, (ctx, cont) in zip(which, pairs)]


def vllm_prompt_logprobs_kwargs() -> dict:
    """Sampling settings that make vLLM return the log-prob of every prompt token (``prompt_logprobs``)
    and generate a single throw-away token."""
    return {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 1, "logprobs": None}


def _entry_logprob(entry, token: int) -> tuple[float, bool]:
    """(log-prob of ``token``, whether it is the argmax) from one vLLM prompt-logprobs entry: a dict
    token id -> Logprob (with ``logprob`` and, in recent versions, ``rank``) or -> float."""
    val = entry[token]
    lp = float(getattr(val, "logprob", val))
    rank = getattr(val, "rank", None)
    if rank is not None:
        return lp, int(rank) == 1
    best = max(float(getattr(v, "logprob", v)) for v in entry.values())
    return lp, lp >= best


def vllm_loglikelihood(llm, sampling_params_cls, pairs: list[tuple[list[int], list[int]]], *,
                       progress: bool = False) -> list[LoglikOutput]:
    """Through a vLLM engine: each ``context + continuation`` is sent as a prompt with
    ``prompt_logprobs=1``; the continuation's entries are read back."""
    sp = sampling_params_cls(**vllm_prompt_logprobs_kwargs())
    outs = llm.generate([{"prompt_token_ids": ctx + cont} for ctx, cont in pairs], sp, use_tqdm=progress)
    results = []
    for i, ((ctx, cont), out) in enumerate(zip(pairs, outs)):
        entries = out.prompt_logprobs
        if entries is None or len(entries) != len(ctx) + len(cont):
            raise RuntimeError(f"loglikelihood request {i}: vLLM returned no prompt log-probs for every token")
        vals, greedy = [], True
        for k, tok in enumerate(cont):
            lp, top = _entry_logprob(entries[len(ctx) + k], tok)
            vals.append(lp)
            greedy = greedy and top
        results.append(LoglikOutput(logprob=float(sum(vals)), token_logprobs=vals, greedy=greedy,
                                    token_ids=list(cont)))
    return results
