"""Which compute dtype a CPU (or GPU) should run: ``auto`` precision, decided by what the host can do.

Two facts decide it on a CPU:

* **native bf16**: the CPU's instruction-set flags (``/proc/cpuinfo``): ``avx512_bf16`` (AVX-512 dot products
  on bf16 pairs), ``amx_bf16`` (Intel AMX tiles), or ``bf16`` on Arm (FEAT_BF16). Without one of them
  torch/oneDNN emulate bf16 matmuls with fp32 arithmetic plus conversions, which is slower than fp32: ``auto``
  then picks fp32 without measuring anything.
* **a one-off micro-measurement** on a host that has native bf16: forward + backward of one MLP block of the
  model's shapes (``[512, hidden] -> [512, intermediate] -> [512, hidden]``, fp32 weights) in plain fp32 and
  under ``torch.autocast(dtype=torch.bfloat16)``, alternating, best of 3 each. The casts autocast makes are
  part of what is timed. bf16 is picked when it is at least :data:`MIN_SPEEDUP` times faster. The result is
  cached per machine in ``<tulu cache>/precision/<key>.json`` (key: CPU flags, torch version, thread count
  and the shapes), like the compiled decode step, so later runs read it instead of measuring. A measurement
  taken while other work loads the host (:func:`host_busy`) is used for that run only and not cached.

Models whose hidden size is below :data:`MIN_HIDDEN` (the tiny test Llama) stay fp32: their matmuls are too
small for bf16 to pay for the casts, and a measurement that small is mostly noise.

The chosen path is a :class:`PrecisionChoice`: the compute dtype, the weight dtype and a sentence saying
why; the engine logs it and every trainer's ``summary.json`` carries it (``precision``).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from functools import cache

import torch

log = logging.getLogger(__name__)

BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86; on Arm the feature is called "bf16"
MIN_SPEEDUP = 1.2  # bf16 must beat fp32 by this much in the micro-measurement (host noise is ~10%)
MIN_HIDDEN = 256
MEASURE_TOKENS = 512
VERSION = 1  # bump when the measurement changes, so cached results are not reused


# ------------------------------------------------------------------------------------------- the host
@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@dataclass(frozen=True)
class HostBF16:
    """Whether this CPU computes bf16 natively, and the evidence."""

    native: bool
    evidence: str  # the flag(s) found, or why none counts
    capability: str  # torch.backends.cpu.get_cpu_capability(): the vector ISA torch dispatches to


def host_bf16() -> HostBF16:
    flags = cpu_flags()
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        capability = "unknown"
    found = [f for f in BF16_FLAGS if f in flags]
    if platform.machine().lower() in ("aarch64", "arm64") and "bf16" in flags:
        found.append("bf16")
    if found:
        return HostBF16(True, "cpu flags: " + ", ".join(found), capability)
    if not flags:
        return HostBF16(False, "no CPU flags readable (/proc/cpuinfo)", capability)
    return HostBF16(False, "no avx512_bf16 / amx_bf16 in the CPU flags", capability)


# ------------------------------------------------------------------------------------ the measurement
@dataclass(frozen=True)
class Shapes:
    hidden: int
    intermediate: int

    @classmethod
    def of(cls, model) -> Shapes | None:
        cfg = getattr(model, "config", None)
        cfg = getattr(cfg, "get_text_config", lambda: cfg)() if cfg is not None else None
        hidden = getattr(cfg, "hidden_size", None)
        if not hidden:
            return None
        return cls(int(hidden), int(getattr(cfg, "intermediate_size", None) or 4 * hidden))


def _mlp_seconds(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor, bf16: bool) -> float:
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = torch.nn.functional.linear(torch.nn.functional.silu(torch.nn.functional.linear(x, w1)), w2)
    y.float().sum().backward()
    dt = time.perf_counter() - t0
    w1.grad = w2.grad = x.grad = None
    return dt


def measure(shapes: Shapes, tokens: int = MEASURE_TOKENS, repeats: int = 3) -> dict:
    """Seconds of one fp32 and one bf16-autocast MLP forward + backward at ``shapes`` (best of ``repeats``,
    alternating, after one untimed warm-up of each)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, shapes.hidden, generator=g, requires_grad=True)
    w1 = (torch.randn(shapes.intermediate, shapes.hidden, generator=g) * shapes.hidden ** -0.5).requires_grad_()
    w2 = (torch.randn(shapes.hidden, shapes.intermediate, generator=g) * shapes.intermediate ** -0.5).requires_grad_()
    best = {False: float("inf"), True: float("inf")}
    for bf16 in (False, True):
        _mlp_seconds(x, w1, w2, bf16)
    for _ in range(repeats):
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], _mlp_seconds(x, w1, w2, bf16))
    return {"fp32_s": best[False], "bf16_s": best[True], "speedup": best[False] / best[True],
            "tokens": tokens, "threads": torch.get_num_threads()}


