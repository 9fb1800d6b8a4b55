"""Helpers shared by the decontamination tests (a uniquely named module, so no bare `conftest` import)."""

from __future__ import annotations

import json
from pathlib import Path


def write_jsonl(path: Path, records: list, blank_lines: bool = False) -> Path:
    with open(path, "w") as fh:
        for i, r in enumerate(records):
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
            if blank_lines and i % 3 == 1:
                fh.write("\n")
    return path


def chat(user: str, assistant: str = "Sure.") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}
