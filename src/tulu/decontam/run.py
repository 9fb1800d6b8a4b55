"""One call that does the whole job: index the eval side, scan the training side, report, filter."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from tulu.data.formats import DataError
from tulu.decontam.evalsets import EVAL_FIELDS, EvalInstance, load_benchmarks, load_eval_file
from tulu.decontam.ngrams import build_index
from tulu.decontam.output import MODES, write_filtered
from tulu.decontam.report import ReportSettings, build_report, to_html, to_markdown
from tulu.decontam.scan import ROLES, CHUNK_BYTES, Settings, TrainSource, scan
from tulu.utils import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class DecontamOptions:
    train: list[TrainSource]
    benchmarks: list[str] | None = None  # None: every benchmark that loads here
    eval_files: list[tuple[str, Path]] = field(default_factory=list)
    train_fields: tuple[str, ...] = ("user",)
    eval_fields: tuple[str, ...] = ("prompt",)
    ngram: int = 8
    threshold: float = 0.5
    flag_threshold: float = 0.02
    mode: str = "remove"
    output_dir: Path | None = None
    workers: int | None = None
    engine: str = "local"  # local | ray
    ray_address: str | None = None
    examples: int = 3
    chunk_bytes: int = CHUNK_BYTES


def parse_source(spec: str) -> TrainSource:
    """``NAME=PATH`` or ``PATH`` (the name is then the file name without its extensions)."""
    if "=" in spec and not Path(spec).exists():
        name, path = spec.split("=", 1)
    else:
        path = spec
        name = Path(spec.rstrip("/")).name.split(".")[0]
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise DataError(f"{spec}: dataset name {name!r} may only use letters, digits and . _ + -")
    return TrainSource(name, Path(path))


def check_options(opts: DecontamOptions) -> None:
    if not opts.train:
        raise DataError("no training data given")
    names = [s.name for s in opts.train]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise DataError(f"training dataset names must be unique; repeated: {', '.join(sorted(dup))} (use NAME=PATH)")
    bad = [f for f in opts.train_fields if f not in ROLES]
    if bad or not opts.train_fields:
        raise DataError(f"--train-fields: unknown {bad or 'empty'}; choose from {', '.join(ROLES)}")
    bad = [f for f in opts.eval_fields if f not in EVAL_FIELDS]
    if bad or not opts.eval_fields:
        raise DataError(f"--eval-fields: unknown {bad or 'empty'}; choose from {', '.join(EVAL_FIELDS)}")
    if opts.ngram < 1:
        raise DataError(f"--ngram: must be >= 1, got {opts.ngram}")
    if not 0 <= opts.threshold < 1 or not 0 <= opts.flag_threshold < 1:
        raise DataError("--threshold and --flag-threshold must be in [0, 1)")
    if opts.mode not in MODES:
        raise DataError(f"--mode: must be one of {', '.join(MODES)}")
    if opts.engine not in ("local", "ray"):
        raise DataError(f"--engine: must be local or ray, got {opts.engine!r}")


def load_eval_side(opts: DecontamOptions) -> tuple[list[EvalInstance], dict[str, str]]:
    evals: list[EvalInstance] = []
    skipped: dict[str, str] = {}
    if opts.benchmarks is None or opts.benchmarks:
        evals, skipped = load_benchmarks(opts.benchmarks)
    for name, path in opts.eval_files:
        evals += load_eval_file(name, path)
    if not evals:
        raise DataError("the eval side is empty: no benchmark could be loaded and no --eval-file was given")
    return evals, skipped


def decontaminate(opts: DecontamOptions) -> tuple[dict, dict]:
    """Run the job; returns ``(report, timings)``. Writes report.{json,md,html} and the filtered data
    under ``opts.output_dir`` when it is set."""
    check_options(opts)
    t0 = time.perf_counter()
    evals, skipped = load_eval_side(opts)
    index = build_index([e.segments(opts.eval_fields) for e in evals], opts.ngram)
    t1 = time.perf_counter()
    log.info("decontam: indexed %d eval instances, %d distinct %d-grams (%.1fs)",
             len(evals), len(index.gram_hash), opts.ngram, t1 - t0)
    settings = Settings(tuple(opts.train_fields), opts.threshold)
    if opts.engine == "ray":
        from tulu.decontam.distributed import scan_ray

        try:
            import ray  # noqa: F401
        except ImportError:
            raise DataError("--engine ray needs Ray: pip install 'tulu[dist]'") from None
        result = scan_ray(index, opts.train, settings, opts.workers, opts.chunk_bytes, opts.ray_address)
    else:
        result = scan(index, opts.train, settings, opts.workers, opts.chunk_bytes)
    t2 = time.perf_counter()
    n_train = sum(result.n_records)
    log.info("decontam: scanned %d training instances in %.1fs (%.0f/s)", n_train, t2 - t1,
             n_train / max(t2 - t1, 1e-9))
    rs = ReportSettings(opts.ngram, opts.threshold, opts.flag_threshold, tuple(opts.train_fields),
                        tuple(opts.eval_fields), opts.examples)
    report = build_report(result, evals, index.eval_ntok.tolist(), rs, skipped)
    if opts.output_dir is not None:
        out = Path(opts.output_dir)
        if opts.mode != "none":
            written = write_filtered(result, report, out / "data", opts.mode)
            for d in written:  # relative to the report, so reports of identical runs are identical
                d["path"] = d["path"] and str(Path(d["path"]).relative_to(out))
            report["output"] = {"mode": opts.mode, "datasets": written}
        atomic_write_json(out / "report.json", report)
        atomic_write_text(out / "report.md", to_markdown(report))
        atomic_write_text(out / "report.html", to_html(report))
    timings = {"index_s": t1 - t0, "scan_s": t2 - t1, "train_instances": n_train,
               "instances_per_s": n_train / max(t2 - t1, 1e-9)}
    return report, timings


def summary_lines(report: dict) -> Sequence[str]:
    lines = []
    for d in report["datasets"]:
        hits = [f"{b} {r['hit']}/{r['total']} ({r['percent']:.1f}%)" for b, r in d["benchmarks"].items() if r["hit"]]
        status = f"FLAGGED by {', '.join(d['flagged_by'])}" if d["flagged"] else "clean" if not hits else "not flagged"
        lines.append(f"{d['name']}: {d['instances']} instances, {d['contaminating_instances']} contaminating; "
                     f"{status}" + (f"; hits: {'; '.join(hits)}" if hits else ""))
    return lines
