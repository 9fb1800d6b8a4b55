"""Weight precision of the fast backend: ``float32`` | ``bfloat16`` | ``auto`` (the ``dtype`` option).

``bfloat16`` stores every panel-packed matrix of the compiled CPU decode step (q/k/v, o, gate/up, down and
the LM head) as bf16, rounded to nearest-even from the fp32 weights; the embedding table is rounded the same
way (kept in fp32). What the matmuls then compute depends on the build (:func:`dot_products_available`):

* where the compiler targets AVX512-BF16 (``-march=native`` on a CPU with ``avx512_bf16``): **bf16
  products, fp32 accumulation** (``csrc/dpbf16.cpp``, vdpbf16ps): each matmul's input rows are rounded to
  bf16 (nearest even; fp32 denormals flush to zero) and multiplied with the bf16 weights, sums in fp32.
  About twice the multiply-adds a cycle of the fp32 kernel, and half the bytes streamed;
* elsewhere: **bf16 storage only**: the weights are widened back to fp32 as they are loaded and the
  arithmetic is that of an fp32 model whose matrices were rounded to bf16. Half the bytes, the same
  multiply-adds (so it helps only where the step waits on memory).

Either way norms, RoPE, attention, the KV cache, softmax and sampling stay fp32, and prefill, decode and
log-likelihood scoring use the same matmuls. Without the compiled kernels (no C++ compiler) an explicit
``bfloat16`` runs the whole Python step in bf16 instead.

``auto`` picks bf16 weights only where a micro-measurement on this machine says the bf16-weight decode
step is at least :data:`MIN_SPEEDUP` times faster than the fp32 one: one decode step of the model itself
(all layers and the LM head, at the backend's batch size, 64 cached positions), fp32 and bf16 panels (of
the kind above that this build uses) alternating, best of 5 each after a warm-up. The result is cached per
machine in ``<tulu cache>/precision/decode-<key>.json`` (key: CPU flags, torch version, thread count, the
kernel sources, the model's shapes and the batch), like :mod:`tulu.precision`'s training measurement; later
runs read it. One taken while other work loads the host is used for that run only and not cached.
``auto`` stays fp32 without measuring when the compiled step is not loaded, when the hidden size is below
:data:`MIN_HIDDEN` (the tiny test models: too small to measure), and when ``TULU_PRECISION=fp32`` is set.
The widening path needs only AVX2 (or plain vector code elsewhere), so
``auto`` measures on every host rather than looking at CPU flags.

The choice is a :class:`WeightChoice`; the backend logs :meth:`WeightChoice.describe` and keeps it as
``engine.weight_choice`` (``products``: ``bf16`` for the vdpbf16ps kernel, ``fp32`` otherwise).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

log = logging.getLogger(__name__)

WEIGHT_DTYPES = ("float32", "bfloat16", "auto")
MIN_SPEEDUP = 1.15  # the bf16-weight step must beat the fp32 step by this much (host noise is ~5-10%)
MIN_HIDDEN = 256
VERSION = 2  # bump when the measurement changes, so cached results are not reused

ALIASES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16", "auto": "auto"}


def normalize(value) -> str:
    """``float32`` | ``bfloat16`` | ``auto`` from a config value (``fp32``/``bf16``/torch dtypes/None = auto)."""
    if value is None:
        return "auto"
    if isinstance(value, torch.dtype):
        value = {torch.float32: "float32", torch.bfloat16: "bfloat16"}.get(value, str(value))
    name = ALIASES.get(str(value).strip().lower())
    if name is None:
        raise ValueError(f"dtype: {value!r} is not one of {', '.join(WEIGHT_DTYPES)} (the fast backend's weight "
                         "precision)")
    return name


def is_cpu_weight_precision(backend: str, device: str | None, dtype) -> bool:
    """Whether ``dtype`` means the fast CPU decode step's weight precision here (the model then loads in fp32):
    on CPU, with the ``fast`` or ``auto`` backend, for float32 | bfloat16 | auto (float16 stays the model's
    dtype). ``tulu.rollout.load_backend`` and ``tulu serve`` read ``--dtype`` through this one rule."""
    from tulu.models import default_device

    cpu = (torch.device(device) if device else default_device()).type == "cpu"
    return cpu and backend in ("fast", "auto") and str(dtype).lower() in ALIASES


@dataclass
class WeightChoice:
    """``dtype``: the decode step's weight storage (float32 | bfloat16); ``source``: explicit | auto;
    ``products``: the precision of the matmuls' products (bf16 only for bf16 weights on AVX512-BF16 builds)."""

    dtype: str
    source: str
    reason: str
    measured: dict = field(default_factory=dict)
    products: str = "fp32"  # "bf16": the matmuls multiply in bf16 (vdpbf16ps), fp32 accumulation

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"fast backend weights: {self.dtype} [{self.source}] - {self.reason}"


