"""RLVR prompt data: Tulu 3's record format, up-front validation, generators and the trainer's entry point.

Record format (Tulu 3 / open-instruct RLVR data, e.g. ``allenai/RLVR-GSM-MATH-IF-Mixed-Constraints``)::

    {"messages": [{"role": "user", "content": "..."}],   # the prompt, ending with a user turn
     "ground_truth": "18" | {...} | "<JSON>",             # what the verifier checks against
     "dataset": "gsm8k"}                                  # names the verifier

``dataset`` may be any registered verifier name (``tulu.verifiers.base.available()``) or a Tulu 3 dataset
name mapped to one (``MATH`` -> ``math``, see :data:`DATASET_ALIASES`); a ``verifier`` field is accepted in
its place. One-element lists (newer open-instruct data) are unwrapped. Records from a prompt-only shape
(``prompt``, ``instruction``) are converted like :mod:`tulu.data.formats` does.

Every record is validated before training starts (:func:`validate_rlvr_record`): the messages, a ``dataset``
that names a verifier, and a ground truth that this verifier can parse (with the verifier's own parser).
A file is read to the end and **all** bad records are reported (:class:`RLVRDataError`, capped printout).

Sources (:func:`load_rlvr_prompts`, mixture syntax as :func:`tulu.data.mixing.build_mixture`):

* a file (JSONL, JSON, Parquet, ``datasets`` folder) or ``hf:<name>[:<split>]`` (the hub, when online);
* ``rlvr:constraints``: IFEval-taxonomy constraint prompts (:mod:`tulu.data.ifeval_prompts`), verifier
  ``ifeval``;
* ``rlvr:math`` (every task of :data:`MATH_TASKS`), ``rlvr:arith`` (the arithmetic ones) or
  ``rlvr:<task>`` (one reasoning-gym task of :data:`MATH_TASKS`), verifier ``gsm8k`` or ``math``.
  Tasks built from a benchmark's test set (:data:`DENYLIST`, e.g. ``gsm_symbolic``, made from GSM8K test)
  are refused.

Generated prompts have a **train** and a **heldout** split that never share a prompt: a prompt belongs to
the held-out split when the hash of its text falls in the held-out bucket (:func:`prompt_split`), and each
split only keeps its own prompts; the two splits also draw from different seeds.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tulu.data.formats import DataError, read_records, scan_jsonl, to_canonical, validate_messages
from tulu.data.rlvr_sources import HELDOUT_SHARE, Split, _check_split, _split_seed, prompt_split  # noqa: F401

GENERATOR_DEFAULT_SIZE = 1000  # a fraction (<= 1) of a generator means fraction * this many prompts
DEFAULT_MAX_ERRORS = 20

# Tulu 3 / open-instruct dataset names -> our verifier names (looked up case-sensitively first, then lower).
DATASET_ALIASES = {
    "gsm8k": "gsm8k",
    "GSM8K": "gsm8k",
    "MATH": "math",
    "math": "math",
    "ifeval": "ifeval",
    "IFEval": "ifeval",
    "ifbench": "ifbench",
    "IFBench": "ifbench",
    "code": "code",
}


class RLVRDataError(DataError):
    """Bad RLVR records: ``errors`` holds every message (``file:line: field: problem``)."""

    def __init__(self, source: str, errors: list[str], total: int, max_errors: int = DEFAULT_MAX_ERRORS):
        self.errors = list(errors)
        shown = "\n".join(f"  {e}" for e in errors[:max_errors])
        more = len(errors) - max_errors
        tail = (
            f"\n  ... and {more} more (`tulu data validate --kind rlvr {source}` lists them all)"
            if more > 0
            else ""
        )
        super().__init__(f"{source}: {len(errors)} of {total} RLVR records are invalid:\n{shown}{tail}")


# ------------------------------------------------------------------------------------------ verifiers
def resolve_verifier(dataset: Any) -> str | None:
    """The registered verifier a record's ``dataset`` names, or None."""
    from tulu.verifiers.base import available

    if isinstance(dataset, list) and len(dataset) == 1:
        dataset = dataset[0]
    if not isinstance(dataset, str) or not dataset.strip():
        return None
    known = set(available())
    for name in (dataset, dataset.strip(), dataset.strip().lower()):
        if name in known:
            return name
        if DATASET_ALIASES.get(name) in known:
            return DATASET_ALIASES[name]
    return None


def _parse_gsm8k(gt: Any) -> None:
    from tulu.verifiers.gsm8k import gold_number

    gold_number(gt)


def _parse_math(gt: Any) -> None:
    from tulu.verifiers.math import gold_answer

    golds = gold_answer(gt)
    if not golds or not all(g.strip() for g in golds):
        raise ValueError("empty answer")


