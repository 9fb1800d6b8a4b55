"""`tulu model`: prepare the embedded model, inspect a model, ask it one question."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    sub.add_parser("prepare", help="convert the embedded SmolLM2 GGUF into the fp32 cache (done automatically on first use)")
    i = sub.add_parser("info", help="print a model's path, size and config")
    i.add_argument("model", nargs="?", default="embedded")
    a = sub.add_parser("ask", help="answer one chat message (greedy)")
    a.add_argument("message")
    a.add_argument("--model", default="embedded")
    a.add_argument("--max-new-tokens", type=int, default=128)


def main(args: argparse.Namespace) -> int:
    from tulu.models import load_model_and_tokenizer, resolve_model_path

    if args.model_command == "prepare":
        print(resolve_model_path("embedded"))
        return 0
    if args.model_command == "info":
        path = resolve_model_path(args.model)
        model, tok = load_model_and_tokenizer(path, device="cpu", dtype="float32")
        n = sum(p.numel() for p in model.parameters())
        print(json.dumps({"path": path, "parameters": n, "architecture": type(model).__name__,
                          "vocab": len(tok), "layers": model.config.num_hidden_layers,
                          "hidden": model.config.hidden_size}, indent=2))
        return 0
    if args.model_command == "ask":
        import torch

        model, tok = load_model_and_tokenizer(args.model)
        msgs = [{"role": "user", "content": args.message}]
        enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=False)
        print(tok.decode(out[0][enc["input_ids"].shape[1]:], skip_special_tokens=True).strip())
        return 0
    raise AssertionError(args.model_command)
