"""The run report in a real browser: Debian's chromium + chromium-driver through selenium, headless (the same
setup as tests/serve/test_browser.py). Without them this test fails with a message saying so; it never skips.

The README's screenshot (docs/img/report.png) is this module run as a script on a real pipeline run's report:
``python tests/report/test_report_browser.py runs/embedded_cpu/report/report.html docs/img/report.png``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __name__ == "__main__":  # run as a script (the README's screenshot): the shared browser setup is in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import start_browser as _start  # noqa: E402


def start_browser(width: int = 1280, height: int = 900):
    return _start(width, height)


def render(html: Path, png: Path, width: int = 1280, height: int = 900) -> dict:
    """Open the report offline, check what a reader sees, save a screenshot; returns what the page showed."""
    driver = start_browser(width, height)
    try:
        driver.get(html.resolve().as_uri())
        seen = driver.execute_script("""
            const imgs = [...document.images];
            return {title: document.title, tables: document.querySelectorAll('table').length,
                    images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).length,
                    significant: document.querySelectorAll('.badge.sig, .badge.sigd').length,
                    noise: document.querySelectorAll('td .badge.noise').length,
                    verdict: (document.querySelector('.verdict') || {}).innerText || '',
                    width: document.documentElement.scrollWidth};""")
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
        return seen
    finally:
        driver.quit()


def test_report_renders_in_chromium(tmp_path):
    from report_fakerun import make_run

    from tulu.report import write_run_report

    # four stages, so every eval table has its three stage-to-stage columns and the whole-recipe column
    make_run(tmp_path / "run", more={"dpo": (set(range(1, 8)), {0, 1, 3, 4}), "rlvr": (set(range(1, 5)), set(range(13)))})
    gens = tmp_path / "run" / "eval" / "base" / "generations" / "gsm8k.jsonl"
    recs = [json.loads(line) for line in gens.read_text().splitlines()]
    recs[0]["responses"] = ['{"answer":"' + "x" * 600 + '"}']  # one long unbroken token (JSON) must wrap
    gens.write_text("".join(json.dumps(r) + "\n" for r in recs))
    paths = write_run_report([tmp_path / "run"], tmp_path / "out")
    seen = render(paths["html"], tmp_path / "report.png")
    assert seen["title"] == "tulu run report"
    assert seen["tables"] >= 6 and seen["images"] == 4 and seen["broken"] == 0  # plots decode from base64
    assert seen["significant"] >= 2 and seen["noise"] >= 1  # gsm8k and the average significant, ifeval not
    assert "rlvr (the final model) against base" in seen["verdict"]
    assert "within noise" in seen["verdict"]
    assert seen["width"] <= 1280 + 16  # no horizontal overflow at a laptop width, whole-recipe column included
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


if __name__ == "__main__":
    html, out = Path(sys.argv[1]), Path(sys.argv[2])
    print(render(html, out, height=int(sys.argv[3]) if len(sys.argv) > 3 else 900))
