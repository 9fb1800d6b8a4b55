"""Debian's chromium + chromium-driver through selenium, headless: the one browser setup of the browser tests
(the chat page, the run report). `make setup` installs both (apt-get) where they are missing. Without them the
tests FAIL with a message saying so: they never skip, so a CI machine without a browser cannot pass silently."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = os.environ.get("TULU_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TULU_CHROMEDRIVER", "/usr/bin/chromedriver")


def start_browser(width: int = 1280, height: int = 900):
    """A headless Chrome driver at ``width`` x ``height`` CSS pixels (device scale 1)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).is_file()]
    if missing:
        raise RuntimeError(f"the browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} "
                           "missing): run `make setup` as root (it runs `apt-get install -y chromium chromium-driver`)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