def _parse_ifeval(gt: Any) -> None:
    from tulu.verifiers.ifeval import parse_ground_truth

    parse_ground_truth(gt)


def _parse_ifbench(gt: Any) -> None:
    from tulu.verifiers.ifbench import SPECS, UNSUPPORTED, unsupported_ids
    from tulu.verifiers.ifeval import parse_ground_truth

    bad = unsupported_ids(gt)
    if bad:
        raise ValueError("; ".join(f"{i}: {UNSUPPORTED[i]}" for i in bad))
    parse_ground_truth(gt, SPECS)


def _parse_code(gt: Any) -> None:
    from tulu.verifiers.code import parse_code_ground_truth

    parse_code_ground_truth(gt)


# verifier -> the verifier's own ground-truth parser (raises on what it cannot use)
GROUND_TRUTH_PARSERS: dict[str, Callable[[Any], None]] = {
    "gsm8k": _parse_gsm8k,
    "math": _parse_math,
    "math_strict": _parse_math,
    "ifeval": _parse_ifeval,
    "ifeval_fraction": _parse_ifeval,
    "ifbench": _parse_ifbench,
    "code": _parse_code,
}


def ground_truth_problem(verifier: str, ground_truth: Any) -> str | None:
    """Why ``verifier`` cannot use ``ground_truth`` (None when it can)."""
    if ground_truth is None or ground_truth == "" or ground_truth == []:
        return "missing (an RLVR prompt needs a ground truth for its verifier)"
    parse = GROUND_TRUTH_PARSERS.get(verifier)
    if parse is None:
        return None  # a verifier registered elsewhere: it parses its own ground truth at scoring time
    try:
        parse(ground_truth)
    except (ValueError, TypeError, KeyError) as exc:  # json.JSONDecodeError is a ValueError
        hint = ""
        if verifier.startswith(("ifeval", "ifbench")) and _is_func_name_form(ground_truth):
            hint = (" (this is open-instruct's RLVR-IFeval 'func_name' form, whose checks differ from "
                    "IFEval's: exact counts, 'around', 'at most'; no verifier here reads it)")
        return f"the {verifier} verifier cannot parse it: {exc}{hint}"
    return None


def _is_func_name_form(ground_truth: Any) -> bool:
    if isinstance(ground_truth, str):
        try:
            ground_truth = json.loads(ground_truth)
        except json.JSONDecodeError:
            return False
    return isinstance(ground_truth, dict) and "func_name" in ground_truth


# ------------------------------------------------------------------------------------------ validation
def validate_rlvr_record(raw: dict, loc: str) -> dict:
    """Check one record and return its clean form:
    ``{"messages", "ground_truth", "dataset", "verifier", **optional id/source/provenance}``."""
    if not isinstance(raw, dict):
        raise DataError(f"{loc}: expected a JSON object, got {type(raw).__name__}")
    rec = raw if "messages" in raw else to_canonical(raw, loc, "rl")
    messages = validate_messages(rec.get("messages"), loc, need_final="user")
    field = "dataset" if "dataset" in raw else "verifier" if "verifier" in raw else None
    if field is None:
        raise DataError(f"{loc}: dataset: missing (the name of the verifier, e.g. gsm8k, math, ifeval)")
    dataset = raw[field]
    verifier = resolve_verifier(dataset)
    if verifier is None:
        from tulu.verifiers.base import available

        if isinstance(dataset, list) and len(dataset) > 1:
            raise DataError(f"{loc}: {field}: {len(dataset)} verifiers for one record are not supported")
        raise DataError(
            f"{loc}: {field}: {dataset!r} names no verifier (known: {', '.join(available())}; "
            f"Tulu 3 names {', '.join(sorted(set(DATASET_ALIASES) - set(available())))} "
            "are accepted too)"
        )
    if "ground_truth" not in raw:
        raise DataError(
            f"{loc}: ground_truth: missing (an RLVR prompt needs a ground truth for its verifier)"
        )
    gt = raw["ground_truth"]
    if isinstance(gt, list) and len(gt) == 1:
        gt = gt[0]
    problem = ground_truth_problem(verifier, gt)
    if problem:
        raise DataError(f"{loc}: ground_truth: {problem}")
    out = {
        "messages": messages,
        "ground_truth": gt,
        "dataset": dataset[0] if isinstance(dataset, list) else dataset,
        "verifier": verifier,
    }
    for key in ("id", "source", "provenance"):
        if key in raw:
            out[key] = raw[key]
    return out


def _raw_records(path: Path) -> Iterator[tuple[str, dict | None, str | None]]:
    """``(loc, record, error)``: JSONL is read line by line so that a bad line does not hide the rest."""
    if path.is_file() and path.name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        yield from scan_jsonl(path)
        return
    for loc, rec in read_records(path):
        yield loc, rec, None


