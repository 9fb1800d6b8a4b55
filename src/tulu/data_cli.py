"""`tulu data`: the actions of :mod:`tulu.data.cli` (validate, convert, stats, synth, prompts) plus the ones
that call models, which live above the data layer: ``persona`` (persona-driven prompt synthesis),
``prefs`` (on-policy preference pairs judged by an LLM, a reward model or the verifiers) and ``ifpairs``
(Tulu 3's IF-persona pairs: a constraint prompt against its relaxed version)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tulu.data import cli as data_cli

MODEL_FORMS = ("SOURCE is embedded, a model folder, a hub id, RUN_DIR:STAGE (a pipeline stage's model, e.g. "
               "runs/embedded_cpu:sft) or openai:MODEL@BASE_URL (an OpenAI-compatible endpoint: a hosted API, vLLM, "
               "`tulu serve`); the API key comes from $OPENAI_API_KEY")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed for every random choice and for sampling (default 0)")
    p.add_argument("--backend", default="auto", choices=("auto", "fast", "hf", "vllm"),
                   help="generation backend for local models (auto: vllm on a GPU, else our fast engine)")
    p.add_argument("--batch-size", type=int, default=16, help="prompts per generate call (default 16)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight per endpoint (default 8)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per endpoint request (default 120)")
    p.add_argument("--temperature", type=float, default=0.7,
                   help="sampling temperature of every model unless its spec sets one (default 0.7)")
    p.add_argument("--max-tokens", type=int, default=256,
                   help="completion length cap of every model unless its spec sets one (default 256)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = data_cli.add_arguments(parser)
    ps = sub.add_parser("persona", help="persona-driven prompt synthesis (Tulu 3 §3.1.2) through an LLM",
                        description="An LLM gets one persona and one task template (precise instruction following, "
                                    "math, code) and writes a new prompt; prompts are cleaned, deduplicated and "
                                    "(with --decontam) decontaminated. Records carry their provenance.")
    ps.add_argument("out", type=Path, help="output JSONL; OUT.cache.jsonl caches the generator's answers (a rerun "
                                           "reuses them) and OUT.summary.json counts every outcome")
    ps.add_argument("--generator", required=True, metavar="SOURCE[,temperature=T,...]",
                    help=f"the model that writes prompts; {MODEL_FORMS}")
    ps.add_argument("-n", type=int, default=100, help="prompts to keep (default 100)")
    ps.add_argument("--personas", default=None, metavar="FILE",
                    help="persona file: text (one per line, # comments) or JSONL with a 'persona' field (Persona "
                         "Hub's persona.jsonl) or 'input persona'; default: the small list shipped with tulu")
    ps.add_argument("--templates", default="if,math,code",
                    help="comma-separated task templates, used in turn: if, math, code (default: all three)")
    ps.add_argument("--max-draws", type=int, default=0,
                    help="give up after this many generator calls (default 3 x n)")
    ps.add_argument("--respond", default=None, metavar="SOURCE[,temperature=T,...]",
                    help="also answer every kept prompt with this model, writing SFT records instead of prompts")
    ps.add_argument("--decontam", action="store_true",
                    help="run `tulu decontam` (8-gram, remove mode) on the output before writing it; the report "
                         "goes to OUT.decontam/")
    ps.add_argument("--decontam-benchmarks", default=None,
                    help="comma-separated benchmarks for --decontam (default: every one that loads here)")
    _common(ps)

    pr = sub.add_parser("prefs", help="on-policy preference pairs: a model pool answers, a judge rates, best vs "
                                      "a random lower one (Tulu 3 §5.2.1)",
                        description="Prompts from any dataset; completions from a pool of models (K per prompt, "
                                    "the on-policy model always among them); a judge rates every completion; "
                                    "binarised as published (mean rating; chosen = best; rejected = random among "
                                    "lower-rated; ties dropped). Generations and judgments are cached in OUT: a "
                                    "rerun continues where a stopped one ended.")
    pr.add_argument("out", type=Path, help="output folder: pairs.jsonl, summary.json, generations.jsonl and "
                                           "judgments.jsonl (the caches)")
    pr.add_argument("--prompts", nargs="+", required=True, metavar="SOURCE=N",
                    help="prompt sources and counts (> 1) or fractions (<= 1): synthetic:math, synthetic:constraints, "
                         "rlvr:constraints, rlvr:math, or any file `tulu data` reads (its last assistant turn is "
                         "dropped), e.g. persona.jsonl=200")
    pr.add_argument("--model", action="append", required=True, metavar="NAME=SOURCE[,temperature=T,top_p=P,"
                                                                         "max_tokens=N]",
                    help=f"a model of the pool (repeat for each); {MODEL_FORMS}")
    pr.add_argument("--models-per-prompt", type=int, default=4,
                    help="models that answer each prompt, drawn per prompt (Tulu 3: 4 of 22; default 4)")
    pr.add_argument("--on-policy", default=None, metavar="NAME",
                    help="the pool model that answers every prompt (Tulu 3: the SFT model being tuned)")
    pr.add_argument("--judge", required=True,
                    help="openai:MODEL@BASE_URL (an LLM rates 1-5 on helpfulness, instruction following, honesty, "
                         "truthfulness), rm:PATH (a `tulu rm` reward model scores), or verifier (only prompts "
                         "with a ground truth)")
    pr.add_argument("--verifier-first", action="store_true",
                    help="prompts that carry a ground truth are judged by their verifier (1 pass, 0 fail) "
                         "whatever --judge says")
    pr.add_argument("--judge-per-aspect", action="store_true",
                    help="ask the LLM judge one question per aspect (UltraFeedback's layout, 4x the calls) instead "
                         "of all four ratings in one answer")
    pr.add_argument("--judge-retries", type=int, default=2,
                    help="ask again this many times when the judge's answer cannot be parsed; then it is recorded "
                         "as unparseable (default 2)")
    pr.add_argument("--judge-max-tokens", type=int, default=64, help="length cap of a judge answer (default 64)")
    pr.add_argument("--judge-temperature", type=float, default=0.0, help="judge temperature, first try (default 0)")
    pr.add_argument("--retry-temperature", type=float, default=0.7,
                    help="judge temperature of the retries (default 0.7)")
    pr.add_argument("--rm-batch", type=int, default=8, help="completions per reward-model forward (default 8)")
    _common(pr)

    ip = sub.add_parser("ifpairs", help="Tulu 3's IF-persona pairs: the answer to a constraint prompt vs the answer "
                                        "to the prompt with one constraint relaxed (§5.3)",
                        description="Each constraint prompt is rewritten with one constraint cut out; the model's "
                                    "answer to the original is chosen, its answer to the relaxed prompt rejected. "
                                    "Generations are cached in OUT (a rerun continues).")
    ip.add_argument("out", type=Path, help="output folder: pairs.jsonl, summary.json, generations.jsonl (cache)")
    ip.add_argument("--model", required=True, metavar="SOURCE[,temperature=T,...]",
                    help=f"the model that answers both versions (Tulu 3: the policy's pool); {MODEL_FORMS}")
    ip.add_argument("--prompts", nargs="+", default=["rlvr:constraints=200"], metavar="SOURCE=N",
                    help="constraint prompts with an ifeval ground truth (default rlvr:constraints=200)")
    ip.add_argument("--keep", choices=("all", "verified"), default="all",
                    help="all pairs (as Tulu 3), or only those where the ifeval verifier passes chosen and fails "
                         "rejected on the original constraints (default all; both are recorded either way)")
    _common(ip)


def _spec(text: str, name: str, args: argparse.Namespace):
    from tulu.curate import parse_model_spec

    if "=" in text.split(",", 1)[0] and not text.startswith("openai:"):
        return parse_model_spec(text, temperature=args.temperature, max_tokens=args.max_tokens)
    return parse_model_spec(f"{name}={text}", temperature=args.temperature, max_tokens=args.max_tokens)


def main(args: argparse.Namespace) -> int:
    if args.data_command == "persona":
        from tulu.curate.persona import PersonaOptions, run_persona

        opts = PersonaOptions(out=args.out, generator=_spec(args.generator, "generator", args), n=args.n,
                              personas=args.personas, templates=[t.strip() for t in args.templates.split(",") if t.strip()],
                              seed=args.seed, max_draws=args.max_draws,
                              responder=_spec(args.respond, "responder", args) if args.respond else None,
                              decontam=args.decontam,
                              decontam_benchmarks=args.decontam_benchmarks.split(",") if args.decontam_benchmarks else None,
                              backend=args.backend, batch_size=args.batch_size, concurrency=args.concurrency,
                              timeout=args.timeout)
        run_persona(opts)
        return 0
    if args.data_command == "prefs":
        from tulu.curate import parse_model_spec
        from tulu.curate.prefs import JudgeOptions, PrefsOptions, run_prefs

        judge = JudgeOptions(args.judge, verifier_first=args.verifier_first, per_aspect=args.judge_per_aspect,
                             retries=args.judge_retries,
                             max_tokens=args.judge_max_tokens, temperature=args.judge_temperature,
                             retry_temperature=args.retry_temperature, concurrency=args.concurrency,
                             timeout=args.timeout, rm_batch=args.rm_batch)
        models = [parse_model_spec(m, temperature=args.temperature, max_tokens=args.max_tokens) for m in args.model]
        run_prefs(PrefsOptions(out=args.out, prompts=args.prompts, models=models, judge=judge,
                               models_per_prompt=args.models_per_prompt, on_policy=args.on_policy, seed=args.seed,
                               backend=args.backend, batch_size=args.batch_size, concurrency=args.concurrency,
                               timeout=args.timeout))
        return 0
    if args.data_command == "ifpairs":
        from tulu.curate.prefs import run_ifpairs

        run_ifpairs(args.out, args.prompts, _spec(args.model, "model", args), seed=args.seed, backend=args.backend,
                    batch_size=args.batch_size, keep=args.keep, timeout=args.timeout)
        return 0
    return data_cli.main(args)
