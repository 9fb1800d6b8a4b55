"""Log-likelihood requests against a teacher-forced forward pass of the tiny model (hf, fast), and the vLLM
``prompt_logprobs`` glue around a fake engine."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import pytest
import torch

from tulu.rollout import get_backend
from tulu.rollout.common import encode_prompt
from tulu.rollout.loglik import (
    LoglikRequest,
    encode_requests,
    score_continuation,
    vllm_prompt_logprobs_kwargs,
)

MSGS = [{"role": "user", "content": "Question: What is 2 + 2?\n A. 3\n B. 4\nAnswer:"}]
REQUESTS = [LoglikRequest(MSGS, " A"), LoglikRequest(MSGS, " B"), LoglikRequest("The capital of France is", " Paris"),
            LoglikRequest([5, 6, 7], [8, 9, 10, 11])]


def _reference(model, tok, req):
    """log p(continuation | context) from one unbatched forward pass over the whole sequence."""
    ctx = encode_prompt(req.context, tok)
    cont = req.continuation if isinstance(req.continuation, list) else tok(req.continuation,
                                                                           add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].float().log_softmax(-1)
    vals = [logp[len(ctx) + k - 1, t].item() for k, t in enumerate(cont)]
    greedy = all(logp[len(ctx) + k - 1].argmax().item() == t for k, t in enumerate(cont))
    return vals, greedy


@pytest.mark.parametrize("name", ["hf", "fast"])
def test_matches_teacher_forced_forward(tiny, name):
    model, tok = tiny
    backend = get_backend(name, model, tok, **({"batch_size": 3} if name == "hf" else {"prefill_tokens": 64}))
    outs = backend.loglikelihood(REQUESTS)
    assert len(outs) == len(REQUESTS)
    for req, out in zip(REQUESTS, outs):
        vals, greedy = _reference(model, tok, req)
        assert out.token_logprobs == pytest.approx(vals, abs=1e-4)
        assert out.logprob == pytest.approx(sum(vals), abs=1e-4)
        assert out.greedy == greedy and len(out.token_ids) == len(vals)


def test_continuation_ids_are_encoded_alone(tokenizer):
    (ctx, cont), = encode_requests([LoglikRequest("Answer:", " B")], tokenizer)
    assert cont == tokenizer(" B", add_special_tokens=False)["input_ids"]
    assert ctx == tokenizer("Answer:")["input_ids"]
    with pytest.raises(ValueError, match="request 0: the continuation"):
        encode_requests([LoglikRequest("x", "")], tokenizer)


def test_score_continuation_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]]))
    out = score_continuation(logits, context_len=2, cont_ids=[2, 1])  # scored by rows 1 and 2
    assert out.token_logprobs == pytest.approx([-0.22314355, -1.09861229])  # log 0.8, log 1/3
    assert out.logprob == pytest.approx(-0.22314355 - 1.09861229)
    assert out.greedy is False  # row 2's argmax is token 0 (first of a tie), not 1
    assert score_continuation(logits, 2, [2]).greedy is True


def test_assistant_prefix_is_continued(tokenizer):
    base = encode_prompt(MSGS, tokenizer)
    ids = encode_prompt(MSGS + [{"role": "assistant", "content": "Here is", "continue": True}], tokenizer)
    assert ids[:len(base)] == base and ids[len(base):] == tokenizer("Here is", add_special_tokens=False)["input_ids"]


def test_backends_without_scoring_say_so():
    from tulu.rollout.base import GenerationBackend

    class Gen(GenerationBackend):
        name = "gen"

        def generate(self, prompts, params, *, progress=False):
            return []

    with pytest.raises(NotImplementedError, match="does not score"):
        Gen().loglikelihood(REQUESTS)


# ------------------------------------------------------------------ vLLM glue (fake engine, as test_vllm_glue)

@dataclass
class FakeSamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    prompt_logprobs: int | None = None
    logprobs: int | None = None


class PromptLogprobLLM:
    """Mimics vllm.LLM.generate with prompt_logprobs: entry j (j >= 1) holds the real token's Logprob and
    the top-1 token's, each with its rank; entry 0 is None. The values come from the tiny model, so the
    glue is checked against the same teacher-forced reference."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer, self.calls = model, tokenizer, []

    def get_tokenizer(self):
        return self.tokenizer

    def generate(self, prompts, sp, use_tqdm=False):
        self.calls.append(sp)
        outs = []
        for p in prompts:
            ids = p["prompt_token_ids"]
            with torch.no_grad():
                logp = self.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
            entries = [None]
            for j in range(1, len(ids)):
                row = logp[j - 1]
                order = row.argsort(descending=True)
                rank = int((order == ids[j]).nonzero()[0, 0]) + 1
                entry = {ids[j]: SimpleNamespace(logprob=row[ids[j]].item(), rank=rank)}
                entry.setdefault(int(order[0]), SimpleNamespace(logprob=row[order[0]].item(), rank=1))
                entries.append(entry)
            outs.append(SimpleNamespace(prompt_logprobs=entries, outputs=[]))
        return outs


def test_vllm_prompt_logprobs_glue(tiny):
    model, tok = tiny
    llm = PromptLogprobLLM(model, tok)
    be = get_backend("vllm", None, None, llm=llm, sampling_params_cls=FakeSamplingParams)
    outs = be.loglikelihood(REQUESTS)
    sp = llm.calls[0]
    assert sp.prompt_logprobs == 1 and sp.max_tokens == 1
    FakeSamplingParams(**vllm_prompt_logprobs_kwargs())
    for req, out in zip(REQUESTS, outs):
        vals, greedy = _reference(model, tok, req)
        assert out.token_logprobs == pytest.approx(vals, abs=1e-4) and out.greedy == greedy
