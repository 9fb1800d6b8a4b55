from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # reference.py

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def write_jsonl(path: Path, records: list, blank_lines: bool = False) -> Path:
    with open(path, "w") as fh:
        for i, r in enumerate(records):
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
            if blank_lines and i % 3 == 1:
                fh.write("\n")
    return path


def chat(user: str, assistant: str = "Sure.") -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


@pytest.fixture
def jsonl(tmp_path):
    def make(name: str, records: list, **kw) -> Path:
        return write_jsonl(tmp_path / f"{name}.jsonl", records, **kw)

    return make
