"""The one generation interface every stage uses (evaluation, RLVR, preference-data generation).

A backend turns prompts (chat messages or token ids) plus :class:`SamplingParams` into, for each prompt,
``n`` :class:`Completion` objects carrying the text, the token ids, the log-prob of every sampled token
(RL needs them) and why generation stopped.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Literal, Sequence, Union

Messages = list[dict]  # [{"role": ..., "content": ...}, ...]
Prompt = Union[Messages, list[int], str]  # chat messages, token ids, or raw text (no template applied)


@dataclass
class SamplingParams:
    """Sampling settings. ``temperature == 0`` means greedy decoding."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 disables top-k
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)  # stop strings; the string itself is cut from the text
    stop_token_ids: list[int] = field(default_factory=list)  # besides the tokenizer's EOS
    seed: int | None = None
    logprobs: bool = True  # per-token log-probs of the sampled tokens under the sampling model

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


FinishReason = Literal["stop", "length"]


@dataclass
class Completion:
    text: str
    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: FinishReason
    prompt_token_ids: list[int] | None = None


@dataclass
class RequestOutput:
    """All samples for one prompt, in prompt order."""

    prompt_index: int
    completions: list[Completion]


class GenerationBackend(abc.ABC):
    """Implementations: ``hf`` (reference), ``fast`` (ours, CPU/GPU), ``vllm`` (GPU), ``ray`` (actors),
    ``openai`` (an OpenAI-compatible HTTP server)."""

    name: str = "base"

    @abc.abstractmethod
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        """Generate ``params.n`` completions for every prompt; the result keeps prompt order."""

    def loglikelihood(self, requests: Sequence) -> list:
        """Log-probabilities of given continuations after contexts (:mod:`tulu.rollout.loglik`): one
        ``LoglikOutput`` per ``LoglikRequest``, in order. Backends that can score prompts override this."""
        raise NotImplementedError(f"backend {self.name!r} does not score log-likelihoods; use hf, fast or vllm")

    def update_weights(self, state_dict) -> None:  # RLVR: push new policy weights into the engine
        raise NotImplementedError(f"backend {self.name!r} does not support in-place weight updates")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
