"""Which models `tulu serve` serves, under which names, and the engine that runs each.

A ``MODEL`` argument is one of:

* ``embedded`` (served as ``embedded``);
* a transformers folder (served under its folder name, or its parent's when the folder is called
  ``model``, as in ``runs/x/sft/model`` -> ``sft``);
* a pipeline run folder (``runs/<name>/``): each stage's model that is present, under the stage's
  name: ``base`` (the ``base_model`` that ``pipeline_config.json`` names), ``sft``, ``dpo``, ``rlvr``;
* ``NAME=MODEL`` for any of these (a run folder then serves ``NAME-sft``, ``NAME-dpo``...).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from tulu.models import EMBEDDED_ALIASES, ModelSourceError, resolve_model_path

log = logging.getLogger(__name__)

RUN_STAGES = ("sft", "dpo", "rlvr")  # trained stages whose `<stage>/model` folder a run may hold


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: str  # what the user gave (or the run's base_model)
    path: str  # a loadable folder or hub id


def is_run_folder(path: Path) -> bool:
    return path.is_dir() and not (path / "config.json").is_file() and (
        (path / "pipeline_config.json").is_file() or any((path / s / "model" / "config.json").is_file()
                                                         for s in RUN_STAGES))


def run_models(run: Path, prefix: str = "") -> list[ModelSpec]:
    """The models of a pipeline run folder, base first (when its config names one that resolves)."""
    specs = []
    cfg_path = run / "pipeline_config.json"
    if cfg_path.is_file():
        try:
            base = json.loads(cfg_path.read_text()).get("base_model")
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelSourceError(f"{cfg_path}: cannot read the run's config: {exc}") from None
        if base:
            try:
                specs.append(ModelSpec(prefix + "base", str(base), resolve_model_path(base)))
            except ModelSourceError as exc:
                log.warning("%s: base model %s is not served: %s", run, base, exc)
    for stage in RUN_STAGES:
        folder = run / stage / "model"
        if (folder / "config.json").is_file():
            specs.append(ModelSpec(prefix + stage, str(folder), str(folder)))
    if not specs:
        raise ModelSourceError(f"{run}: a pipeline run folder with no model yet (looked for base_model in "
                               f"pipeline_config.json and {', '.join(s + '/model' for s in RUN_STAGES)})")
    return specs


def default_name(source: str) -> str:
    if source in EMBEDDED_ALIASES:
        return "embedded"
    path = Path(source).expanduser()
    if path.exists():
        path = path.resolve()
        return path.parent.name if path.name == "model" and path.parent.name else path.name
    return source  # a hub id


def resolve_specs(args: list[str]) -> list[ModelSpec]:
    """``MODEL`` arguments -> unique (name, path) pairs; raises :class:`ModelSourceError` with the reason."""
    specs: list[ModelSpec] = []
    for arg in args:
        name, sep, source = arg.partition("=")
        if not sep or not name or "/" in name:  # a path may contain '=' but a name has no '/'
            name, source = "", arg
        path = Path(source).expanduser()
        if is_run_folder(path):
            specs.extend(run_models(path, prefix=f"{name}-" if name else ""))
        else:
            specs.append(ModelSpec(name or default_name(source), source, resolve_model_path(source)))
    seen: dict[str, str] = {}
    for s in specs:
        if s.name in seen:
            raise ModelSourceError(f"two models would be served as {s.name!r} ({seen[s.name]} and {s.source}); "
                                   f"name them with NAME=MODEL")
        seen[s.name] = s.source
    return specs


def load_engine(spec: ModelSpec, *, backend: str = "auto", device: str | None = None, dtype: str = "auto",
                max_batch_size: int = 32, max_model_len: int = 2048, kv_cache_gb: float = 4.0):
    """Load one model and wrap it in the engine ``backend`` asks for (``auto``: fast when the model is
    Llama-family, else HF; ``vllm``: vLLM's async engine, GPU)."""
    if backend == "vllm":
        from tulu.serve.vllm_engine import VLLMEngine

        kwargs = {} if dtype == "auto" else {"dtype": dtype}
        return VLLMEngine(spec.name, spec.path, max_model_len=max_model_len, max_num_seqs=max_batch_size, **kwargs)
    from tulu.models import load_model_and_tokenizer
    from tulu.rollout.llama import supports
    from tulu.serve.engine import FastEngine
    from tulu.serve.fallback import HFEngine

    from tulu.rollout.weights import is_cpu_weight_precision

    # on CPU the fast engine takes fp32 weights and `dtype` as its decode step's weight precision, as `tulu eval`
    cpu_weights = is_cpu_weight_precision(backend, device, dtype)
    model, tokenizer = load_model_and_tokenizer(spec.path, dtype="float32" if cpu_weights else dtype, device=device)
    reason = supports(model)
    if backend == "fast" and reason:
        raise ModelSourceError(f"{spec.source}: the fast backend cannot run this model ({reason}); use --backend hf")
    if backend == "hf" or reason:
        if cpu_weights:  # HF generate: the model's own dtype, as before
            from tulu.models import parse_dtype

            model = model.to(parse_dtype(dtype, "cpu"))
        if backend == "auto":
            log.info("%s: %s; serving it with HF generate (no continuous batching)", spec.name, reason)
        return HFEngine(spec.name, model, tokenizer, max_model_len=max_model_len)
    return FastEngine(spec.name, model, tokenizer, max_batch_size=max_batch_size, max_model_len=max_model_len,
                      kv_cache_gb=kv_cache_gb, weights=dtype if cpu_weights else "float32")
