"""Readers, converters and validation for the canonical record format.

Canonical records (one per training example)::

    SFT:         {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}
    preference:  {"messages": <prompt turns, ending with a user turn>,
                  "chosen": [<assistant turn(s)>], "rejected": [<assistant turn(s)>]}
    RL prompt:   {"messages": <prompt turns>, "ground_truth": ..., "verifier": "<registry name>"}

Readers accept JSONL, JSON (a list, or ``{"data": [...]}``), Parquet, and HF ``datasets`` folders
(``save_to_disk``). Converters recognise the common shapes (Alpaca, ShareGPT ``conversations``,
prompt/completion, Anthropic-HH ``chosen``/``rejected`` strings, TRL-style full-conversation pairs).

Every rejected record raises :class:`DataError` whose message starts with ``file:line: field:``
(``file[#index]`` for formats without lines), so a bad record never silently becomes training tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

Kind = Literal["sft", "preference", "rl"]
ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                   "system": "system"}


class DataError(ValueError):
    """A record or file that cannot be used; the message names file:line (or index) and the field."""


def _where(loc: str, field: str | None, msg: str) -> DataError:
    return DataError(f"{loc}: {field}: {msg}" if field else f"{loc}: {msg}")


# --------------------------------------------------------------------------------------------- readers
def read_records(path: str | Path) -> Iterator[tuple[str, dict]]:
    """Yield ``(location, raw_record)``; location is ``file:line`` for JSONL/JSON, ``file[#i]`` otherwise."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        yield from _read_hf_dataset(path)
        return
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".gz") else path.suffix
    if suffix in (".jsonl", ".jsonl.gz", ".ndjson"):
        yield from read_jsonl(path)
    elif suffix == ".json":
        yield from _read_json(path)
    elif suffix == ".parquet":
        yield from _read_parquet(path)
    else:
        raise DataError(f"{path}: unknown data format {suffix!r} (expected .jsonl, .json, .parquet or a datasets folder)")


