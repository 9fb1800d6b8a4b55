"""Time limits for verifier checks.

API (every verifier and every caller of a verifier goes through this module)
---------------------------------------------------------------------------
``DEFAULT_TIMEOUT_S``
    Per-check limit used by ``tulu.verifiers.verify`` when neither the caller nor the verifier's
    registration names one (5 s).

``VerifierTimeout``
    Raised when a check runs out of time. It derives from ``BaseException`` (like
    ``KeyboardInterrupt``) on purpose: library code full of ``except Exception:`` (sympy, math-verify,
    a verifier's own fallbacks) must not swallow it and carry on computing. ``verify()`` turns it into
    a score-0 result, so it never escapes the public entry point.

``time_limit(seconds)``  (context manager)
    Soft, in-process limit. In the main thread it arms ``SIGALRM`` through ``setitimer`` and raises
    ``VerifierTimeout`` inside the block when time is up; if something swallows the exception anyway,
    it is raised again every 50 ms until the block exits. Nesting is safe: an inner limit never extends
    an outer one and the outer timer is re-armed on exit. It cannot interrupt a single long C call
    (a huge integer power, a regex with catastrophic backtracking): for that, use ``WorkerPool``.
    Outside the main thread signals are unavailable; ``time_limit`` then raises ``RuntimeError``
    (use ``run_with_timeout``, which falls back to a worker process).

``run_with_timeout(fn, *args, timeout_s, **kwargs)``
    ``fn(*args, **kwargs)`` under ``time_limit`` in the main thread; from any other thread the call is
    shipped to a shared ``WorkerPool`` (hard limit). ``fn`` and its arguments must then be picklable
    (module-level functions are).

``WorkerPool(workers)``  (hard limit; also the batch path)
    Persistent worker processes (``forkserver`` start, so it is safe from threaded parents). Each task
    runs under ``time_limit`` inside its worker; the parent also holds a hard deadline (limit + grace)
    and kills and replaces a worker that misses it, so one pathological input never stalls a batch.
    ``pool.map(fn, [(args, kwargs), ...], timeout_s)`` returns one ``TaskResult`` per task, in order,
    with ``status`` in {"ok", "timeout", "error"}.

Nothing here knows about verifiers: the registry (``base.verify``/``verify_many``) is built on top.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Sequence

DEFAULT_TIMEOUT_S = 5.0
_REFIRE_S = 0.05  # re-raise period after the deadline, in case the first exception was swallowed
_HARD_GRACE_S = 1.0  # a worker gets this much on top of the soft limit before the parent kills it


class VerifierTimeout(BaseException):
    """A verifier check exceeded its time limit."""


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@dataclass
class _Alarm:
    active: bool = False
    seconds: float = 0.0


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise ``VerifierTimeout`` inside the block once ``seconds`` have passed (main thread only)."""
    if seconds is None or seconds <= 0:
        yield
        return
    if not _in_main_thread():
        raise RuntimeError("time_limit() needs the main thread (SIGALRM); use run_with_timeout() instead")
    state = _Alarm(active=True, seconds=seconds)

    def _handler(signum: int, frame: Any) -> None:
        if state.active:
            raise VerifierTimeout(f"check exceeded {state.seconds:g}s")

    start = time.monotonic()
    prev_handler = signal.signal(signal.SIGALRM, _handler)
    prev_delay, prev_interval = signal.getitimer(signal.ITIMER_REAL)
    delay = seconds if prev_delay <= 0 else min(seconds, prev_delay)
    signal.setitimer(signal.ITIMER_REAL, delay, _REFIRE_S)
    try:
        yield
    finally:
        # Disarm first. A late signal may still land between the statements below; retry until clean.
        while True:
            try:
                state.active = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                break
            except VerifierTimeout:
                continue
        signal.signal(signal.SIGALRM, prev_handler)
        if prev_delay > 0:
            left = prev_delay - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), prev_interval)


@dataclass(frozen=True)
class TaskResult:
    status: str  # "ok" | "timeout" | "error"
    value: Any = None  # fn's return value when status == "ok"
    error: str = ""  # message for "timeout"/"error"
    seconds: float = 0.0


