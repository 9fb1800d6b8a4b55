"""Report: side-by-side tables with deltas, HTML page, plot, `tulu report` CLI."""

from __future__ import annotations

import json

from tulu.report import Run, markdown_table, write_report
from tulu.report.tables import comparison_rows


def _results(gsm, ife, skipped_bbh=True):
    tasks = {
        "gsm8k": {"suite": "dev", "headline": "exact_match", "n": 50, "skipped": None,
                  "metrics": {"exact_match": {"value": gsm, "stderr": 2.0}}},
        "ifeval": {"suite": "dev", "headline": "prompt_loose", "n": 50, "skipped": None,
                   "metrics": {"prompt_loose": {"value": ife, "stderr": 3.0}, "inst_loose": {"value": ife + 5, "stderr": 1.0}}},
        "bbh": {"suite": "dev", "headline": "exact_match", "n": 0, "skipped": "bbh: needs the hub", "metrics": {}},
    }
    avg = {"dev": {"value": (gsm + ife) / 2, "stderr": 1.8, "tasks": ["gsm8k", "ifeval"], "missing": ["bbh"]}}
    return {"model": "m", "tasks": tasks, "averages": avg}


def test_markdown_side_by_side_with_deltas():
    runs = [Run("base", _results(10.0, 20.0)), Run("sft", _results(30.0, 25.0)), Run("dpo", _results(28.0, 40.0))]
    md = markdown_table(runs)
    assert "| task | suite | metric | base | sft | dpo |" in md
    assert "| gsm8k | dev | exact_match | 10.0 ± 2.0 | 30.0 ± 2.0 (+20.0) | 28.0 ± 2.0 (-2.0) |" in md
    assert "dev average" in md and "(+12.5)" in md
    assert "- bbh: needs the hub" in md
    rows = comparison_rows(runs)
    assert [r.task for r in rows] == ["gsm8k", "ifeval", "bbh"]


def test_write_report_and_cli(tmp_path, capsys):
    runs = [Run("sft", _results(30.0, 25.0)), Run("dpo", _results(28.0, 40.0))]
    paths = write_report(runs, tmp_path / "r")
    html = paths["html"].read_text()
    assert "<table>" in html and "sft" in html and "dpo" in html and "(+15.0)" in html
    assert "data:image/png;base64," in html and paths["plot"].read_bytes()[:4] == b"\x89PNG"
    from tulu import cli

    for label, res in (("a", _results(1.0, 2.0)), ("b", _results(3.0, 4.0))):
        (tmp_path / label).mkdir()
        (tmp_path / label / "results.json").write_text(json.dumps(res))
    rc = cli.main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "out"), "--no-plot"])
    assert rc == 0 and (tmp_path / "out" / "report.html").is_file()
    assert "+2.0 (untested: no per-item scores)" in capsys.readouterr().out  # no generations files: no test
    assert cli.main(["report", str(tmp_path / "missing")]) == 2
    assert cli.main(["report", str(tmp_path / "a"), "--labels", "x,y"]) == 2
