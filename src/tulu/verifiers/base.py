"""Verifier contract and registry.

A verifier is a pure function ``(response: str, ground_truth: str | dict | list, **kwargs) -> VerifyResult``
with a score in [0, 1] and a short human-readable reason. The same functions give RLVR rewards and
evaluation metrics, so a bug here poisons both: each one is tested against its reference scorer.

Every check made through ``verify`` / ``verify_many`` runs under a time limit (see ``timeout.py``): a check
that runs out of time scores 0 with reason ``"timeout: ..."``. A verifier may register its own default
limit (``@register("code", timeout_s=60)``); a caller may override it per call (``timeout_s=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

from tulu.verifiers.timeout import DEFAULT_TIMEOUT_S, VerifierTimeout, WorkerPool, run_with_timeout


@dataclass(frozen=True)
class VerifyResult:
    score: float  # in [0, 1]
    reason: str = ""
    extracted: Any = None  # what was parsed out of the response (answer string, per-instruction list, ...)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")


def copies_prompt(response: str, prompt: str) -> bool:
    """Reward-hack guard: the response (whitespace-squashed, over 20 characters) is a span of the prompt."""
    import re

    def squash(t: str) -> str:
        return re.sub(r"\s+", " ", t).strip()

    r = squash(response)
    return len(r) > 20 and r in squash(prompt)


class Verifier(Protocol):
    def __call__(self, response: str, ground_truth: Any, **kwargs: Any) -> VerifyResult: ...


_REGISTRY: dict[str, Verifier] = {}
_TIMEOUTS: dict[str, float] = {}


def register(name: str, *, timeout_s: float | None = None) -> Callable[[Verifier], Verifier]:
    """Register ``fn`` under ``name``; ``timeout_s`` is its default per-check limit (else DEFAULT_TIMEOUT_S)."""

    def deco(fn: Verifier) -> Verifier:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"verifier {name!r} registered twice")
        _REGISTRY[name] = fn
        if timeout_s is not None:
            _TIMEOUTS[name] = timeout_s
        return fn

    return deco


def get_verifier(name: str) -> Verifier:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown verifier {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def default_timeout(name: str) -> float:
    get_verifier(name)
    return _TIMEOUTS.get(name, DEFAULT_TIMEOUT_S)


def verify(name: str, response: str, ground_truth: Any, *, timeout_s: float | None = None,
           **kwargs: Any) -> VerifyResult:
    """Score one response. The check runs under ``timeout_s`` (default: the verifier's own limit);
    running out of time scores 0 with a ``timeout`` reason instead of raising."""
    fn = get_verifier(name)
    limit = default_timeout(name) if timeout_s is None else timeout_s
    try:
        return run_with_timeout(fn, response, ground_truth, timeout_s=limit, **kwargs)
    except VerifierTimeout as exc:
        return VerifyResult(0.0, f"timeout: {exc}")


def verify_many(name: str, responses: Sequence[str], ground_truths: Sequence[Any], *,
                workers: int = 0, timeout_s: float | None = None, pool: WorkerPool | None = None,
                **kwargs: Any) -> list[VerifyResult]:
    """Score a batch. ``workers=0`` (and no ``pool``): in this process, one check after another, each under
    the soft limit. Otherwise in worker processes with a hard limit too, so that one pathological input
    (a sympy stall inside C code) costs its own time slot and never stalls the batch."""
    if len(responses) != len(ground_truths):
        raise ValueError(f"verify_many: {len(responses)} responses but {len(ground_truths)} ground truths")
    limit = default_timeout(name) if timeout_s is None else timeout_s
    if pool is None and workers <= 0:
        return [verify(name, r, g, timeout_s=limit, **kwargs) for r, g in zip(responses, ground_truths)]
    own = pool is None
    pool = pool or WorkerPool(workers)
    try:
        tasks = [((name, r, g), {"timeout_s": 0, **kwargs}) for r, g in zip(responses, ground_truths)]
        out = pool.map(verify, tasks, limit)
    finally:
        if own:
            pool.close()
    results = []
    for i, res in enumerate(out):
        if res.status == "ok":
            results.append(res.value)
        elif res.status == "timeout":
            results.append(VerifyResult(0.0, f"timeout: {res.error}"))
        else:
            raise RuntimeError(f"verify_many: {name!r} failed on item {i}: {res.error}")
    return results


def _load_builtin() -> None:
    # Importing the modules registers their verifiers. Each module that exists is imported; a module that
    # is missing is simply not registered (the registry then tells the user which names exist).
    import importlib

    for mod in ("gsm8k", "math", "ifeval", "ifbench", "code"):
        try:
            importlib.import_module(f"tulu.verifiers.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"tulu.verifiers.{mod}":
                raise
