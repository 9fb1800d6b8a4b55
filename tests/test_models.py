from __future__ import annotations

import pytest
import torch

from tulu.models import ModelSourceError, load_model_and_tokenizer, resolve_model_path, save_model


def test_save_reload_gives_identical_logits(tiny, tmp_path):
    from transformers import AutoModelForCausalLM

    model, tok = tiny
    out = save_model(model, tok, tmp_path / "m", model_card="# tiny\n")
    assert (out / "model.safetensors").is_file() and (out / "README.md").read_text() == "# tiny\n"
    assert not list(tmp_path.glob(".m.*")), "no temporary folder may be left behind"
    again = AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor([tok("Hello world, how are you?")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)


def test_bad_paths_are_named(tmp_path):
    with pytest.raises(ModelSourceError, match="no config.json"):
        resolve_model_path(tmp_path)
    with pytest.raises(ModelSourceError, match="no such model folder"):
        resolve_model_path(str(tmp_path / "missing"))


@pytest.mark.embedded
def test_embedded_model_loads_offline_and_answers(embedded):
    model, tok = embedded
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 30
    assert getattr(model.config, "quantization_config", None) is None
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=16, do_sample=False)
    answer = tok.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.embedded
def test_embedded_folder_is_plain_fp32_safetensors():
    import json

    path = resolve_model_path("embedded")
    cfg = json.loads(open(f"{path}/config.json").read())
    assert "quantization_config" not in cfg and cfg["model_type"] == "llama"
    _, tok = load_model_and_tokenizer(path)
    assert tok.eos_token == "<|im_end|>"
