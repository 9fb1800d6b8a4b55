from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # decontam_helpers.py, decontam_reference.py

from decontam_helpers import chat, write_jsonl  # noqa: E402,F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture
def jsonl(tmp_path):
    def make(name: str, records: list, **kw) -> Path:
        return write_jsonl(tmp_path / f"{name}.jsonl", records, **kw)

    return make
