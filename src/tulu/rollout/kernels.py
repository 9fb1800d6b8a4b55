"""Build and load the fast backend's compiled CPU decode step (``csrc/decode.cpp``, with the sampling
kernels of ``csrc/sampling.cpp``, the bf16-product matmul of ``csrc/dpbf16.cpp`` (compiled in only where
the CPU has AVX512-BF16) and the helpers of ``csrc/vec.h``, into one library).

The source is compiled once per machine with the system C++ compiler against the installed torch, into
``<tulu cache>/kernels/<key>/``; the key hashes the sources, the torch version, the compiler, the flags
and the CPU's instruction-set flags (the build uses ``-march=native``), so a changed input builds anew
and a cache shared by different machines never loads a binary built for another CPU. The build is
atomic (temporary file + rename) and runs under a file lock, so concurrent processes build it once.

:func:`available` says whether ``torch.ops.tulu.decode_layers`` can be used; when it cannot (no compiler,
a failed build, ``TULU_KERNELS=0``) it logs the reason once and the fast backend runs its Python decode
step instead (same arithmetic, slower). ``python -m tulu.rollout.kernels`` builds it and prints where.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import torch

from tulu.utils import atomic_path, file_lock

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent / "csrc" / "decode.cpp"
SOURCES = (SOURCE, SOURCE.with_name("sampling.cpp"), SOURCE.with_name("dpbf16.cpp"))
HEADERS = (SOURCE.with_name("vec.h"), SOURCE.with_name("dpbf16.h"))
FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-std=c++17", "-w")


class KernelBuildError(RuntimeError):
    """The compiled decode step could not be built; the message carries the compiler's output."""


def _compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _key(cxx: str) -> str:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    h = hashlib.sha256()
    for part in (*(p.read_bytes() for p in SOURCES + HEADERS), torch.__version__.encode(), version.encode(), " ".join(FLAGS).encode(),
                 _cpu_flags().encode(), platform.machine().encode(), sys.version.encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _command(cxx: str, out: Path, flags: tuple[str, ...] = FLAGS) -> list[str]:
    from torch.utils import cpp_extension

    torch_lib = cpp_extension.library_paths()[0]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return [cxx, *flags, f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
            *(f"-I{p}" for p in cpp_extension.include_paths()), *map(str, SOURCES),
            f"-L{torch_lib}", "-lc10", "-ltorch_cpu", f"-Wl,-rpath,{torch_lib}", "-o", str(out)]


def build(force: bool = False) -> Path:
    """Compile the decode step (or find it already built) and return the shared library's path."""
    from tulu.models import cache_dir

    cxx = _compiler()
    if cxx is None:
        raise KernelBuildError("no C++ compiler found (set CXX, or install g++)")
    target = cache_dir() / "kernels" / _key(cxx) / "tulu_decode.so"
    if target.is_file() and not force:
        return target
    with file_lock(target.parent / ".build.lock"):
        if target.is_file() and not force:
            return target  # another process built it while we waited
        log.info("building the compiled decode step (once per machine, ~20 s on 2 cores): %s", target)
        t0 = time.perf_counter()
        with atomic_path(target, suffix=".so") as tmp:
            proc = subprocess.run(_command(cxx, tmp), capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise KernelBuildError(f"{cxx} failed on {SOURCE} (exit {proc.returncode}):\n"
                                       f"{(proc.stderr or proc.stdout)[-4000:]}")
        log.info("built %s in %.0f s", target.name, time.perf_counter() - t0)
    return target


@cache
def available() -> bool:
    """Whether ``torch.ops.tulu.decode_layers`` is loaded (building it on first use)."""
    if os.environ.get("TULU_KERNELS", "1").lower() in ("0", "false", "no", "off"):
        log.info("compiled decode step disabled by TULU_KERNELS=0")
        return False
    try:
        torch.ops.load_library(str(build()))
    except (KernelBuildError, OSError, RuntimeError) as exc:
        log.warning("compiled decode step not available, using the Python decode step (slower): %s", exc)
        return False
    return True


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = build(force="--force" in sys.argv)
    torch.ops.load_library(str(path))
    print(path)