def _cache_path(shapes: Shapes):
    from tulu.models import cache_dir
    from tulu.utils import stable_hash

    key = stable_hash(VERSION, sorted(cpu_flags()), platform.machine(), torch.__version__, torch.get_num_threads(),
                      shapes.hidden, shapes.intermediate)
    return cache_dir() / "precision" / f"{key}.json"


def _read_cached(path) -> dict | None:
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def host_load() -> tuple[float, int]:
    """(1-minute load average, CPUs this process may use); load 0.0 where the OS does not report one."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0], cpus
    except (AttributeError, OSError):
        return 0.0, cpus


def host_busy() -> str | None:
    """A sentence when other work competes for this process's CPUs (1-minute load average above the CPU count
    plus one: the measuring process itself accounts for up to its thread count), else None. A timing taken
    then says more about the other work than about the host."""
    load, cpus = host_load()
    return f"load average {load:.1f} on {cpus} CPUs" if load > cpus + 1 else None


def measure_once(path, measure, what: str = "bf16 micro-measurement") -> tuple[dict, bool]:
    """``measure()`` for this machine, from the JSON cache at ``path`` or run once under a file lock and
    written atomically; returns (result, whether it came from the cache). A measurement taken while the host
    is busy (:func:`host_busy`, checked before and after) is used for this run only and NOT cached, so one
    noisy moment does not decide every later run on the machine."""
    from tulu.utils import atomic_write_json, file_lock

    hit = _read_cached(path)
    if hit is not None:
        return hit, True
    with file_lock(path.parent / ".measure.lock"):
        hit = _read_cached(path)  # another process measured while we waited
        if hit is not None:
            return hit, True
        busy_before = host_busy()
        result = measure()
        busy = busy_before or host_busy()
        if busy:
            log.warning("%s taken on a busy host (%s): used for this run only, not cached; it is measured again "
                        "next time (or set the dtype explicitly)", what, busy)
            return dict(result, busy=busy), False
        atomic_write_json(path, result)
    log.info("%s (once per machine, cached in %s): fp32 %.1f ms, bf16 %.1f ms", what, path,
             1e3 * result["fp32_s"], 1e3 * result["bf16_s"])
    return result, False


def cached_measure(shapes: Shapes) -> tuple[dict, bool]:
    """The micro-measurement for this machine and ``shapes`` (:func:`measure_once`)."""
    return measure_once(_cache_path(shapes), lambda: dict(measure(shapes), hidden=shapes.hidden,
                                                          intermediate=shapes.intermediate, torch=torch.__version__))


# --------------------------------------------------------------------------------------- the decision
@dataclass
class PrecisionChoice:
    """What a run computes in. ``compute``: fp32 | bf16 | fp16 (autocast dtype, or the weights' own dtype);
    ``autocast``: whether the engine enters autocast; ``weights``: the parameters' dtype; ``source``:
    'explicit' (a config value) or 'auto'; ``reason``: one sentence for the log and the run summary."""

    compute: str
    autocast: bool
    weights: str
    source: str
    reason: str
    measured: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        how = f"{self.compute} autocast over {self.weights} weights" if self.autocast else \
            f"{self.compute} ({self.weights} weights, no autocast)"
        return f"precision: {how} [{self.source}] - {self.reason}"


_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float64: "float64"}
_SHORT = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.float64: "fp64"}


def weights_dtype(model) -> torch.dtype:
    """The dtype of most trainable parameters (by element count); fp32 for a model without parameters."""
    counts: dict[torch.dtype, int] = {}
    for p in model.parameters():
        if p.is_floating_point():
            counts[p.dtype] = counts.get(p.dtype, 0) + p.numel()
    return max(counts, key=counts.get) if counts else torch.float32


def choose(mixed_precision: str, device: torch.device | str, weights: torch.dtype = torch.float32,
           shapes: Shapes | None = None) -> PrecisionChoice:
    """Resolve ``train.mixed_precision`` (auto | no | bf16 | fp16) for a run on ``device`` whose weights are
    ``weights`` and whose model has ``shapes``. Explicit values are kept as they are."""
    device = torch.device(device)
    wname = _NAMES.get(weights, str(weights))
    if mixed_precision in ("bf16", "fp16"):
        return PrecisionChoice(mixed_precision, True, wname, "explicit",
                               f"train.mixed_precision={mixed_precision}")
    if mixed_precision == "no":
        return PrecisionChoice(_SHORT.get(weights, wname), False, wname, "explicit",
                               "train.mixed_precision=no")
    if mixed_precision != "auto":
        raise ValueError(f"train.mixed_precision: {mixed_precision!r} is not one of auto, no, bf16, fp16")
    if force_fp32_env():
        return PrecisionChoice(_SHORT.get(weights, wname), False, wname, "auto", "TULU_PRECISION=fp32 is set")
    if weights != torch.float32:
        return PrecisionChoice(_SHORT.get(weights, wname), False, wname, "auto",
                               f"the weights are {wname} (model.dtype): no autocast on top")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", True, wname, "auto", "this GPU supports bf16")
        return PrecisionChoice("fp32", False, wname, "auto", "this GPU has no bf16")
    if device.type != "cpu":
        return PrecisionChoice("fp32", False, wname, "auto", f"no automatic choice on {device.type}: fp32")
    host = host_bf16()
    if not host.native:
        return PrecisionChoice("fp32", False, wname, "auto", f"no native bf16 on this CPU ({host.evidence})")
    if shapes is None:
        return PrecisionChoice("fp32", False, wname, "auto", "model shapes unknown, nothing to measure: fp32")
    if shapes.hidden < MIN_HIDDEN:
        return PrecisionChoice("fp32", False, wname, "auto",
                               f"hidden size {shapes.hidden} < {MIN_HIDDEN}: too small for bf16 to pay for its casts")
    result, cached = cached_measure(shapes)
    speedup = float(result["speedup"])
    where = "cached measurement" if cached else "measured now"
    detail = (f"{host.evidence}; {where}: bf16 autocast {speedup:.2f}x fp32 on a "
              f"[{result['tokens']}, {shapes.hidden}x{shapes.intermediate}] MLP forward+backward, "
              f"{result['threads']} threads")
    if speedup >= MIN_SPEEDUP:
        return PrecisionChoice("bf16", True, wname, "auto", detail, result)
    return PrecisionChoice("fp32", False, wname, "auto", f"{detail} (< {MIN_SPEEDUP}x needed)", result)


def normalize_mixed_precision(value) -> str:
    """``train.mixed_precision`` as written in YAML: ``no`` parses as boolean False there, so False -> 'no'."""
    if value is False:
        return "no"
    if isinstance(value, str):
        value = value.strip().lower()
        return {"fp32": "no", "false": "no", "none": "no", "bfloat16": "bf16", "float16": "fp16"}.get(value, value)
    return value


def force_fp32_env() -> bool:
    """``TULU_PRECISION=fp32`` makes ``auto`` pick fp32 everywhere (e.g. for a bitwise comparison across
    hosts); explicit config values still win."""
    return os.environ.get("TULU_PRECISION", "").lower() in ("fp32", "float32", "no")
