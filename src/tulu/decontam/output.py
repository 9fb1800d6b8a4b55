"""Filtered training data: only the matching instances removed, or whole flagged datasets dropped.

Writes are atomic (temporary file beside the target, then ``os.replace``) and keep the original order.
A plain JSONL input is copied line for line (bytes unchanged); other formats are written as JSONL of the
records as they were read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from tulu.data.formats import read_records
from tulu.decontam.scan import ScanResult
from tulu.utils import atomic_path

Mode = Literal["remove", "drop", "drop+remove", "none"]
MODES = ("remove", "drop", "drop+remove", "none")


def plan_removals(scan: ScanResult, report: dict, mode: Mode) -> list[dict]:
    """Per source: whether it is dropped and which record indices are removed."""
    plans = []
    for si, d in enumerate(report["datasets"]):
        dropped = mode in ("drop", "drop+remove") and d["flagged"]
        removed = scan.removed(si) if mode in ("remove", "drop+remove") and not dropped else set()
        plans.append({"name": d["name"], "dropped": dropped, "removed": sorted(removed)})
    return plans


def write_filtered(scan: ScanResult, report: dict, out_dir: str | Path, mode: Mode) -> list[dict]:
    """Write ``out_dir/<dataset>.jsonl`` for every dataset not dropped; return a summary per dataset."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    out_dir = Path(out_dir)
    summary = []
    for si, plan in enumerate(plan_removals(scan, report, mode)):
        src = scan.sources[si]
        entry = {"name": plan["name"], "dropped": plan["dropped"], "removed": len(plan["removed"]),
                 "kept": 0, "path": None}
        if mode != "none" and not plan["dropped"]:
            target = out_dir / f"{plan['name']}.jsonl"
            entry["kept"] = _copy_without(Path(src.path), target, set(plan["removed"]))
            entry["path"] = str(target)
        summary.append(entry)
    return summary


def _copy_without(src: Path, target: Path, removed: set[int]) -> int:
    kept = 0
    with atomic_path(target) as tmp, open(tmp, "wb") as out:
        if src.is_file() and src.suffix in (".jsonl", ".ndjson"):
            rec = 0
            with open(src, "rb") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    if rec not in removed:
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                        kept += 1
                    rec += 1
        else:
            for rec, (_, raw) in enumerate(read_records(src)):
                if rec not in removed:
                    out.write((json.dumps(raw, ensure_ascii=False, default=str) + "\n").encode())
                    kept += 1
    return kept
