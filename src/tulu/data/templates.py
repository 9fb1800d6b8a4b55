"""Chat templates and assistant-only labels.

``template="tokenizer"`` uses the tokenizer's own chat template; ``template="tulu"`` uses the Tulu
template (``<|user|>\\n...\\n<|assistant|>\\n...<eos>``). Labels are computed WITHOUT ``{% generation %}``
markers (SmolLM2's template has none): for each assistant turn ``i`` we render the conversation up to
turn ``i`` with the generation prompt (the text the model sees before it speaks) and up to and
including turn ``i``; the difference is exactly what the assistant must produce, end-of-turn token
included. The conversation is tokenized segment by segment, so the prompt tokens are identical to the
ones :func:`render_prompt` gives at generation time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

IGNORE_INDEX = -100
Template = Literal["tokenizer", "tulu"]

# Tulu's chat template (as used by open-instruct for Tulu 2/3), written as a Jinja template.
TULU_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{% if not loop.last %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}"
    "{% else %}{{ '<|assistant|>\n' + message['content'] + eos_token }}{% endif %}"
    "{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    "{% endfor %}"
)


class TemplateError(ValueError):
    pass


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def num_label_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def _render(messages: list[dict], tokenizer, template: Template, add_generation_prompt: bool) -> str:
    kwargs = {}
    if template == "tulu":
        kwargs["chat_template"] = TULU_CHAT_TEMPLATE
    elif template != "tokenizer":
        raise TemplateError(f"unknown template {template!r} (expected 'tokenizer' or 'tulu')")
    elif not getattr(tokenizer, "chat_template", None):
        raise TemplateError("the tokenizer has no chat template; use template: tulu")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs)


def _tok(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def render_prompt(messages: list[dict], tokenizer, template: Template = "tokenizer") -> list[int]:
    """Token ids of the prompt plus the assistant header, ready for generation."""
    return _tok(tokenizer, _render(messages, tokenizer, template, add_generation_prompt=True))


def render_prompt_text(messages: list[dict], tokenizer, template: Template = "tokenizer") -> str:
    return _render(messages, tokenizer, template, add_generation_prompt=True)


def chat_segments(messages: list[dict], tokenizer, template: Template = "tokenizer",
                  label_from: int = 0) -> list[tuple[str, bool]]:
    """The rendered conversation cut into (text, is_trained_output) segments.

    Assistant turns with message index >= ``label_from`` are trained on; earlier ones are context.
    """
    segments: list[tuple[str, bool]] = []
    done = ""  # text rendered so far
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        before = _render(messages[:i], tokenizer, template, add_generation_prompt=True)
        upto = _render(messages[: i + 1], tokenizer, template, add_generation_prompt=False)
        if not before.startswith(done) or not upto.startswith(before):
            raise TemplateError(
                "the chat template is not prefix-stable (rendering a conversation changes how earlier turns "
                "look), so assistant-only labels cannot be derived from it; use template: tulu"
            )
        segments.append((before[len(done):], False))
        segments.append((upto[len(before):], i >= label_from))
        done = upto
    full = _render(messages, tokenizer, template, add_generation_prompt=False)
    if not full.startswith(done):
        raise TemplateError("the chat template is not prefix-stable; use template: tulu")
    if full[len(done):]:
        segments.append((full[len(done):], False))
    return [(text, lab) for text, lab in segments if text]


def encode_chat(messages: list[dict], tokenizer, template: Template = "tokenizer",
                max_length: int | None = None, label_from: int = 0) -> Encoded:
    """Token ids with labels equal to the ids on assistant output and -100 everywhere else.

    Truncation cuts ids and labels together from the right, so the mask stays aligned.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    for text, trained in chat_segments(messages, tokenizer, template, label_from):
        ids = _tok(tokenizer, text)
        input_ids.extend(ids)
        labels.extend(ids if trained else [IGNORE_INDEX] * len(ids))
    if max_length is not None and len(input_ids) > max_length:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    return Encoded(input_ids, labels)


def encode_prompt_response(prompt: list[dict], response: list[dict], tokenizer, template: Template = "tokenizer",
                           max_length: int | None = None) -> Encoded:
    """Encode prompt + response turns with labels on the response's assistant turns only (preferences)."""
    return encode_chat(prompt + response, tokenizer, template, max_length=max_length, label_from=len(prompt))
