"""The fast backend: parity with HF generate, continuous batching, shared prompts, sampling, stops."""

from __future__ import annotations

import pytest
import torch

from tulu.rollout import SamplingParams, get_backend
from tulu.rollout.common import encode_prompts
from tulu.rollout.fast import MIN_SHARED_PREFIX, FastBackend

QUESTIONS = ["What is 2+2?", "Write a poem about the sea.", "Explain gravity to a child.", "List three fruits.",
             "Translate 'good morning' to French."]


def _prompts(qs=QUESTIONS):
    return [[{"role": "user", "content": q}] for q in qs]


def _teacher_forced(model, prompt_ids, token_ids, temperature):
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + token_ids])).logits[0, len(prompt_ids) - 1:-1]
    z = logits / (temperature or 1.0)
    return torch.log_softmax(z, -1)[torch.arange(len(token_ids)), torch.tensor(token_ids)]


def test_greedy_matches_hf_on_tiny(tiny):
    model, tok = tiny
    p = SamplingParams(max_new_tokens=12)
    ours = get_backend("fast", model, tok, max_batch_size=3).generate(_prompts(), p)
    ref = get_backend("hf", model, tok, batch_size=1).generate(_prompts(), p)
    for a, b in zip(ours, ref):
        assert a.completions[0].token_ids == b.completions[0].token_ids
        assert a.completions[0].finish_reason == b.completions[0].finish_reason


@pytest.fixture()
def peaked(tiny):
    """The tiny model with 40x larger embeddings (tied head): peaked next-token distributions, so a draw
    does not flip on the 1e-6 differences between matmuls of different batch shapes."""
    model, tok = tiny
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(40)
    return model, tok


def test_continuous_batching_does_not_change_results(peaked):
    """2 slots for 5 prompts x 2 samples (rows leave and join) against everything in one batch."""
    model, tok = peaked
    p = SamplingParams(n=2, temperature=1.0, top_p=0.9, max_new_tokens=9, seed=7, stop_token_ids=[28])
    small = FastBackend(model, tok, max_batch_size=2).generate(_prompts(), p)
    big = FastBackend(model, tok, max_batch_size=16).generate(_prompts(), p)
    for a, b in zip(small, big):
        assert [c.token_ids for c in a.completions] == [c.token_ids for c in b.completions]
        for ca, cb in zip(a.completions, b.completions):
            assert ca.logprobs == pytest.approx(cb.logprobs, abs=1e-5)


def test_prompt_is_prefilled_once_per_group(tiny, monkeypatch):
    model, tok = tiny
    be = FastBackend(model, tok, max_batch_size=3)
    calls = []
    orig = be.engine.prefill
    monkeypatch.setattr(be.engine, "prefill",
                        lambda seqs, past=None: calls.append((len(seqs), past is not None)) or orig(seqs, past=past))
    outs = be.generate(_prompts()[:2], SamplingParams(n=4, temperature=1.0, max_new_tokens=5, seed=0))
    # the chat template's common start once, then two prompts (eight samples) after it
    assert calls[0] == (1, False)
    assert sum(n for n, after in calls[1:] if after) == 2 and all(after for _, after in calls[1:])
    assert all(len(o.completions) == 4 for o in outs)
    assert len({tuple(c.token_ids) for c in outs[0].completions}) > 1  # distinct samples from one prefix


SYSTEM = ("You are a careful assistant. Answer in one short paragraph, cite no sources, and say so when you "
          "do not know. Here are two examples. Q: What is 1+1? A: 2. Q: Capital of France? A: Paris.")


def _with_system(qs=QUESTIONS):
    return [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}] for q in qs]


def _common_prefix(seqs):
    n = min(len(s) for s in seqs)
    return next((j for j in range(n) if len({s[j] for s in seqs}) > 1), n)