def scan_jsonl(path: str | Path) -> Iterator[tuple[str, Any, str | None]]:
    """``(file:line, object or None, error or None)`` for every non-blank line of a JSONL file (``.gz`` too).
    A line that is not valid JSON yields its error and the scan goes on, so one bad line hides nothing."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            loc = f"{path}:{lineno}"
            try:
                yield loc, json.loads(line.rstrip("\r\n")), None  # an error then points into the line
            except json.JSONDecodeError as exc:
                yield loc, None, f"{loc}: invalid JSON ({exc.msg} at column {exc.colno})"


def read_jsonl(path: str | Path) -> Iterator[tuple[str, dict]]:
    """``(file:line, object)`` for every non-blank line of a JSONL file (``.gz`` too); bad JSON raises DataError."""
    for loc, rec, error in scan_jsonl(path):
        if error is not None:
            raise DataError(error)
        if not isinstance(rec, dict):
            raise DataError(f"{loc}: expected a JSON object per line, got {type(rec).__name__}")
        yield loc, rec


def _read_json(path: Path) -> Iterator[tuple[str, dict]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of records (or {{'data': [...]}})")
    # Map each top-level record to its starting line so errors point at the editor line.
    starts = _record_start_lines(text, len(data))
    for i, rec in enumerate(data):
        loc = f"{path}:{starts[i]}" if starts else f"{path}[#{i}]"
        if not isinstance(rec, dict):
            raise DataError(f"{loc}: expected a JSON object, got {type(rec).__name__}")
        yield loc, rec


def _record_start_lines(text: str, n: int) -> list[int] | None:
    """Line numbers where each element of a top-level JSON array starts (None if it cannot tell)."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1 if "[" in text else 0
    if text.lstrip().startswith("{"):
        m = re.search(r'"data"\s*:\s*\[', text)
        if not m:
            return None
        pos = m.end()
    lines = []
    try:
        for _ in range(n):
            while text[pos] in " \t\r\n,":
                pos += 1
            lines.append(text.count("\n", 0, pos) + 1)
            _, pos = decoder.raw_decode(text, pos)
    except (IndexError, json.JSONDecodeError):
        return None
    return lines


def _read_parquet(path: Path) -> Iterator[tuple[str, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several error types for corrupt files
        raise DataError(f"{path}: cannot read Parquet: {exc}") from None
    for i, rec in enumerate(table.to_pylist()):
        yield f"{path}[#{i}]", rec


def _read_hf_dataset(path: Path) -> Iterator[tuple[str, dict]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises several types for a non-dataset folder
        raise DataError(f"{path}: not a datasets folder written by save_to_disk: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise DataError(f"{path}: DatasetDict has no 'train' split (splits: {list(ds)})")
        ds = ds["train"]
    for i, rec in enumerate(ds):
        yield f"{path}[#{i}]", rec


# ------------------------------------------------------------------------------------------ converters
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh(text: str, loc: str, field: str) -> list[dict]:
    """Anthropic-HH string ("\\n\\nHuman: ...\\n\\nAssistant: ...") to messages."""
    parts = _HH_TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    if len(parts) < 3 or parts[0].strip():
        raise _where(loc, field, "not an HH-style conversation ('\\n\\nHuman: ... \\n\\nAssistant: ...')")
    msgs = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    return msgs


def _as_messages(value: Any, loc: str, field: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": value}]
    if isinstance(value, dict) and "role" in value:
        return [value]
    if isinstance(value, list):
        return value
    raise _where(loc, field, f"expected a list of messages or a string, got {type(value).__name__}")


def _split_prompt(chosen: list[dict], rejected: list[dict], loc: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Full chosen/rejected conversations -> (shared prompt, chosen tail, rejected tail)."""
    if not chosen or not rejected:
        raise _where(loc, "chosen" if not chosen else "rejected", "empty conversation")
    # The prompt is everything up to the last user turn of each conversation.
    def last_user(conv):
        idx = [i for i, m in enumerate(conv) if isinstance(m, dict) and m.get("role") == "user"]
        return idx[-1] if idx else -1

    ic, ir = last_user(chosen), last_user(rejected)
    if ic < 0:
        raise _where(loc, "chosen", "no user turn: cannot tell the prompt from the response")
    if chosen[: ic + 1] != rejected[: ir + 1]:
        raise _where(loc, "rejected", "prompt differs from the chosen conversation's prompt")
    return chosen[: ic + 1], chosen[ic + 1:], rejected[ir + 1:]


def to_canonical(rec: dict, loc: str, kind: Kind = "sft") -> dict:
    """Recognise the record's shape and return the canonical record (not yet validated)."""
    extra = {k: rec[k] for k in ("ground_truth", "verifier", "id", "source", "dataset") if k in rec}
    if kind == "preference":
        if "chosen" not in rec or "rejected" not in rec:
            raise _where(loc, "chosen" if "chosen" not in rec else "rejected", "missing (a preference record needs chosen and rejected)")
        chosen, rejected = rec["chosen"], rec["rejected"]
        if isinstance(chosen, str) and isinstance(rejected, str) and "\n\nHuman:" in "\n\n" + chosen.lstrip("\n"):
            chosen, rejected = parse_hh(chosen, loc, "chosen"), parse_hh(rejected, loc, "rejected")
        prompt = rec.get("messages", rec.get("prompt"))
        chosen, rejected = _as_messages(chosen, loc, "chosen"), _as_messages(rejected, loc, "rejected")
        if prompt is None:
            prompt, chosen, rejected = _split_prompt(chosen, rejected, loc)
        elif isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return {"messages": prompt, "chosen": chosen, "rejected": rejected, **extra}
    if "messages" in rec:
        return {"messages": rec["messages"], **extra}
    if "conversations" in rec:
        conv = rec["conversations"]
        if not isinstance(conv, list):
            raise _where(loc, "conversations", "expected a list of turns")
        msgs = []
        for i, turn in enumerate(conv):
            if not isinstance(turn, dict):
                raise _where(loc, f"conversations[{i}]", "expected an object with 'from' and 'value'")
            speaker = turn.get("from", turn.get("role"))
            if speaker not in _SHAREGPT_ROLES:
                raise _where(loc, f"conversations[{i}].from", f"unknown speaker {speaker!r}")
            msgs.append({"role": _SHAREGPT_ROLES[speaker], "content": turn.get("value", turn.get("content"))})
        return {"messages": msgs, **extra}
    if "instruction" in rec and ("output" in rec or kind == "rl"):
        user = rec["instruction"]
        if rec.get("input"):
            user = f"{user}\n\n{rec['input']}"
        msgs = [{"role": "user", "content": user}]
        if "output" in rec:
            msgs.append({"role": "assistant", "content": rec["output"]})
        return {"messages": msgs, **extra}
    if "prompt" in rec:
        prompt = rec["prompt"]
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt or [])
        if "completion" in rec:
            msgs += _as_messages(rec["completion"], loc, "completion")
        elif kind != "rl":
            raise _where(loc, "completion", "missing (a prompt/completion record needs both)")
        return {"messages": msgs, **extra}
    raise _where(loc, None, "unrecognised record shape: expected one of 'messages', 'conversations' (ShareGPT), "
                            "'instruction'/'output' (Alpaca), 'prompt'/'completion', or 'chosen'/'rejected'")


# ---------------------------------------------------------------------------------------- validation
def validate_messages(msgs: Any, loc: str, field: str = "messages", *, need_final: str | None = None) -> list[dict]:
    """Check roles, contents and turn order; return a clean copy (role + content only)."""
    if not isinstance(msgs, list) or not msgs:
        raise _where(loc, field, "expected a non-empty list of messages")
    clean = []
    for i, m in enumerate(msgs):
        f = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise _where(loc, f, f"expected an object with role and content, got {type(m).__name__}")
        if "role" not in m:
            raise _where(loc, f"{f}.role", "missing")
        role = m["role"]
        if role not in ROLES:
            raise _where(loc, f"{f}.role", f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        content = m.get("content")
        if not isinstance(content, str):
            raise _where(loc, f"{f}.content", "missing" if content is None else f"expected a string, got {type(content).__name__}")
        if not content.strip():
            raise _where(loc, f"{f}.content", "empty content")
        if role == "system" and i != 0:
            raise _where(loc, f"{f}.role", "a system message may only come first")
        clean.append({"role": role, "content": content})
    # After an optional system message, turns alternate user/assistant starting with user.
    turns = clean[1:] if clean[0]["role"] == "system" else clean
    for j, m in enumerate(turns):
        expected = "user" if j % 2 == 0 else "assistant"
        if m["role"] != expected:
            i = j + (len(clean) - len(turns))
            raise _where(loc, f"{field}[{i}].role", f"conversation does not alternate: expected {expected}, got {m['role']}")
    if need_final and (not turns or turns[-1]["role"] != need_final):
        article = "an" if need_final == "assistant" else "a"  # "a user turn", "an assistant turn"
        raise _where(loc, field, f"must end with {article} {need_final} turn")
    return clean


def validate(rec: dict, loc: str, kind: Kind = "sft") -> dict:
    """Validate a canonical record of ``kind``; return a cleaned copy."""
    if kind == "sft":
        out = {"messages": validate_messages(rec.get("messages"), loc, need_final="assistant")}
    elif kind == "preference":
        prompt = validate_messages(rec.get("messages"), loc, need_final="user")
        out = {"messages": prompt}
        for side in ("chosen", "rejected"):
            full = validate_messages(prompt + list(rec.get(side) or []), loc, side)
            tail = full[len(prompt):]
            if not tail:
                raise _where(loc, side, "no response after the prompt")
            if tail[-1]["role"] != "assistant":
                raise _where(loc, side, "must end with an assistant turn")
            out[side] = tail
        if out["chosen"] == out["rejected"]:
            raise _where(loc, "rejected", "identical to chosen (a preference pair needs two different responses)")
    elif kind == "rl":
        out = {"messages": validate_messages(rec.get("messages"), loc, need_final="user")}
        if "ground_truth" not in rec or rec["ground_truth"] in (None, ""):
            raise _where(loc, "ground_truth", "missing (an RL prompt needs a ground truth for its verifier)")
        verifier = rec.get("verifier")
        if not isinstance(verifier, str) or not verifier:
            raise _where(loc, "verifier", "missing (name of a registered verifier, e.g. gsm8k, math, ifeval)")
        out["ground_truth"], out["verifier"] = rec["ground_truth"], verifier
    else:
        raise ValueError(f"unknown record kind {kind!r}")
    for key in ("id", "source", "dataset"):
        if key in rec:
            out[key] = rec[key]
    return out


def iter_records(path: str | Path, kind: Kind = "sft") -> Iterator[dict]:
    """Read, convert and validate every record of a file; raise on the first bad one."""
    for loc, raw in read_records(path):
        yield validate(to_canonical(raw, loc, kind), loc, kind)


def load_records(path: str | Path, kind: Kind = "sft", *, on_error: Literal["raise", "skip"] = "raise",
                 errors: list[str] | None = None) -> list[dict]:
    """All valid records of a file. With ``on_error="skip"`` bad records are left out and their messages
    appended to ``errors`` (the caller reports them); by default the first bad record raises."""
    out = []
    for loc, raw, error in scan_records(path):
        try:
            if error is not None:
                raise DataError(error)
            out.append(validate(to_canonical(raw, loc, kind), loc, kind))
        except DataError as exc:
            if on_error == "raise":
                raise
            if errors is not None:
                errors.append(str(exc))
    return out


def scan_records(path: str | Path) -> Iterator[tuple[str, Any, str | None]]:
    """``(location, raw record or None, error or None)`` for every record of a file. For JSONL a line that is
    not JSON (or not an object) yields its error and the scan goes on, so ``tulu data validate`` lists every
    bad line; other formats are parsed whole and a file that does not parse raises :class:`DataError`."""
    path = Path(path)
    if path.is_file() and (path.suffix in (".jsonl", ".ndjson") or path.name.endswith(".jsonl.gz")):
        for loc, rec, error in scan_jsonl(path):
            if error is None and not isinstance(rec, dict):
                rec, error = None, f"{loc}: expected a JSON object per line, got {type(rec).__name__}"
            yield loc, rec, error
        return
    for loc, rec in read_records(path):
        yield loc, rec, None
