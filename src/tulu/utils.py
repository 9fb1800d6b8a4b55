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


def progress(iterable=None, *, total: int | None = None, desc: str = "", unit: str = "it", **kwargs):
    """A tqdm bar (rate + ETA) that goes quiet when output is not a TTY or CI is set."""
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