def test_prefill_after_a_shared_prefix_equals_the_full_prefill(tiny):
    """prefill(suffixes, past=prefix kv) gives the logits and keys/values of prefilling the whole prompts."""
    model, tok = tiny
    eng = FastBackend(model, tok).engine
    seqs = encode_prompts(_with_system()[:3], tok, "tokenizer")
    p = _common_prefix(seqs)
    assert p > 40
    full_logits, full_kv = eng.prefill(seqs)
    _, past = eng.prefill([seqs[0][:p]])
    logits, kv = eng.prefill([s[p:] for s in seqs], past=past)
    torch.testing.assert_close(logits, full_logits, atol=1e-5, rtol=1e-5)
    off = full_off = 0
    for s in seqs:
        n = len(s) - p
        torch.testing.assert_close(full_kv[:, :, full_off:full_off + p], past, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(full_kv[:, :, full_off + p:full_off + len(s)], kv[:, :, off:off + n],
                                   atol=1e-5, rtol=1e-5)
        off, full_off = off + n, full_off + len(s)


@pytest.mark.parametrize("params", [SamplingParams(max_new_tokens=10),
                                    SamplingParams(n=2, temperature=1.0, top_p=0.9, max_new_tokens=10, seed=5)])
def test_shared_prefix_is_prefilled_once_and_changes_no_output(peaked, monkeypatch, params):
    model, tok = peaked
    prompts = _with_system()
    shared = FastBackend(model, tok, max_batch_size=3)  # 3 slots for 5 prompts: several prefill calls
    tokens = []
    orig = shared.engine.prefill
    monkeypatch.setattr(shared.engine, "prefill",
                        lambda seqs, past=None: tokens.append(sum(map(len, seqs))) or orig(seqs, past=past))
    a = shared.generate(prompts, params)
    b = FastBackend(model, tok, max_batch_size=3, share_prefix=False).generate(prompts, params)
    ids = encode_prompts(prompts, tok, "tokenizer")
    p = _common_prefix(ids)
    assert sum(tokens) == p + sum(len(x) - p for x in ids)  # the prefix once, then only each prompt's own tokens
    for x, y in zip(a, b):
        assert [c.token_ids for c in x.completions] == [c.token_ids for c in y.completions]
        for cx, cy in zip(x.completions, y.completions):
            assert cx.prompt_token_ids == cy.prompt_token_ids
            assert cx.logprobs == pytest.approx(cy.logprobs, abs=1e-5)


def test_shared_prefix_when_one_prompt_is_the_start_of_another(tiny, monkeypatch):
    """Each prompt keeps at least its last token out of the shared prefix (its logits are needed), also when
    a whole prompt is the start of another; a common prefix under MIN_SHARED_PREFIX tokens is not shared."""
    model, tok = tiny
    long = tok.encode(SYSTEM)
    p = SamplingParams(max_new_tokens=6)
    shared = FastBackend(model, tok, max_batch_size=4)
    calls = []
    orig = shared.engine.prefill
    monkeypatch.setattr(shared.engine, "prefill",
                        lambda seqs, past=None: calls.append((list(map(len, seqs)), past is not None)) or orig(seqs, past=past))
    plain = FastBackend(model, tok, max_batch_size=4, share_prefix=False)
    for short, expect in ((20, [([19], False), ([1, len(long) - 19], True)]),
                          (MIN_SHARED_PREFIX, [([MIN_SHARED_PREFIX, len(long)], False)])):
        calls.clear()
        ps = [long[:short], long]
        a, b = shared.generate(ps, p), plain.generate(ps, p)
        assert calls == expect
        assert [o.completions[0].token_ids for o in a] == [o.completions[0].token_ids for o in b]


def test_seeded_sampling_is_reproducible_and_logprobs_match_teacher_forcing(tiny):
    model, tok = tiny
    be = FastBackend(model, tok, max_batch_size=4)
    p = SamplingParams(n=3, temperature=0.8, top_k=50, max_new_tokens=8, seed=123)
    a = be.generate(_prompts()[:2], p)
    b = be.generate(_prompts()[:2], p)
    assert [[c.token_ids for c in o.completions] for o in a] == [[c.token_ids for c in o.completions] for o in b]
    c = be.generate(_prompts()[:2], SamplingParams(n=3, temperature=0.8, top_k=50, max_new_tokens=8, seed=124))
    assert [o.completions[0].token_ids for o in a] != [o.completions[0].token_ids for o in c]
    for out in a:
        for comp in out.completions:
            ref = _teacher_forced(model, comp.prompt_token_ids, comp.token_ids, 0.8)
            assert torch.allclose(torch.tensor(comp.logprobs), ref, atol=1e-5)


def test_stops_and_finish_reasons(tiny):
    model, tok = tiny
    be = FastBackend(model, tok, max_batch_size=4)
    free = be.generate(_prompts()[:1], SamplingParams(max_new_tokens=20))[0].completions[0]
    assert free.finish_reason == "length" and len(free.token_ids) == 20
    # stop token: the 5th generated token
    stop_tok = free.token_ids[4]
    first = free.token_ids.index(stop_tok)
    c = be.generate(_prompts()[:1], SamplingParams(max_new_tokens=20, stop_token_ids=[stop_tok]))[0].completions[0]
    assert c.finish_reason == "stop" and c.token_ids == free.token_ids[:first + 1]
    assert c.text == tok.decode(free.token_ids[:first], skip_special_tokens=True)
    # stop string: a piece of the free-running text
    text = free.text
    stop = text[len(text) // 2:len(text) // 2 + 3]
    if stop.strip():
        c = be.generate(_prompts()[:1], SamplingParams(max_new_tokens=20, stop=[stop]))[0].completions[0]
        assert c.finish_reason == "stop" and stop not in c.text and text.startswith(c.text)
        assert stop in tok.decode(c.token_ids, skip_special_tokens=True)
    one = be.generate([[5, 6, 7]], SamplingParams(max_new_tokens=1))[0].completions[0]
    assert len(one.token_ids) == 1 and one.logprobs is not None and len(one.logprobs) == 1


def test_prompt_kinds_and_errors(tiny):
    model, tok = tiny
    be = FastBackend(model, tok, max_batch_size=2)
    outs = be.generate(["Hello there", [1, 2, 3], _prompts()[0]], SamplingParams(max_new_tokens=3, logprobs=False))
    assert [o.prompt_index for o in outs] == [0, 1, 2]
    assert outs[1].completions[0].prompt_token_ids == [1, 2, 3]
    assert outs[0].completions[0].logprobs is None
    with pytest.raises(ValueError, match="prompt 1"):
        be.generate(["ok", []], SamplingParams(max_new_tokens=2))
    with pytest.raises(ValueError):
        get_backend("nope", model, tok)


def test_update_weights_changes_outputs(tokenizer):
    from tulu.models import tiny_model

    m0, tok = tiny_model(seed=0, tokenizer=tokenizer)
    m1, _ = tiny_model(seed=1, tokenizer=tokenizer)
    be = FastBackend(m0, tok, max_batch_size=2)
    p = SamplingParams(max_new_tokens=8)
    before = be.generate(_prompts()[:2], p)
    be.update_weights(m1.state_dict())
    after = be.generate(_prompts()[:2], p)
    ref = FastBackend(m1, tok, max_batch_size=2).generate(_prompts()[:2], p)
    assert [o.completions[0].token_ids for o in after] == [o.completions[0].token_ids for o in ref]
    # a random tiny model's greedy text barely depends on its weights; its log-probs do
    def flat(outs):
        return [x for o in outs for x in o.completions[0].logprobs]

    assert flat(after) == pytest.approx(flat(ref), abs=1e-6)
    assert flat(after) != pytest.approx(flat(before), abs=1e-3)


def test_auto_picks_fast_for_llama_and_hf_otherwise(tiny):
    from transformers import GPT2Config, GPT2LMHeadModel

    model, tok = tiny
    assert get_backend("auto", model, tok).name == "fast"
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=len(tok))).eval()
    be = get_backend("auto", gpt2, tok)
    assert be.name == "hf"
    out = be.generate([[1, 2, 3]], SamplingParams(max_new_tokens=3))[0].completions[0]
    assert len(out.token_ids) == 3 and len(out.logprobs) == 3
    with pytest.raises(KeyError, match="does not have"):
        be.update_weights({"nonsense.weight": torch.zeros(1)})