def check_rlvr_records(items: Iterator[tuple[str, Any, str | None]]) -> tuple[list[dict], list[str], int]:
    """(valid records, every error message, records seen)."""
    good, errors, total = [], [], 0
    for loc, raw, err in items:
        total += 1
        if err is not None:
            errors.append(err)
            continue
        try:
            good.append(validate_rlvr_record(raw, loc))
        except DataError as exc:
            errors.append(str(exc))
    return good, errors, total


def check_rlvr_file(path: str | Path) -> tuple[list[dict], list[str], int]:
    """Validate every record of a file: (valid records, all error messages, records seen)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    return check_rlvr_records(_raw_records(path))


def load_rlvr_file(path: str | Path, *, max_errors: int = DEFAULT_MAX_ERRORS) -> list[dict]:
    """Every record of a file, validated; any bad record raises :class:`RLVRDataError` listing all of them."""
    good, errors, total = check_rlvr_file(path)
    if errors:
        raise RLVRDataError(str(path), errors, total, max_errors)
    if not good:
        raise DataError(f"{path}: no records")
    return good


def load_rlvr_hub(name: str, *, max_errors: int = DEFAULT_MAX_ERRORS) -> list[dict]:
    """``hf:<name>[:<split>]`` from the Hugging Face hub (needs network or a warm datasets cache)."""
    import datasets

    repo, _, split = name.partition(":")
    try:
        ds = datasets.load_dataset(repo, split=split or "train")
    except Exception as exc:  # noqa: BLE001 - offline, missing, private: all are "cannot load"
        raise DataError(f"hf:{name}: cannot load from the hub: {exc}") from None
    good, errors, total = check_rlvr_records((f"hf:{name}[#{i}]", rec, None) for i, rec in enumerate(ds))
    if errors:
        raise RLVRDataError(f"hf:{name}", errors, total, max_errors)
    return good


# ------------------------------------------------------------------------------------------ entry point
def _generator_count(source: str, want: float) -> int:
    if want <= 0:
        raise DataError(f"mixture: {source}: weight must be > 0, got {want}")
    if want > 1 and not float(want).is_integer():
        raise DataError(f"mixture: {source}: a count above 1 must be a whole number, got {want}")
    return int(want) if want > 1 else max(1, round(want * GENERATOR_DEFAULT_SIZE))


def load_rlvr_prompts(
    mixture: dict[str, float], seed: int = 0, split: Split = "train", *, max_errors: int = DEFAULT_MAX_ERRORS
) -> list[dict]:
    """Validated RLVR prompt records from a mixture, shuffled under ``seed``.

    ``mixture`` maps a source to a fraction (``<= 1``) or a count (``> 1``), as in
    :func:`tulu.data.mixing.build_mixture`. Sources: files, ``hf:<name>[:<split>]``, and the generators
    ``rlvr:constraints``, ``rlvr:math``, ``rlvr:arith``, ``rlvr:<reasoning-gym task>`` (a fraction of a
    generator means that fraction of :data:`GENERATOR_DEFAULT_SIZE`). ``split="heldout"`` draws the
    generators' held-out prompts, which never equal a training prompt; file and hub sources are used as
    they are in both splits (hold data out of a file by passing a different file).

    Every source is validated in full before anything is returned: all bad records of all files are
    reported in one :class:`RLVRDataError`. Each record gets ``source`` (the mixture key) if it has none.
    """
    from tulu.data.mixing import take
    from tulu.data.rlvr_sources import generate

    _check_split(split)
    if not mixture:
        raise DataError("mixture: empty (name at least one prompt source)")
    out: list[dict] = []
    errors: list[str] = []
    total = 0
    for source, want in mixture.items():
        if source.startswith("rlvr:"):
            recs, errs, n = check_rlvr_records(  # generated records are checked like any others
                (r["id"], r, None) for r in generate(source, _generator_count(source, want), seed, split)
            )
            errors += errs
            total += n
        else:
            if source.startswith("hf:"):
                try:
                    recs = load_rlvr_hub(source[3:], max_errors=max_errors)
                except RLVRDataError as exc:
                    errors += exc.errors
                    continue
            else:
                path = Path(source)
                if not path.exists():
                    raise DataError(f"mixture: {source}: no such file or folder")
                recs, errs, n = check_rlvr_file(path)
                errors += errs
                total += n
                if errs:
                    continue
                if not recs:
                    raise DataError(f"{source}: no records")
            recs = take(recs, want, source, seed)
        for r in recs:
            r.setdefault("source", source)
        out.extend(recs)
    if errors:
        raise RLVRDataError("mixture", errors, max(total, len(errors)), max_errors)
    random.Random(f"rlvr:{seed}:{split}").shuffle(out)
    return out
