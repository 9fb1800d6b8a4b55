"""The reference backend: HF ``generate`` with left padding, in fixed batches.

It is the baseline the fast backend is measured and tested against, and the fallback for any model the
fast backend does not support. Log-probs come from the raw per-step logits (``output_logits=True``) as
``log_softmax(logits / T)`` at the sampled token, the same definition as the fast backend.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tulu.rollout.base import Completion, GenerationBackend, Prompt, RequestOutput, SamplingParams
from tulu.rollout.common import (
    base_seed,
    encode_prompts,
    make_completion,
    progress_bar,
    stop_token_ids,
    trim_generated,
)


class HFBackend(GenerationBackend):
    """``get_backend("hf", model, tokenizer, batch_size=8)``: prompts go through ``model.generate``
    ``batch_size`` at a time (each with ``n`` return sequences)."""

    name = "hf"

    def __init__(self, model, tokenizer, *, batch_size: int = 8, template: str = "tokenizer"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.template = template
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def update_weights(self, state_dict) -> None:
        result = self.model.load_state_dict(dict(state_dict), strict=False)
        if result.unexpected_keys:
            raise KeyError(f"update_weights: names the model does not have: {result.unexpected_keys[:5]}")

    def _generation_config(self, params: SamplingParams, stop_ids: set[int]):
        from transformers import GenerationConfig

        sampling = {} if params.greedy else {"temperature": params.temperature, "top_p": params.top_p,
                                                 "top_k": params.top_k or None}
        return GenerationConfig(
            do_sample=not params.greedy, max_new_tokens=params.max_new_tokens,
            num_return_sequences=params.n, eos_token_id=sorted(stop_ids), pad_token_id=self.pad_id,
            stop_strings=list(params.stop) or None, output_logits=True, return_dict_in_generate=True,
            **sampling)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        ids = encode_prompts(prompts, self.tokenizer, self.template)
        stop_ids = stop_token_ids(self.tokenizer, getattr(self.model, "generation_config", None), params)
        gen_cfg = self._generation_config(params, stop_ids)
        seed = None if params.greedy else base_seed(params)
        device = next(self.model.parameters()).device
        results: list[RequestOutput] = []
        with progress_bar(len(ids) * params.n, "generate (hf)", progress) as bar:
            for start in range(0, len(ids), self.batch_size):
                chunk = ids[start:start + self.batch_size]
                width = max(len(p) for p in chunk)
                input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in chunk], device=device)
                mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=device)
                with torch.random.fork_rng(devices=[]):
                    if seed is not None:
                        torch.manual_seed(seed + start)
                    out = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=gen_cfg,
                                              tokenizer=self.tokenizer if params.stop else None)
                new = out.sequences[:, width:]
                lps = None
                if params.logprobs:
                    logits = torch.stack(out.logits, dim=1).float()  # [rows, steps, vocab]
                    if not params.greedy:
                        logits = logits / params.temperature
                    lps = logits.log_softmax(-1).gather(-1, new[:, :logits.shape[1], None])[..., 0]
                for j, p in enumerate(chunk):
                    comps: list[Completion] = []
                    for s in range(params.n):
                        row = j * params.n + s
                        toks = new[row].tolist()
                        k, stopped = trim_generated(self.tokenizer, toks, stop_ids, params.stop)
                        comps.append(make_completion(self.tokenizer, p, toks[:k],
                                                     lps[row, :k].tolist() if lps is not None else None,
                                                     stop_ids, params, stopped))
                        bar.update(1)
                    results.append(RequestOutput(prompt_index=start + j, completions=comps))
        return results

    def loglikelihood(self, requests):
        """Teacher-forced log-probs of each request's continuation (:mod:`tulu.rollout.loglik`)."""
        from tulu.rollout.loglik import encode_requests, hf_loglikelihood

        pairs = encode_requests(requests, self.tokenizer, self.template)
        return hf_loglikelihood(self.model, pairs, batch_size=self.batch_size, pad_id=self.pad_id)
