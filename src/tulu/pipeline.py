"""`tulu pipeline RECIPE`: the whole recipe from one YAML file.

Stages, in order (each writes into ``<output_dir>/<stage>/`` and a ``DONE.json`` marker; a re-run skips
finished stages, so an interrupted pipeline resumes where it stopped):

1. ``data``      materialise the SFT and preference mixtures as JSONL;
2. ``decontam``  8-gram decontamination of both against every eval benchmark that loads here, removing
                 the matching training instances (Tulu 3 §6 rules);
3. ``sft``       supervised finetuning of the base model on the filtered SFT data;
4. ``dpo``       preference tuning of the SFT model on the filtered pairs;
5. ``rlvr``      RL with verifiable rewards from the DPO model, on the filtered RLVR prompts;
6. ``eval``      the same tasks on the base model and every stage's model;
7. ``report``    the run report (report.html, self-contained; report.md; report.json): eval tables with
                 paired significance, training curves, contamination, samples, run facts (docs/report.md).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from tulu.config import option, to_dict
from tulu.train.dpo import DPOConfig
from tulu.train.rlvr import RLVRConfig
from tulu.train.sft import SFTConfig
from tulu.utils import atomic_write_json, atomic_write_jsonl, atomic_write_text

log = logging.getLogger(__name__)


def summary_history(run_dir: Path) -> list[dict]:
    """The metrics log of a training stage (one record per logged step)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]

Stage = Literal["data", "decontam", "sft", "dpo", "rlvr", "eval", "report"]
ALL_STAGES: tuple[Stage, ...] = ("data", "decontam", "sft", "dpo", "rlvr", "eval", "report")
TRAINED: tuple[str, ...] = ("sft", "dpo", "rlvr")


@dataclass
class DecontamStageConfig:
    benchmarks: list[str] = option(default_factory=list, help="Benchmarks to index (empty: every one that loads "
                                                               "offline; hub-only ones are listed as skipped).")
    mode: Literal["remove", "drop", "drop+remove", "none"] = option(
        "remove", "remove: drop only the matching training instances; drop: drop a flagged dataset whole; "
                  "none: report only (Tulu 3 removed matches; see docs/decontam.md).")
    workers: int = option(0, "Worker processes for the training-side scan (0: one per core).")


EVAL_DTYPES = ("auto", "float32", "fp32", "bfloat16", "bf16", "float16", "fp16")


@dataclass
class EvalStageConfig:
    tasks: list[str] = option(default_factory=lambda: ["gsm8k", "ifeval"],
                              help="Tasks to run on each stage's model (see `tulu eval --list`).")
    limit: int = option(20, "First N items of each task (0: all). The CPU demo keeps this small.")
    task_limits: dict[str, int] = option(default_factory=dict,
                                         help="Per-task item counts that override `limit` (0: every item), e.g. "
                                              "{gsm8k: 300} to run a long task on a sample and the rest in full.")
    models: list[Literal["base", "sft", "dpo", "rlvr"]] = option(
        default_factory=lambda: ["base", "sft", "dpo", "rlvr"],
        help="Which stages' models to evaluate (a stage that did not run is skipped).")
    backend: str = option("auto", "Generation backend: auto (vllm on GPU, else fast), fast, hf, vllm.")
    batch_size: int = option(8, "Prompts per generate call.")
    dtype: str = option("auto", "float32 | bfloat16 | auto, as `tulu eval --dtype`: on CPU the fast backend's weight "
                                "precision (auto: bf16 only where a cached per-machine measurement finds it faster; "
                                "results.json records the choice), elsewhere the model's dtype.")
    max_new_tokens: int = option(0, "Cap every task's generation length (0: the task's own setting). A CPU "
                                    "shortcut that changes scores; the report says when it was used.")


