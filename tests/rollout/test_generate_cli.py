"""`tulu generate` end to end on the tiny model."""

from __future__ import annotations

import json

from tulu.cli import main


def _model(tmp_path, tokenizer):
    from tulu.models import save_model, tiny_model

    m, tok = tiny_model(seed=0, tokenizer=tokenizer)
    return str(save_model(m, tok, tmp_path / "tiny"))


def test_generate_writes_completions(tmp_path, tokenizer):
    model = _model(tmp_path, tokenizer)
    inp = tmp_path / "in.jsonl"
    inp.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "messages": [{"role": "user", "content": "Hi"}]},
        {"id": "b", "prompt": "Once upon a time"},
        {"id": "c", "prompt_token_ids": [1, 2, 3]},
    ]) + "\n")
    out = tmp_path / "out.jsonl"
    rc = main(["generate", "--model", model, "--input", str(inp), "--output", str(out), "--backend", "fast",
               "--n", "2", "--temperature", "1.0", "--seed", "1", "--max-new-tokens", "4", "--token-ids"])
    assert rc == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert all(len(r["completions"]) == 2 for r in rows)
    c = rows[0]["completions"][0]
    assert len(c["token_ids"]) == len(c["logprobs"]) <= 4 and c["finish_reason"] in ("stop", "length")


def test_generate_reports_bad_input_with_file_and_line(tmp_path, tokenizer, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"messages": [{"role": "user", "content": "ok"}]}) + "\n" + json.dumps({"x": 1}) + "\n")
    rc = main(["generate", "--model", "unused", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")])
    assert rc == 2
    assert f"{inp}:2: messages: missing" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