def _worker_main(conn: Connection) -> None:
    # Runs in the child. Ctrl-C belongs to the parent; the child just stops when the pipe closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        fn, args, kwargs, timeout_s = msg
        t0 = time.monotonic()
        try:
            with time_limit(timeout_s):
                value = fn(*args, **kwargs)
            out = TaskResult("ok", value, "", time.monotonic() - t0)
        except VerifierTimeout as exc:
            out = TaskResult("timeout", None, str(exc), time.monotonic() - t0)
        except Exception as exc:  # noqa: BLE001 - reported back to the parent, never swallowed silently
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out = TaskResult("error", None, tb, time.monotonic() - t0)
        try:
            conn.send(out)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable return value
            conn.send(TaskResult("error", None, f"cannot send result back: {exc!r}", time.monotonic() - t0))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.task: int | None = None
        self.deadline = 0.0
        self.started = 0.0

    def kill(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class WorkerPool:
    """Persistent processes that run checks with a soft (signal) and a hard (kill) time limit."""

    def __init__(self, workers: int | None = None, *, start_method: str = "forkserver",
                 preload: Sequence[str] = ("tulu.verifiers.base",)) -> None:
        self.n = max(1, workers or min(2, os.cpu_count() or 1))
        self._ctx = mp.get_context(start_method)
        if start_method == "forkserver" and preload:
            self._ctx.set_forkserver_preload(list(preload))
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def _ensure(self) -> None:
        self._workers = [w for w in self._workers if w.proc.is_alive()]
        while len(self._workers) < self.n:
            self._workers.append(_Worker(self._ctx))

    def map(self, fn: Callable[..., Any], tasks: Sequence[tuple[tuple, dict]],
            timeout_s: float | None = DEFAULT_TIMEOUT_S) -> list[TaskResult]:
        """Run ``fn(*args, **kwargs)`` for each ``(args, kwargs)``; results come back in input order."""
        with self._lock:
            return self._map(fn, tasks, timeout_s)

    def _map(self, fn: Callable[..., Any], tasks: Sequence[tuple[tuple, dict]],
             timeout_s: float | None) -> list[TaskResult]:
        results: list[TaskResult | None] = [None] * len(tasks)
        todo = list(range(len(tasks)))[::-1]
        hard = None if timeout_s is None or timeout_s <= 0 else timeout_s + _HARD_GRACE_S
        self._ensure()
        busy: dict[Connection, _Worker] = {}
        while todo or busy:
            for w in self._workers:
                if w.task is None and todo and w.proc.is_alive():
                    i = todo.pop()
                    args, kwargs = tasks[i]
                    w.task, w.started = i, time.monotonic()
                    w.deadline = w.started + hard if hard else float("inf")
                    w.conn.send((fn, tuple(args), dict(kwargs), timeout_s))
                    busy[w.conn] = w
            now = time.monotonic()
            wait_s = min((w.deadline for w in busy.values()), default=now) - now
            ready = wait(list(busy), timeout=None if wait_s == float("inf") else max(wait_s, 0.0))
            for conn in ready:
                w = busy.pop(conn)  # type: ignore[arg-type]
                assert w.task is not None
                try:
                    results[w.task] = conn.recv()  # type: ignore[union-attr]
                    w.task = None
                except (EOFError, OSError):  # the worker died (segfault, os._exit, OOM kill)
                    results[w.task] = TaskResult("error", None, f"worker died (exit {w.proc.exitcode})",
                                                 time.monotonic() - w.started)
                    self._replace(w)
            now = time.monotonic()
            for conn, w in list(busy.items()):
                if now >= w.deadline:
                    busy.pop(conn)
                    assert w.task is not None
                    results[w.task] = TaskResult("timeout", None, f"hard limit {hard:g}s: worker killed",
                                                 now - w.started)
                    self._replace(w)
        return [r if r is not None else TaskResult("error", None, "lost task") for r in results]

    def _replace(self, w: _Worker) -> None:
        w.kill()
        w.task = None
        idx = self._workers.index(w)
        self._workers[idx] = _Worker(self._ctx)

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        for w in self._workers:
            w.proc.join(timeout=2)
            w.kill()
        self._workers = []

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_shared_pool: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The lazily started pool that ``run_with_timeout`` uses off the main thread."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = WorkerPool()
        return _shared_pool


def run_with_timeout(fn: Callable[..., Any], /, *args: Any, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                     **kwargs: Any) -> Any:
    """Call ``fn`` with a time limit; raise ``VerifierTimeout`` when it is exceeded."""
    if timeout_s is None or timeout_s <= 0:
        return fn(*args, **kwargs)
    if _in_main_thread():
        with time_limit(timeout_s):
            return fn(*args, **kwargs)
    (res,) = shared_pool().map(fn, [(args, kwargs)], timeout_s)
    if res.status == "ok":
        return res.value
    if res.status == "timeout":
        raise VerifierTimeout(res.error)
    raise RuntimeError(f"check failed in worker process: {res.error}")
