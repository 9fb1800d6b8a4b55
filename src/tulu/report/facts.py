"""Run facts: the code (git commit), the library versions, the hardware and the seed a run used, and the time
each pipeline stage took. ``collect()`` is cheap (no torch import unless torch is already loaded); the
pipeline writes it to ``<run>/run_facts.json`` when it starts, and the report reads that file back (or
collects the facts at report time for a folder that has none, and says so)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PACKAGES = ("tulu", "torch", "transformers", "accelerate", "peft", "trl", "datasets", "numpy", "matplotlib",
            "vllm", "ray")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "fma", "neon", "asimd")


def git_commit(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The commit of the source tree ``path`` (default: this package's), and whether it had local changes."""
    where = Path(path) if path else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty) if commit else None}


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """CPU model, the SIMD flags that matter for the kernels, and the cores this process may use."""
    text = cpuinfo
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and val.strip():
            model = val.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(val.split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 1
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags], "cores": usable,
            "machine": platform.machine(), "system": f"{platform.system()} {platform.release()}"}


def accelerators() -> list[str]:
    """GPU names when torch is already imported and sees any (the report never imports torch for this)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return []
    try:
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken CUDA setup must not break a report
        return []


def collect(seed: int | None = None) -> dict[str, Any]:
    torch = sys.modules.get("torch")
    return {"collected": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "git": git_commit(), "versions": versions(),
            "cpu": cpu_info(), "accelerators": accelerators(),
            "threads": torch.get_num_threads() if torch is not None else None,
            "env_threads": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
            "seed": seed, "argv": sys.argv[1:]}


def read_run_facts(run: Path) -> dict[str, Any]:
    """The facts of a pipeline run folder: ``run_facts.json`` when the run wrote one (else collected now,
    marked ``at_report_time``), the seeds of its recipe and the seconds of every finished stage."""
    path = run / "run_facts.json"
    facts = json.loads(path.read_text()) if path.is_file() else {**collect(), "at_report_time": True}
    cfg_path = run / "pipeline_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    seeds = {"data": cfg.get("seed")}
    for stage in ("sft", "dpo", "rlvr"):
        seed = ((cfg.get(stage) or {}).get("train") or {}).get("seed")
        if seed is not None:
            seeds[stage] = seed
    facts["seeds"] = {k: v for k, v in seeds.items() if v is not None}
    facts["base_model"] = cfg.get("base_model")
    stages = {}
    for stage in ("data", "decontam", "sft", "dpo", "rlvr", "eval", "report"):
        done = run / stage / "DONE.json"
        if done.is_file():
            stages[stage] = json.loads(done.read_text()).get("seconds")
    facts["stage_seconds"] = stages
    return facts


def facts_rows(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) rows for the report's run-facts table."""
    git = facts.get("git") or {}
    commit = git.get("commit") or "unknown"
    if git.get("dirty"):
        commit += " (with uncommitted changes)"
    cpu = facts.get("cpu") or {}
    rows = [("git commit", commit), ("base model", str(facts.get("base_model") or "")),
            ("seeds", ", ".join(f"{k} {v}" for k, v in (facts.get("seeds") or {}).items()) or str(facts.get("seed"))),
            ("CPU", f"{cpu.get('model', '?')} ({cpu.get('cores', '?')} usable cores; "
                    f"flags: {', '.join(cpu.get('flags') or []) or 'none of interest'})"),
            ("torch threads", str(facts.get("threads"))),
            ("accelerators", ", ".join(facts.get("accelerators") or []) or "none (CPU only)"),
            ("system", f"{cpu.get('system', '?')} {cpu.get('machine', '')}"),
            ("versions", ", ".join(f"{k} {v}" for k, v in (facts.get("versions") or {}).items())),
            ("facts collected", facts.get("collected", "?") + (" (at report time: the run wrote no run_facts.json)"
                                                                 if facts.get("at_report_time") else ""))]
    secs = facts.get("stage_seconds") or {}
    if secs:
        total = sum(v for v in secs.values() if v)
        rows.append(("time per stage", ", ".join(f"{k} {_fmt_s(v)}" for k, v in secs.items() if v is not None)
                     + f"; total {_fmt_s(total)}"))
    return rows


def _fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"
