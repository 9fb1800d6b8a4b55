"""What `tulu serve` serves (run folders, names), the HF fallback engine, the command line, and the server
as the AlpacaEval judge of `tulu eval --judge-url`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tulu.models import ModelSourceError, save_model, tiny_model
from tulu.serve.registry import default_name, load_engine, resolve_specs

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture()
def run_dir(tmp_path, tokenizer):
    """A pipeline run folder: base (a tiny folder named in pipeline_config.json), sft/model, dpo/model."""
    base = tmp_path / "tiny-base"
    save_model(*tiny_model(seed=3, tokenizer=tokenizer), base)
    run = tmp_path / "runs" / "demo"
    for i, stage in enumerate(("sft", "dpo")):
        save_model(*tiny_model(seed=10 + i, tokenizer=tokenizer), run / stage / "model")
    (run / "eval").mkdir()
    (run / "pipeline_config.json").write_text(json.dumps({"base_model": str(base), "stages": ["sft", "dpo"]}))
    return run


def test_run_folder_serves_each_stage_under_its_name(run_dir, tmp_path):
    specs = resolve_specs([str(run_dir)])
    assert [s.name for s in specs] == ["base", "sft", "dpo"]
    assert specs[1].path == str(run_dir / "sft" / "model")
    assert [s.name for s in resolve_specs([f"old={run_dir}"])] == ["old-base", "old-sft", "old-dpo"]
    # a stage folder on its own is named after its stage; NAME=PATH renames
    assert default_name(str(run_dir / "dpo" / "model")) == "dpo"
    assert [s.name for s in resolve_specs([f"mine={run_dir / 'dpo' / 'model'}", "embedded"])] == ["mine", "embedded"]
    with pytest.raises(ModelSourceError, match="two models would be served as 'sft'"):
        resolve_specs([str(run_dir), str(run_dir / "sft" / "model")])
    empty = tmp_path / "runs" / "empty"
    empty.mkdir()
    (empty / "pipeline_config.json").write_text("{}")
    with pytest.raises(ModelSourceError, match="no model yet"):
        resolve_specs([str(empty)])
    with pytest.raises(ModelSourceError, match="no such model folder"):
        resolve_specs(["./does/not/exist"])


def test_non_llama_model_falls_back_to_hf_engine(tmp_path, tokenizer):
    """A GPT-2 model runs through HF generate (one request at a time): same API, seeds repeat."""
    from openai import OpenAI
    from transformers import GPT2Config, GPT2LMHeadModel

    from tulu.serve.app import create_app
    from tulu.serve.registry import ModelSpec
    from tulu.serve.server import ServerThread

    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=1, n_head=2,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    save_model(GPT2LMHeadModel(cfg), tokenizer, tmp_path / "gpt2")
    engine = load_engine(ModelSpec("gpt2", "gpt2", str(tmp_path / "gpt2")), dtype="float32", device="cpu")
    assert engine.stats()["backend"] == "hf" and engine.max_model_len == 512
    with ServerThread(create_app({"gpt2": engine})) as srv:
        client = OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        kw = {"model": "gpt2", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 6, "temperature": 1.0,
              "seed": 5, "n": 2, "logprobs": True}
        a, b = client.chat.completions.create(**kw), client.chat.completions.create(**kw)
        assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
        assert a.usage.completion_tokens == sum(len(c.logprobs.content) for c in a.choices) == 12
        streamed = {0: "", 1: ""}
        for chunk in client.chat.completions.create(**kw, stream=True):
            for ch in chunk.choices:
                streamed[ch.index] += ch.delta.content or ""
        assert [streamed[0], streamed[1]] == [c.message.content for c in a.choices]
    engine.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tulu_serve_command_serves_a_run_folder(run_dir):
    """`tulu serve runs/<name>` from the command line: every stage listed and answering, the page served."""
    import urllib.request

    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "tulu.cli", "serve", str(run_dir), "--port", str(port),
                             "--max-batch-size", "4"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        models = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url + "/v1/models", timeout=2) as r:
                    models = [m["id"] for m in json.loads(r.read())["data"]]
                break
            except OSError:
                time.sleep(0.2)
        assert models == ["base", "sft", "dpo"], proc.stdout.read() if proc.poll() is not None else models
        body = json.dumps({"model": "dpo", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5}).encode()
        req = urllib.request.Request(url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["usage"]["completion_tokens"] >= 1
        with urllib.request.urlopen(url + "/", timeout=10) as r:
            page = r.read().decode()
        assert "<title>tulu chat</title>" in page and "/static/app.js" in page
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "chat page:  " + url + "/" in out and "serving dpo" in out


def test_serve_is_the_alpaca_eval_judge_endpoint(server, http, tmp_path, tokenizer):
    """`tulu eval --tasks alpaca_eval --judge-url <tulu serve>`: the judge's questions go to the served model."""
    from tulu.cli import main

    model_dir = tmp_path / "candidate"
    save_model(*tiny_model(seed=4, tokenizer=tokenizer), model_dir)
    before = http.get("/health")[1]["models"]["beta"]["requests"]
    rc = main(["eval", "--model", str(model_dir), "--tasks", "alpaca_eval", "--judge-url", server.url + "/v1",
               "--judge-name", "beta", "--limit", "2", "--max-new-tokens", "8", "--output", str(tmp_path / "ev"),
               "--no-report"])
    assert rc == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())["tasks"]["alpaca_eval"]
    assert res["skipped"] is None and res["n"] == 2, res
    assert 0.0 <= res["metrics"]["lc_win_rate"]["value"] <= 100.0
    # two items, each judged in both orders
    assert http.get("/health")[1]["models"]["beta"]["requests"] - before == 4


def test_cpu_fast_engine_takes_dtype_as_its_weight_precision(tokenizer, tmp_path):
    """On CPU, `tulu serve --dtype` is the compiled decode step's weight precision (as for `tulu eval`): the model
    loads in fp32 and the engine stores bf16 weights when asked; the HF fallback keeps the model's own dtype."""
    import torch

    from tulu.models import tiny_model
    from tulu.rollout import kernels
    from tulu.serve.registry import ModelSpec

    model, _ = tiny_model(seed=0, tokenizer=tokenizer)
    save_model(model, tokenizer, tmp_path / "tiny")
    spec = ModelSpec("tiny", "tiny", str(tmp_path / "tiny"))
    fp32 = load_engine(spec, dtype="float32", device="cpu")
    assert fp32.eng.weight_choice.dtype == "float32" and fp32.eng.dtype == torch.float32
    bf16 = load_engine(spec, dtype="bfloat16", device="cpu")
    assert bf16.eng.weight_choice.dtype == "bfloat16" and bf16.eng.weight_choice.source == "explicit"
    if kernels.available():  # the compiled step keeps fp32 activations over bf16 panels
        assert bf16.eng.dtype == torch.float32 and bf16.eng.layers[0].down.weight.dtype == torch.bfloat16
    assert load_engine(spec, dtype="auto", device="cpu").eng.weight_choice.dtype == "float32"  # tiny: never bf16
    for e in (fp32, bf16):
        e.close()