def dot_products_available() -> bool:
    """Whether the loaded compiled kernels multiply bf16 weights in bf16 (built for AVX512-BF16)."""
    from tulu.rollout import kernels

    return kernels.available() and bool(torch.ops.tulu.has_dpbf16())


def time_steps(steps: dict[str, Callable[[], object]], repeats: int = 5) -> dict[str, float]:
    """Best-of-``repeats`` seconds of each zero-argument callable, run alternately after one warm-up each."""
    for fn in steps.values():
        fn()
    best = {k: float("inf") for k in steps}
    for _ in range(repeats):
        for k, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _cache_path(key_parts: dict):
    from tulu.models import cache_dir
    from tulu.precision import cpu_flags
    from tulu.rollout.kernels import HEADERS, SOURCES
    from tulu.utils import file_sha256, stable_hash

    key = stable_hash(VERSION, sorted(cpu_flags()), platform.machine(), torch.__version__, torch.get_num_threads(),
                      [file_sha256(p) for p in SOURCES + HEADERS], key_parts)
    return cache_dir() / "precision" / f"decode-{key}.json"


def cached_measure(key_parts: dict, measure: Callable[[], dict]) -> tuple[dict, bool]:
    """``measure()`` for this machine and ``key_parts`` (shapes, batch), through the per-machine cache
    (:func:`tulu.precision.measure_once`: not cached when taken on a busy host). Returns (result, whether it
    came from the cache)."""
    from tulu.precision import measure_once

    return measure_once(_cache_path(key_parts), lambda: dict(measure(), **key_parts, torch=torch.__version__,
                                                             threads=torch.get_num_threads()),
                        what="bf16-weight decode micro-measurement")


def choose(setting, *, compiled: bool, hidden: int, key_parts: dict | None = None,
           measure: Callable[[], dict] | None = None, dot: bool = False) -> WeightChoice:
    """Resolve the fast backend's ``dtype`` for an engine. ``measure()`` returns ``{"fp32_s", "bf16_s",
    "speedup", ...}`` for one decode step of each kind; it runs (through the per-machine cache, unless
    ``key_parts`` is None) only for ``auto`` on an engine that qualifies. ``dot``: the compiled step has
    the bf16-product kernel (so bf16 weights mean bf16 products)."""
    import os

    name = normalize(setting)
    if name == "float32":
        return WeightChoice("float32", "explicit", "dtype=float32")
    products = "bf16" if dot and compiled else "fp32"
    how = ("bf16 products (vdpbf16ps, activations rounded to bf16 at each matmul input), fp32 accumulation"
           if products == "bf16" else "bf16 panels widened to fp32 in the compiled step")
    if name == "bfloat16":
        if not compiled:
            how = "the compiled step is not loaded: the Python step runs in bf16 throughout"
        return WeightChoice("bfloat16", "explicit", f"dtype=bfloat16 ({how})", products=products)
    if os.environ.get("TULU_PRECISION", "").lower() in ("fp32", "float32", "no"):
        return WeightChoice("float32", "auto", "TULU_PRECISION=fp32 is set")
    if not compiled:
        return WeightChoice("float32", "auto", "the compiled decode step is not loaded (bf16 weights there would "
                                               "mean bf16 arithmetic): fp32")
    if hidden < MIN_HIDDEN:
        return WeightChoice("float32", "auto", f"hidden size {hidden} < {MIN_HIDDEN}: too small to measure, fp32")
    if measure is None:
        return WeightChoice("float32", "auto", "nothing to measure with: fp32")
    if key_parts is None:
        result, cached = measure(), False
    else:
        result, cached = cached_measure(key_parts, measure)
    speedup = float(result["speedup"])
    detail = (f"{'cached measurement' if cached else 'measured now'}: a bf16-weight decode step ({how}) {speedup:.2f}x "
              f"the fp32 one ({1e3 * result['fp32_s']:.1f} vs {1e3 * result['bf16_s']:.1f} ms"
              f"{', ' + str(result['batch']) + ' rows' if 'batch' in result else ''})")
    if speedup >= MIN_SPEEDUP:
        return WeightChoice("bfloat16", "auto", detail, result, products=products)
    return WeightChoice("float32", "auto", f"{detail}, < {MIN_SPEEDUP}x needed", result)
