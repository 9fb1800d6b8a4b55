"""Fixtures for eval tests: a minimal GenerationBackend over HF ``generate`` (tests only; the product uses
tulu.rollout) and a fake backend that replays scripted responses."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from tulu.rollout.base import Completion, GenerationBackend, RequestOutput, SamplingParams


class HFGenerateAdapter(GenerationBackend):
    name = "test-hf"

    def __init__(self, model, tokenizer):
        self.model, self.tok = model.eval(), tokenizer

    def _ids(self, prompt) -> list[int]:
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            return self.tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                return_dict=False)
        if isinstance(prompt, str):
            return self.tok(prompt)["input_ids"]
        return list(prompt)

    @torch.no_grad()
    def generate(self, prompts: Sequence, params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        out = []
        for i, p in enumerate(prompts):
            ids = torch.tensor([self._ids(p)])
            comps = []
            for s in range(params.n):
                if params.seed is not None:
                    torch.manual_seed(params.seed + 1000 * i + s)
                gen = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=params.max_new_tokens,
                                          do_sample=not params.greedy, temperature=params.temperature or None,
                                          top_p=params.top_p if not params.greedy else None,
                                          pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
                new = gen[0, ids.shape[1]:].tolist()
                finish = "stop" if new and new[-1] == self.tok.eos_token_id else "length"
                comps.append(Completion(self.tok.decode(new, skip_special_tokens=True), new, None, finish))
            out.append(RequestOutput(i, comps))
        return out


class ScriptedBackend(GenerationBackend):
    """Answers every prompt with ``respond(messages, sample_index)``; counts calls (for resume tests)."""

    name = "scripted"

    def __init__(self, respond: Callable[[list, int], str]):
        self.respond, self.calls, self.prompts = respond, 0, 0

    def generate(self, prompts, params, *, progress=False):
        self.calls += 1
        self.prompts += len(prompts)
        return [RequestOutput(i, [Completion(self.respond(p, s), [], None, "stop") for s in range(params.n)])
                for i, p in enumerate(prompts)]


@pytest.fixture()
def tiny_backend(tiny):
    model, tok = tiny
    return HFGenerateAdapter(model, tok)


@pytest.fixture()
def scripted():
    return ScriptedBackend
