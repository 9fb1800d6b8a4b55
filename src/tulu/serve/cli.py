"""`tulu serve MODEL [MODEL ...]`: an OpenAI-compatible server and a chat page for one or more models."""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="'embedded', a model folder, a pipeline run folder (serves each stage's model under "
                             "its stage name: base, sft, dpo, rlvr), or NAME=MODEL to choose the served name")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument("--backend", default="auto", choices=("auto", "fast", "hf", "vllm"),
                        help="fast: our continuous-batching engine (Llama-family models, CPU or GPU); hf: HF "
                             "generate, one request at a time; vllm: vLLM's async engine (GPU, needs vllm); "
                             "auto: fast where the model allows it, else hf")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default="auto",
                        help="float32, bfloat16, float16 or auto. CPU fast engine: the decode step's weight "
                             "precision (auto: bf16 where a cached per-machine measurement finds it faster); elsewhere "
                             "the model's dtype")
    parser.add_argument("--max-batch-size", type=int, default=32,
                        help="sequences decoded together per model (the KV cache's slots)")
    parser.add_argument("--max-model-len", type=int, default=2048,
                        help="prompt + completion tokens per sequence (capped by the model's context)")
    parser.add_argument("--kv-cache-gb", type=float, default=4.0,
                        help="upper bound on each model's KV cache; fewer slots when full-length rows exceed it")


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from tulu.models import ModelSourceError
    from tulu.serve.app import create_app
    from tulu.serve.registry import load_engine, resolve_specs

    if args.max_batch_size < 1 or args.max_model_len < 2 or args.kv_cache_gb <= 0:
        print("tulu serve: error: --max-batch-size >= 1, --max-model-len >= 2 and --kv-cache-gb > 0 are needed")
        return 2
    try:
        specs = resolve_specs(args.models)
    except ModelSourceError as exc:
        print(f"tulu serve: error: {exc}")
        return 2
    engines = {}
    try:
        for spec in specs:
            log.info("loading %s from %s", spec.name, spec.path)
            engines[spec.name] = load_engine(spec, backend=args.backend, device=args.device, dtype=args.dtype,
                                             max_batch_size=args.max_batch_size, max_model_len=args.max_model_len,
                                             kv_cache_gb=args.kv_cache_gb)
    except (ModelSourceError, ImportError) as exc:
        print(f"tulu serve: error: {exc}")
        for e in engines.values():
            e.close()
        return 2
    app = create_app(engines, sources={s.name: s.path for s in specs})
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    for name, e in engines.items():
        st = e.stats()
        batching = "one request at a time"
        if e.continuous_batching:
            batching = f"continuous batching, {st['slots']} slots" if "slots" in st else "continuous batching"
        print(f"serving {name:<12} {st['backend']} backend, {batching}, context {e.max_model_len} tokens")
    print(f"chat page:  {url}/")
    print(f"OpenAI API: {url}/v1  (e.g. OpenAI(base_url=\"{url}/v1\", api_key=\"none\"))", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=30)
    finally:
        for e in engines.values():
            e.close()
    return 0