@pytest.mark.embedded
def test_embedded_greedy_equals_hf_token_for_token(embedded):
    model, tok = embedded
    p = SamplingParams(max_new_tokens=32)
    ours = get_backend("fast", model, tok, max_batch_size=4).generate(_prompts()[:4], p)
    ref = get_backend("hf", model, tok, batch_size=1).generate(_prompts()[:4], p)
    for a, b in zip(ours, ref):
        assert a.completions[0].token_ids == b.completions[0].token_ids
        assert a.completions[0].text == b.completions[0].text
        assert a.completions[0].finish_reason == b.completions[0].finish_reason


@pytest.mark.embedded
def test_embedded_sampled_logprobs_match_teacher_forcing(embedded):
    model, tok = embedded
    p = SamplingParams(n=2, temperature=1.0, top_p=0.95, max_new_tokens=24, seed=3)
    outs = get_backend("fast", model, tok, max_batch_size=4).generate(_prompts()[:2], p)
    for out in outs:
        for c in out.completions:
            ref = _teacher_forced(model, c.prompt_token_ids, c.token_ids, 1.0)
            assert (torch.tensor(c.logprobs) - ref).abs().max() < 1e-4


def test_hf_and_fast_agree_on_stop_strings_and_tokens(tiny):
    model, tok = tiny
    fast = get_backend("fast", model, tok, max_batch_size=4)
    hf = get_backend("hf", model, tok, batch_size=4)
    free = fast.generate(_prompts()[:1], SamplingParams(max_new_tokens=16))[0].completions[0]
    stop_tok = free.token_ids[6]
    stop_str = tok.decode(free.token_ids[3:5], skip_special_tokens=True)
    for p in (SamplingParams(max_new_tokens=16, stop_token_ids=[stop_tok]),
              SamplingParams(max_new_tokens=16, stop=[stop_str]) if stop_str.strip() else None):
        if p is None:
            continue
        a = fast.generate(_prompts()[:3], p)
        b = hf.generate(_prompts()[:3], p)  # batched: finished rows are padded with EOS (== pad) by HF
        for x, y in zip(a, b):
            cx, cy = x.completions[0], y.completions[0]
            assert (cx.token_ids, cx.text, cx.finish_reason) == (cy.token_ids, cy.text, cy.finish_reason)
            assert cx.logprobs == pytest.approx(cy.logprobs, abs=1e-4)
