"""64 concurrent streaming clients against the embedded model (slow): benchmarks/serve_load.py, checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.embedded
def test_64_concurrent_streams_on_the_embedded_model(tmp_path):
    out = tmp_path / "load.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "serve_load.py"), "--clients", "64",
                           "--max-tokens", "32", "--timeout-s", "900", "--json", str(out)],
                          check=False, env=env, capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    for phase in ("one_at_a_time", "concurrent"):
        assert res[phase]["completed"] == 64 and res[phase]["failed"] == 0
    assert res["mismatched"] == []  # every concurrent answer equals the same request served alone
    assert res["peak_rows"] > 8  # they really ran together
    assert res["concurrent"]["tokens_per_s"] > res["one_at_a_time"]["tokens_per_s"]
