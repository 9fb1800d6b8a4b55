"""Helpers every local backend shares: prompt encoding, stop conditions, per-sample seeds, outputs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tulu.rollout.base import Completion, Prompt, SamplingParams
from tulu.utils import stable_hash


class PromptError(ValueError):
    """A prompt that cannot be encoded; the message names its index."""


def encode_prompt(prompt: Prompt, tokenizer, template: str = "tokenizer") -> list[int]:
    """Chat messages -> chat template plus assistant header; text -> the tokenizer's ids; ids -> as is."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt)["input_ids"])
    if isinstance(prompt, (list, tuple)) and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    if isinstance(prompt, (list, tuple)) and all(isinstance(m, dict) for m in prompt):
        msgs, prefix = split_assistant_prefix(list(prompt))
        from tulu.data.templates import render_prompt

        ids = list(render_prompt(msgs, tokenizer, template=template))
        if prefix:
            ids += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])
        return ids
    raise TypeError("a prompt is chat messages (list of dicts), token ids (list of ints) or a string")


def split_assistant_prefix(messages: list[dict]) -> tuple[list[dict], str]:
    """A conversation whose last message is ``{"role": "assistant", "content": ..., "continue": True}``
    asks the model to continue that text (an answer prefix, e.g. "Here is the completed function:"): the
    prompt is the rest rendered with the assistant header, then the prefix's tokens."""
    if messages and messages[-1].get("role") == "assistant" and messages[-1].get("continue"):
        return messages[:-1], str(messages[-1].get("content") or "")
    return messages, ""


def encode_prompts(prompts: Sequence[Prompt], tokenizer, template: str = "tokenizer") -> list[list[int]]:
    out = []
    for i, p in enumerate(prompts):
        try:
            ids = encode_prompt(p, tokenizer, template)
        except (TypeError, ValueError, KeyError) as exc:
            raise PromptError(f"prompt {i}: {exc}") from exc
        if not ids:
            raise PromptError(f"prompt {i}: encodes to zero tokens")
        out.append(ids)
    return out


def stop_token_ids(tokenizer, generation_config, params: SamplingParams) -> set[int]:
    """EOS of the tokenizer and of the model's generation config, plus ``params.stop_token_ids``."""
    ids: set[int] = set(params.stop_token_ids)
    for src in (getattr(tokenizer, "eos_token_id", None), getattr(generation_config, "eos_token_id", None)):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, (list, tuple)):
            ids.update(int(t) for t in src)
    return ids


def find_stop(text: str, stops: Sequence[str]) -> int:
    """Index of the earliest stop string in ``text``, or -1."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else -1


def sample_seed(base: int, prompt_index: int, sample_index: int) -> int:
    """The RNG seed of one sample: depends only on the request seed and the sample's identity, so a
    sample does not depend on which other prompts share its batch (up to the floating-point differences
    that batched matmuls of other shapes introduce, which can flip a draw near a probability boundary)."""
    return int(stable_hash(base, prompt_index, sample_index), 16) % (2**63 - 1)


def base_seed(params: SamplingParams) -> int:
    """``params.seed``, else a draw from torch's global RNG (so ``torch.manual_seed`` governs it)."""
    if params.seed is not None:
        return int(params.seed)
    return int(torch.randint(0, 2**62, (1,)).item())


def make_completion(tokenizer, prompt_ids: list[int], token_ids: list[int], logprobs: list[float] | None,
                    stop_ids: set[int], params: SamplingParams, finished_by_stop: bool) -> Completion:
    """Text and finish reason. The final stop token stays in ``token_ids`` (RL trains on it) but not in
    the text; a stop string ends the text before it, and ``token_ids`` end with the token completing it."""
    body = token_ids[:-1] if token_ids and token_ids[-1] in stop_ids else token_ids
    text = tokenizer.decode(body, skip_special_tokens=True)
    cut = find_stop(text, params.stop) if params.stop else -1
    if cut >= 0:
        text = text[:cut]
        finished_by_stop = True
    return Completion(text=text, token_ids=list(token_ids), logprobs=logprobs if params.logprobs else None,
                      finish_reason="stop" if finished_by_stop else "length", prompt_token_ids=prompt_ids)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    """A tqdm bar (quiet off-TTY and under CI, see :func:`tulu.utils.progress`) or a no-op."""
    if not enabled:
        return _NoBar()
    from tulu.utils import progress

    return progress(total=total, desc=desc, unit="sample")


def truncate_at_stop_string(tokenizer, token_ids: list[int], stops: Sequence[str]) -> int | None:
    """Smallest number of leading tokens whose text contains a stop string; ``None`` if there is none."""
    if not stops or find_stop(tokenizer.decode(token_ids, skip_special_tokens=True), stops) < 0:
        return None
    lo, hi = 1, len(token_ids)  # text containment is monotone in the prefix length
    while lo < hi:
        mid = (lo + hi) // 2
        if find_stop(tokenizer.decode(token_ids[:mid], skip_special_tokens=True), stops) >= 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def trim_generated(tokenizer, generated: list[int], stop_ids: set[int], stops: Sequence[str]) -> tuple[int, bool]:
    """For a backend that may run past the end (HF pads finished rows): how many generated tokens belong
    to the completion, and whether it ended by a stop token or stop string."""
    end = next((i for i, t in enumerate(generated) if t in stop_ids), None)
    body = generated[:end] if end is not None else generated
    k = truncate_at_stop_string(tokenizer, body, stops) if stops else None
    if k is not None:
        return k, True
    return (end + 1, True) if end is not None else (len(generated), False)