@dataclass
class PipelineConfig:
    output_dir: str = option("runs/pipeline", "Run folder; every stage writes a subfolder.")
    base_model: str = option("embedded", "Starting model: 'embedded' (SmolLM2-135M-Instruct), a folder or hub id "
                                         "(Tulu 3: Llama-3.1-8B).")
    stages: list[Stage] = option(default_factory=lambda: list(ALL_STAGES), help="Stages to run, in pipeline order.")
    seed: int = option(123, "Seed for data sampling (the trainers take theirs from sft.train.seed / dpo.train.seed).")
    sft_mixture: dict[str, float] = option(default_factory=lambda: {"synthetic:math": 300, "synthetic:constraints": 300},
                                           help="SFT mixture: source -> fraction (<= 1) or count (> 1); files from "
                                                "`tulu data persona --respond` work as sources ({}: none).")
    dpo_mixture: dict[str, float] = option(default_factory=lambda: {"synthetic:math": 200, "synthetic:constraints": 200},
                                           help="Preference mixture: source -> fraction or count; pairs.jsonl from "
                                                "`tulu data prefs` / `ifpairs` work as sources ({}: none).")
    decontam: DecontamStageConfig = option(default_factory=DecontamStageConfig, help="Decontamination stage.")
    sft: SFTConfig = option(default_factory=SFTConfig, help="SFT stage (model, data.mixture and output_dir are set "
                                                            "by the pipeline).")
    dpo: DPOConfig = option(default_factory=DPOConfig, help="DPO stage (model, data.mixture and output_dir are set "
                                                            "by the pipeline).")
    rlvr: RLVRConfig = option(default_factory=RLVRConfig, help="RLVR stage (model.path and output_dir are set by the "
                                                               "pipeline; its data.prompts are materialised and "
                                                               "decontaminated like the other training data).")
    eval: EvalStageConfig = option(default_factory=EvalStageConfig, help="Evaluation stage.")

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in ALL_STAGES]
        if unknown:
            raise ValueError(f"stages: unknown stage {unknown[0]!r} (known: {', '.join(ALL_STAGES)})")
        stray = sorted(set(self.eval.task_limits) - set(self.eval.tasks))
        if stray:  # caught before hours of training, not at the eval stage
            raise ValueError(f"eval.task_limits: {', '.join(stray)} not in eval.tasks ({', '.join(self.eval.tasks)})")
        if str(self.eval.dtype).lower() not in EVAL_DTYPES:
            raise ValueError(f"eval.dtype: {self.eval.dtype!r} is not one of {', '.join(EVAL_DTYPES)}")
        negative = sorted(t for t, n in self.eval.task_limits.items() if n < 0)
        if negative:
            raise ValueError(f"eval.task_limits: {negative[0]}: a count must be >= 0 (0: every item)")


CONFIG = PipelineConfig


