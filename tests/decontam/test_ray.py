"""The Ray Data path on a local CPU cluster gives exactly the local report and output."""

from __future__ import annotations

import json

import pytest
from decontam_helpers import chat

from tulu.decontam.run import DecontamOptions, decontaminate
from tulu.decontam.scan import TrainSource

ray = pytest.importorskip("ray")

EVAL = ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
        "A robe takes 2 bolts of blue fiber and half that much white fiber. How many bolts in total does it take?",
        "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?"]


@pytest.fixture(scope="module")
def ray_cluster():
    from tulu.decontam.distributed import init_ray

    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def test_ray_report_equals_local(ray_cluster, tmp_path, jsonl):
    ev = tmp_path / "ev.jsonl"
    ev.write_text("".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(EVAL)))
    a = jsonl("a", [chat(f"filler {i} " * (i % 9) + (EVAL[i % 3] if i % 5 == 0 else "nothing here")) for i in range(400)])
    b = tmp_path / "b.json"  # a non-JSONL source goes through the data layer on both paths
    b.write_text(json.dumps([{"instruction": EVAL[1], "output": "3"}, {"instruction": "hi", "output": "ok"}]))
    reports = {}
    for engine in ("local", "ray"):
        opts = DecontamOptions(train=[TrainSource("a", a), TrainSource("b", b)], benchmarks=[],
                               eval_files=[("gsm", ev)], engine=engine, workers=2, chunk_bytes=4096,
                               output_dir=tmp_path / engine)
        reports[engine], _ = decontaminate(opts)
    assert reports["ray"] == reports["local"]
    assert reports["local"]["datasets"][0]["contaminating_instances"] == 80
    for f in ("report.json", "report.md", "report.html", "data/a.jsonl", "data/b.jsonl"):
        assert (tmp_path / "ray" / f).read_bytes() == (tmp_path / "local" / f).read_bytes(), f
