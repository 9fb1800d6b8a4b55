"""Small shared helpers: atomic writes, progress bars, seeding, hashing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` (``os.replace``).

    On any exception the temporary file is removed and ``path`` is left untouched, so readers never
    see a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the file the permissions a plain open() would (0666 minus the umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing) for the block."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return Path(path)


def progress_enabled() -> bool:
    """Bars only on an interactive terminal and never under CI (or TULU_PROGRESS=0)."""
    flag = os.environ.get("TULU_PROGRESS")
    if flag is not None:
        return flag not in ("0", "false", "no")
    if os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


class _LoggedProgress:
    """Stands in for a hidden tqdm bar (output to a file, CI): one log line per ~10% of ``total`` with the
    rate and ETA, so long runs still show where they are. Supports what this package uses of tqdm."""

    disable = True

    def __init__(self, iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it",
                 initial: int = 0, **_):
        import logging
        import time

        self.iterable, self.desc, self.unit = iterable, desc or "progress", unit
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n = self._start = initial
        self._t0 = time.perf_counter()
        self._clock = time.perf_counter
        self._next = self._milestone(initial)
        self._log = logging.getLogger("tulu.progress")

    def _milestone(self, n: int) -> int:
        step = max(1, (self.total or 0) // 10)
        return (n // step + 1) * step

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.total and self.n >= self._next:
            self._next = self._milestone(self.n)
            secs = self._clock() - self._t0
            rate = (self.n - self._start) / secs if secs > 0 else 0.0
            eta = (self.total - self.n) / rate if rate > 0 else float("nan")
            self._log.info("%s: %d/%d %s (%.0f%%), %.3g %s/s, ETA %.0fs", self.desc, self.n, self.total, self.unit,
                           100 * self.n / self.total, rate, self.unit, eta)

    def __iter__(self):
        for x in self.iterable:
            yield x
            self.update(1)

    def set_postfix(self, *_, **__) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", log_hidden: bool = True,
             **kwargs):
    """A tqdm bar (rate + ETA) on a terminal. Off a TTY or under CI the bar is hidden and, unless
    ``log_hidden`` is false, a log line every ~10% of a known total takes its place."""
    if not progress_enabled() and log_hidden and (total is not None or hasattr(iterable, "__len__")):
        return _LoggedProgress(iterable, total=total, desc=desc, unit=unit, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not progress_enabled(),
                dynamic_ncols=True, **kwargs)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short sha256 of JSON-serialisable parts (sorted keys), for cache keys."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:length]


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
