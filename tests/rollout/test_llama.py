"""Our Llama forward pass against HF logits (prefill and cached decode)."""

from __future__ import annotations

import pytest
import torch

from tulu.rollout.llama import FastLlama, UnsupportedModel, supports


def _check(model, seqs, atol):
    eng = FastLlama(model, batch_hint=4)
    logits, kv = eng.prefill(seqs)
    with torch.no_grad():
        for j, s in enumerate(seqs):
            ref = model(torch.tensor([s])).logits[0, -1]
            assert torch.allclose(logits[j], ref, atol=atol), (logits[j] - ref).abs().max()
    # decode two more tokens per sequence from the static cache, rows at different lengths
    cache = eng.new_cache(len(seqs), max(len(s) for s in seqs) + 4)
    off = 0
    for j, s in enumerate(seqs):
        cache[:, :, j, :, :len(s)] = kv[:, :, off:off + len(s)].permute(0, 1, 3, 2, 4)
        off += len(s)
    cur = [list(s) for s in seqs]
    nxt = logits.argmax(-1)
    for _ in range(2):
        pos = torch.tensor([len(s) for s in cur])
        out = eng.decode(cache, nxt, pos)
        for j, s in enumerate(cur):
            s.append(int(nxt[j]))
            with torch.no_grad():
                ref = model(torch.tensor([s])).logits[0, -1]
            assert torch.allclose(out[j], ref, atol=atol), (out[j] - ref).abs().max()
        nxt = out.argmax(-1)


def test_tiny_logits_match_hf(tiny):
    model, _ = tiny
    _check(model, [[5, 6, 7, 8, 9], [100, 200, 300], [42] * 11], atol=1e-5)  # packed, block-diagonal mask
    _check(model, [[7, 3, 9, 1, 1, 4]], atol=1e-5)  # one prompt: the is_causal path


def test_tiny_with_qkv_bias_and_untied_head(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=1, attention_bias=True, tie_word_embeddings=False,
                      rope_theta=500000.0)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(3)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.1)
    _check(model, [[1, 2, 3, 4], [9, 8, 7, 6, 5, 4, 3]], atol=1e-5)


def test_unsupported_model_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50))
    assert "model_type" in supports(model)
    with pytest.raises(UnsupportedModel, match="backend 'hf'"):
        FastLlama(model)


@pytest.mark.embedded
def test_embedded_logits_match_hf(embedded):
    model, tok = embedded
    seqs = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True)["input_ids"]
            for q in ("What is 7 times 8?", "Name a colour.")]
    _check(model, seqs, atol=2e-4)  # logits are ~30 in magnitude; fp32 matmul blocking differs from HF's