class Pipeline:
    def __init__(self, cfg: PipelineConfig):
        self.cfg = cfg
        self.root = Path(cfg.output_dir)
        self.summary: dict = {}

    # ------------------------------------------------------------------ helpers
    def _done(self, stage: str) -> dict | None:
        marker = self.root / stage / "DONE.json"
        return json.loads(marker.read_text()) if marker.is_file() else None

    def _finish(self, stage: str, info: dict) -> dict:
        atomic_write_json(self.root / stage / "DONE.json", info)
        return info

    def _banner(self, i: int, n: int, stage: str, text: str) -> None:
        print(f"\n=== [{i}/{n}] {stage}: {text}", flush=True)

    def model_path(self, which: str) -> str:
        return self.cfg.base_model if which == "base" else str(self.root / which / "model")

    # ------------------------------------------------------------------ stages
    def data(self) -> dict:
        from tulu.data.mixing import build_mixture

        out = {}
        for name, mixture, kind in (("sft", self.cfg.sft_mixture, "sft"), ("prefs", self.cfg.dpo_mixture, "preference")):
            if not mixture:  # e.g. a DPO-only recipe on `tulu data prefs` pairs: sft_mixture: {}
                continue
            mix = build_mixture(mixture, kind=kind, seed=self.cfg.seed)
            path = atomic_write_jsonl(self.root / "data" / f"{name}.jsonl", mix.records)
            out[name] = {"path": str(path), "records": len(mix.records), "counts": mix.counts}
            print(f"{name}: {len(mix.records)} records ({', '.join(f'{k}: {v}' for k, v in mix.counts.items())})")
        if "rlvr" in self.cfg.stages:
            from tulu.data.rlvr import load_rlvr_prompts

            prompts = load_rlvr_prompts(self.cfg.rlvr.data.prompts, self.cfg.seed, "train")
            path = atomic_write_jsonl(self.root / "data" / "rlvr.jsonl", prompts)
            out["rlvr"] = {"path": str(path), "records": len(prompts)}
            print(f"rlvr: {len(prompts)} prompts ({', '.join(self.cfg.rlvr.data.prompts)})")
        return out

    def decontam(self) -> dict:
        from tulu.decontam.run import DecontamOptions, decontaminate, parse_source, summary_lines

        d = self.cfg.decontam
        data = self.root / "data"
        sources = [parse_source(f"{n}={data / f'{n}.jsonl'}") for n in ("sft", "prefs", "rlvr")
                   if (data / f"{n}.jsonl").is_file()]
        opts = DecontamOptions(train=sources,
                               benchmarks=d.benchmarks or None, mode=d.mode, output_dir=self.root / "decontam",
                               workers=d.workers or None)
        report, timings = decontaminate(opts)
        for line in summary_lines(report):
            print(line)
        files = {}
        for ds in report.get("output", {}).get("datasets", []):
            if ds.get("path"):
                files[ds["name"]] = str(self.root / "decontam" / ds["path"])
        return {"files": files, "summary": list(summary_lines(report)), "report": str(self.root / "decontam" / "report.html"),
                "instances_per_s": timings["instances_per_s"]}

    def _train_file(self, name: str) -> str:
        dec = self._done("decontam")
        if dec is not None and name in dec["files"]:
            return dec["files"][name]
        if dec is not None:
            raise RuntimeError(f"decontam dropped the whole {name} dataset (flagged); nothing left to train on")
        return str(self.root / "data" / f"{name}.jsonl")

    def sft(self) -> dict:
        from tulu.train import sft

        cfg = self.cfg.sft
        cfg = replace(cfg, output_dir=str(self.root / "sft"),
                      model=replace(cfg.model, path=self.cfg.base_model),
                      data=replace(cfg.data, mixture={self._train_file("sft"): 1.0}))
        summary = sft.run(cfg)
        history = summary_history(self.root / "sft")
        per_token = [m["nll_per_token"] for m in history if "nll_per_token" in m]
        return {"first_loss": summary.first_loss, "final_loss": summary.final_metrics.get("loss"),
                "steps": summary.steps, "examples": summary.details["num_examples"],
                "loss_reduction": cfg.loss_reduction,
                "first_nll_per_token": per_token[0] if per_token else None,
                "final_nll_per_token": per_token[-1] if per_token else None}

    def dpo(self) -> dict:
        from tulu.train import dpo

        cfg = self.cfg.dpo
        model = self.model_path("sft") if (self.root / "sft" / "model").is_dir() else self.cfg.base_model
        cfg = replace(cfg, output_dir=str(self.root / "dpo"), model=replace(cfg.model, path=model),
                      data=replace(cfg.data, mixture={self._train_file("prefs"): 1.0}))
        summary = dpo.run(cfg)
        before, after = summary.heldout_before, summary.heldout_after
        return {"start_model": model, "train_pairs": summary.details["train_pairs"],
                "eval_pairs": summary.details["eval_pairs"], "accuracy_before": before.get("rewards/accuracies"),
                "accuracy_after": after.get("rewards/accuracies"), "steps": summary.steps}

    def rlvr(self) -> dict:
        from tulu.train import rlvr

        cfg = self.cfg.rlvr
        start = next((self.model_path(s) for s in ("dpo", "sft") if (self.root / s / "model").is_dir()),
                     self.cfg.base_model)
        cfg = replace(cfg, output_dir=str(self.root / "rlvr"), model=replace(cfg.model, path=start),
                      data=replace(cfg.data, prompts={self._train_file("rlvr"): 1.0}))
        summary = rlvr.run(cfg)
        final = summary.final_metrics
        return {"start_model": start, "algorithm": cfg.rl.algorithm, "steps": summary.steps,
                "prompts": summary.details["prompts"], "final_reward": final.get("reward"),
                "heldout_before": summary.heldout_before.get("accuracy"),
                "heldout_after": summary.heldout_after.get("accuracy")}

    def eval(self) -> dict:
        from tulu.eval.build import build_tasks
        from tulu.eval.runner import evaluate, model_fingerprint
        from tulu.models import resolve_model_path
        from tulu.rollout import load_backend

        e = self.cfg.eval
        out = {}
        for which in e.models:
            path = self.model_path(which)
            if which != "base" and not Path(path).is_dir():
                print(f"{which}: no model at {path} (stage not run); skipped")
                continue
            tasks = build_tasks(e.tasks, max_new_tokens=e.max_new_tokens or None, backend=e.backend)
            print(f"-- {which}: {path}", flush=True)
            with load_backend(path, e.backend, dtype=e.dtype) as backend:
                evaluate(tasks, backend, model=path, output=self.root / "eval" / which, limit=e.limit or None,
                         task_limits=e.task_limits, batch_size=e.batch_size,
                         model_key=model_fingerprint(resolve_model_path(path)),
                         extra={"stage": which, "max_new_tokens_cap": e.max_new_tokens or None})
            out[which] = str(self.root / "eval" / which / "results.json")
        return {"results": out}

    def report(self) -> dict:
        from tulu.report import Run, load_results, markdown_table, write_run_report

        ev = self._done("eval") or {"results": {}}
        runs = [Run(which, load_results(path)) for which, path in ev["results"].items()]
        out = self.root / "report"
        paths = write_run_report([self.root], out, title=f"tulu pipeline: {self.root.name}") if runs else {}
        lines = ["# tulu pipeline report", "", f"Recipe run folder: `{self.root}`", ""]
        for stage in ("data", "decontam", *TRAINED):
            info = self._done(stage)
            if info:
                lines.append(f"## {stage}\n\n```json\n{json.dumps(info, indent=2)}\n```\n")
        if runs:
            lines.append("## evaluation\n\n" + markdown_table(runs))
        atomic_write_json(out / "pipeline.json", {s: self._done(s) for s in ALL_STAGES if s != "report"})
        atomic_write_text(out / "pipeline.md", "\n".join(lines))
        return {**{k: str(v) for k, v in paths.items()}, "pipeline_md": str(out / "pipeline.md")}

    # ------------------------------------------------------------------ driver
    def run(self) -> dict:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.root / "pipeline_config.json", to_dict(self.cfg))
        from tulu.report.facts import collect

        atomic_write_json(self.root / "run_facts.json", collect(self.cfg.seed))
        stages = [s for s in ALL_STAGES if s in self.cfg.stages]
        texts = {"data": "build the SFT and preference mixtures", "decontam": "8-gram decontamination vs eval suites",
                 "sft": "supervised finetuning", "dpo": f"preference tuning ({self.cfg.dpo.dpo.loss_type})",
                 "rlvr": f"RL with verifiable rewards ({self.cfg.rlvr.rl.algorithm})",
                 "eval": f"evaluate {', '.join(self.cfg.eval.models)} on {', '.join(self.cfg.eval.tasks)}",
                 "report": "compare the stages"}
        t_all = time.perf_counter()
        for i, stage in enumerate(stages, 1):
            self._banner(i, len(stages), stage, texts[stage])
            done = self._done(stage)
            if done is not None and stage != "report":
                print(f"already done (delete {self.root / stage} to redo)")
                self.summary[stage] = done
                continue
            t0 = time.perf_counter()
            info = getattr(self, stage)()
            info["seconds"] = round(time.perf_counter() - t0, 1)
            self.summary[stage] = self._finish(stage, info)
        self._print_summary(time.perf_counter() - t_all)
        return self.summary

    def _print_summary(self, seconds: float) -> None:
        print(f"\n=== done in {seconds / 60:.1f} min: {self.root}")
        s = self.summary
        if "decontam" in s:
            for line in s["decontam"].get("summary", []):
                print(f"decontam  {line}")
        if "sft" in s and s["sft"].get("final_nll_per_token") is not None:
            print(f"sft       NLL per target token {s['sft']['first_nll_per_token']:.3f} (first step) -> "
                  f"{s['sft']['final_nll_per_token']:.3f} (last step) over {s['sft']['steps']} steps")
        elif "sft" in s and s["sft"].get("final_loss") is not None:
            print(f"sft       final loss {s['sft']['final_loss']:.3f}")
        if "dpo" in s and s["dpo"].get("accuracy_after") is not None:
            print(f"dpo       held-out implicit-reward accuracy {s['dpo']['accuracy_before']:.3f} -> "
                  f"{s['dpo']['accuracy_after']:.3f} ({s['dpo']['eval_pairs']} pairs)")
        if "rlvr" in s and s["rlvr"].get("heldout_after") is not None:
            print(f"rlvr      held-out verifiable accuracy {s['rlvr']['heldout_before']:.3f} -> "
                  f"{s['rlvr']['heldout_after']:.3f} ({s['rlvr']['steps']} steps, {s['rlvr']['algorithm']})")
        ev = self._done("eval")
        rep = s.get("report") or {}
        if rep.get("json") and Path(rep["json"]).is_file():  # the eval tables with paired tests, and the verdict
            from tulu.report.markdown import eval_table

            for sec in json.loads(Path(rep["json"]).read_text())["runs"]:
                print("\n" + "\n".join(eval_table(sec)) + "\n".join(f"- {line}" for line in sec["verdict"]))
        elif ev:
            from tulu.report import Run, load_results, markdown_table

            runs = [Run(w, load_results(p)) for w, p in ev["results"].items()]
            print("\n" + markdown_table(runs), end="")
        if rep.get("html"):
            print(f"\nreport: {rep['html']}")
        print(f"\nchat with the models: tulu serve {self.root}")


def run(cfg: PipelineConfig) -> int:
    Pipeline(cfg).run()
    return 0

