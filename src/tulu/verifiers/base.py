"""Verifier contract and registry.

A verifier is a pure function ``(response: str, ground_truth: str | dict | list, **kwargs) -> VerifyResult``
with a score in [0, 1] and a short human-readable reason. The same functions give RLVR rewards and
evaluation metrics, so a bug here poisons both: each one is tested against its reference scorer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class VerifyResult:
    score: float  # in [0, 1]
    reason: str = ""
    extracted: Any = None  # what was parsed out of the response (answer string, per-instruction list, ...)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")


class Verifier(Protocol):
    def __call__(self, response: str, ground_truth: Any, **kwargs: Any) -> VerifyResult: ...


_REGISTRY: dict[str, Verifier] = {}


def register(name: str) -> Callable[[Verifier], Verifier]:
    def deco(fn: Verifier) -> Verifier:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError(f"verifier {name!r} registered twice")
        _REGISTRY[name] = fn
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


def verify(name: str, response: str, ground_truth: Any, **kwargs: Any) -> VerifyResult:
    return get_verifier(name)(response, ground_truth, **kwargs)


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
