"""Module-level (picklable) functions for the timeout tests; they run inside worker processes."""

from __future__ import annotations

import os
import signal
import time


def busy(seconds: float) -> str:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "done"


def swallowing_loop(seconds: float) -> str:
    """Catches everything it can (like sloppy library code) and keeps going."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sum(range(1000))
        except Exception:  # noqa: BLE001 - the point of the test
            pass
    return "done"


def c_level_stall(seconds: float) -> str:
    """Simulates a long C call that never returns to the interpreter: SIGALRM is blocked."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    return busy(seconds)


def add(a: int, b: int = 0) -> int:
    return a + b


def boom(msg: str) -> None:
    raise ValueError(msg)


def die() -> None:
    os._exit(3)
