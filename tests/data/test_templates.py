"""Assistant-only labels, proven by decoding the labelled spans."""

from __future__ import annotations

import pytest

from tulu.data.templates import IGNORE_INDEX, encode_chat, encode_prompt_response, render_prompt

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]


def labelled_spans(tok, enc):
    spans, cur = [], []
    for i, lab in zip(enc.input_ids, enc.labels):
        if lab != IGNORE_INDEX:
            assert lab == i
            cur.append(i)
        elif cur:
            spans.append(tok.decode(cur))
            cur = []
    if cur:
        spans.append(tok.decode(cur))
    return spans


@pytest.mark.parametrize("template", ["tokenizer", "tulu"])
def test_only_assistant_turns_with_end_token_are_labelled(tokenizer, template):
    enc = encode_chat(CONV, tokenizer, template)
    spans = labelled_spans(tokenizer, enc)
    eos = tokenizer.eos_token
    assert [s.rstrip("\n") for s in spans] == [f"Hello! How can I help?{eos}", f"4{eos}"]
    text = tokenizer.decode(enc.input_ids)
    assert "Hi there" in text and "Be brief." in text


def test_segmentwise_ids_equal_whole_conversation_tokenization(tokenizer):
    enc = encode_chat(CONV, tokenizer)
    whole = tokenizer(tokenizer.apply_chat_template(CONV, tokenize=False), add_special_tokens=False)["input_ids"]
    assert enc.input_ids == whole


def test_prompt_ids_match_generation_prompt(tokenizer):
    enc = encode_chat(CONV[:3], tokenizer)
    prompt = render_prompt(CONV[:2], tokenizer)
    assert enc.input_ids[: len(prompt)] == prompt
    assert all(x == IGNORE_INDEX for x in enc.labels[: len(prompt)])
    assert enc.labels[len(prompt)] != IGNORE_INDEX


def test_truncation_keeps_mask_aligned(tokenizer):
    full = encode_chat(CONV, tokenizer)
    for n in (5, 20, len(full.input_ids) - 3):
        cut = encode_chat(CONV, tokenizer, max_length=n)
        assert cut.input_ids == full.input_ids[:n] and cut.labels == full.labels[:n]


def test_prompt_response_labels_only_the_response(tokenizer):
    enc = encode_prompt_response(CONV[:4], [{"role": "assistant", "content": "Four."}], tokenizer)
    spans = labelled_spans(tokenizer, enc)
    assert [s.rstrip("\n") for s in spans] == [f"Four.{tokenizer.eos_token}"]
