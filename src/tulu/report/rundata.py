"""Reading a run's outputs from disk for the report: the eval outputs of every stage (``results.json`` and the
per-item ``generations/<task>.jsonl``), each training stage's ``metrics.jsonl`` / ``summary.json``, the
decontamination report and the run facts. Only files are read: nothing here imports torch or the trainers.

A *run* is either a pipeline folder (``tulu pipeline`` output: ``eval/<stage>/results.json``, ``sft/``, ``dpo/``,
``rlvr/``, ``decontam/``) or a list of eval output folders given in stage order (``tulu eval --output DIR``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tulu.report.tables import load_results

STAGE_ORDER = ("base", "sft", "dpo", "rlvr")
TRAINED = ("sft", "dpo", "rlvr")


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSONL file; a bad line is an error naming the file and line."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{i}: not valid JSON ({exc.msg})") from None
    return out


@dataclass
class EvalOutput:
    """One model's eval output folder."""

    stage: str
    path: Path  # the folder holding results.json
    results: dict[str, Any]
    _gens: dict[str, dict[str, dict]] = field(default_factory=dict, repr=False)

    def generations(self, task: str) -> dict[str, dict]:
        """``id -> record`` of ``generations/<task>.jsonl`` (empty when the file is absent)."""
        if task not in self._gens:
            path = self.path / "generations" / f"{task}.jsonl"
            recs = read_jsonl(path) if path.is_file() else []
            for i, r in enumerate(recs, 1):
                if "id" not in r or "scores" not in r:
                    raise ValueError(f"{path}:{i}: record without 'id' or 'scores'")
            self._gens[task] = {str(r["id"]): r for r in recs}
        return self._gens[task]

    def item_scores(self, task: str, metric: str) -> dict[str, float]:
        """Per-item values of ``metric`` (0..1) from the generations file."""
        return {i: float(r["scores"][metric]) for i, r in self.generations(task).items()
                if isinstance(r.get("scores"), dict) and metric in r["scores"]}


@dataclass
class RunData:
    label: str
    root: Path | None  # the pipeline folder (None for a list of eval folders)
    evals: list[EvalOutput]
    histories: dict[str, list[dict]] = field(default_factory=dict)  # stage -> metrics.jsonl records
    summaries: dict[str, dict] = field(default_factory=dict)  # stage -> summary.json
    done: dict[str, dict] = field(default_factory=dict)  # pipeline stage -> DONE.json
    decontam: dict | None = None  # decontam/report.json
    facts: dict | None = None

    @property
    def stages(self) -> list[str]:
        return [e.stage for e in self.evals]


def _eval_folder(path: Path) -> Path:
    return path.parent if path.is_file() else path


def is_pipeline_run(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "pipeline_config.json").is_file() or (p / "eval").is_dir())


def load_pipeline_run(path: str | os.PathLike, label: str | None = None) -> RunData:
    """Everything the report reads from a ``tulu pipeline`` output folder."""
    from tulu.report.facts import read_run_facts

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such run folder")
    evals = []
    ev_root = root / "eval"
    names = [p.name for p in ev_root.iterdir() if (p / "results.json").is_file()] if ev_root.is_dir() else []
    for stage in sorted(names, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else 99, s)):
        evals.append(EvalOutput(stage, ev_root / stage, load_results(ev_root / stage)))
    run = RunData(label or root.name, root, evals)
    for stage in ("data", "decontam", *TRAINED, "eval", "report"):
        done = root / stage / "DONE.json"
        if done.is_file():
            run.done[stage] = json.loads(done.read_text())
    for stage in TRAINED:
        metrics = root / stage / "metrics.jsonl"
        if metrics.is_file():
            run.histories[stage] = read_jsonl(metrics)
        summary = root / stage / "summary.json"
        if summary.is_file():
            run.summaries[stage] = json.loads(summary.read_text())
    dec = root / "decontam" / "report.json"
    if dec.is_file():
        run.decontam = json.loads(dec.read_text())
    run.facts = read_run_facts(root)
    return run


def load_eval_list(paths: list[str | os.PathLike], labels: list[str] | None = None,
                   label: str = "evaluation") -> RunData:
    """Eval output folders (or results.json files) in stage order, as one run (the old `tulu report` input)."""
    evals = []
    for i, p in enumerate(paths):
        folder = _eval_folder(Path(p))
        stage = labels[i] if labels else folder.name
        evals.append(EvalOutput(stage, folder, load_results(p)))
    return RunData(label, None, evals)


def load_runs(paths: list[str | os.PathLike], labels: list[str] | None = None) -> list[RunData]:
    """Pipeline folders -> one run each (side by side); eval folders -> one run whose stages they are."""
    kinds = [is_pipeline_run(p) for p in paths]
    if all(kinds):
        if labels and len(labels) != len(paths):
            raise ValueError(f"--labels has {len(labels)} labels for {len(paths)} runs")
        names = labels or _unique_names(paths)
        return [load_pipeline_run(p, n) for p, n in zip(paths, names)]
    if any(kinds):
        bad = [str(p) for p, k in zip(paths, kinds) if k]
        raise ValueError(f"mixed inputs: {', '.join(bad)} are pipeline runs, the others eval folders; "
                         "give either pipeline run folders or eval output folders")
    if labels and len(labels) != len(paths):
        raise ValueError(f"--labels has {len(labels)} labels for {len(paths)} runs")
    return [load_eval_list(paths, labels)]


def _unique_names(paths) -> list[str]:
    names = [Path(p).resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]
