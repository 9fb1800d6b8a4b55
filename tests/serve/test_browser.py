"""The chat page in a real browser: Debian's chromium + chromium-driver, driven by selenium, headless.

`make setup` installs both (apt-get) where they are missing. Without them this test FAILS with a message
saying so: it never skips, so a CI machine without a browser cannot pass silently.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

from browser import start_browser as _start


def start_browser(width: int = 1280, height: int = 820):
    return _start(width, height)


def wait_for(driver, predicate, timeout: float = 30.0, poll: float = 0.01, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=poll).until(lambda d: predicate(d), message=what)


def squash(s: str) -> str:
    """Text as the page shows it vs as the API returns it: markdown-lite drops fences/backticks/asterisks and
    paragraph breaks, so compare without whitespace and those marks."""
    return "".join(ch for ch in s if not ch.isspace() and ch not in "`*")


def send(driver, text: str) -> None:
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def set_field(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)


def assistant_texts(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('.column')].map(c => {"
        " const m = c.querySelectorAll('.msg.assistant'); return m.length ? m[m.length - 1].textContent : null; })")


def idle(driver) -> bool:
    return driver.execute_script(
        "return !document.querySelector('.msg.streaming') && !document.getElementById('send').disabled")


def test_chat_page_streams_and_compares_side_by_side(server, client, http, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = start_browser()
    try:
        driver.get(server.url + "/")
        wait_for(driver, lambda d: [o.text for o in Select(d.find_element(By.ID, "model-a")).options] == ["alpha", "beta"],
                 what="the model picker lists the served models")
        # code blocks display as code (the renderer the page uses on every streamed update)
        html = driver.execute_script("return renderMarkdown(arguments[0])",
                                     "Here:\n```python\nprint('<hi>')\n```\nand `x`.")
        assert '<pre><code class="language-python">print(\'&lt;hi&gt;\')</code></pre>' in html
        assert "<code>x</code>" in html

        # one column: system prompt, sampling controls, a streamed answer
        driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
        set_field(driver, "system", "You are terse.")
        set_field(driver, "temperature", "0.9")
        set_field(driver, "top-p", "0.95")
        set_field(driver, "max-tokens", "200")
        set_field(driver, "seed", "42")
        send(driver, "Hello there")
        # text appears while the answer is still streaming (the cursor class is on)
        wait_for(driver, lambda d: d.execute_script(
            "const m = document.querySelector('.msg.assistant.streaming'); return m && m.textContent.length > 0"),
            what="streamed text while the answer is still streaming")
        wait_for(driver, idle, what="the answer to finish")
        page_text = assistant_texts(driver)[0]
        api = client.chat.completions.create(
            model="alpha", messages=[{"role": "system", "content": "You are terse."},
                                     {"role": "user", "content": "Hello there"}],
            temperature=0.9, top_p=0.95, max_tokens=200, seed=42).choices[0].message.content
        assert squash(page_text) == squash(api) and page_text.strip()  # the page sent every setting
        assert "tokens" in driver.find_element(By.CSS_SELECTOR, ".meta").text

        # side by side: one prompt, two models, two columns streaming at once
        driver.find_element(By.ID, "side-by-side").click()
        Select(driver.find_element(By.ID, "model-b")).select_by_visible_text("beta")
        headers = [h.text for h in driver.find_elements(By.CSS_SELECTOR, ".column h2")]
        assert headers == ["alpha", "beta"]
        set_field(driver, "max-tokens", "120")
        send(driver, "Compare yourselves")
        wait_for(driver, lambda d: d.execute_script(
            "return document.querySelectorAll('.msg.assistant.streaming').length === 2"),
            what="both columns streaming at the same time")
        wait_for(driver, idle, what="both answers to finish")
        texts = assistant_texts(driver)
        assert len(texts) == 2 and all(t and t.strip() for t in texts) and texts[0] != texts[1]
        assert len(driver.find_elements(By.CSS_SELECTOR, ".column:first-child .msg.user")) == 2  # history kept
        path = tmp_path / "serve.png"
        driver.save_screenshot(str(path))
        assert path.stat().st_size > 10_000

        # the stop button ends both streams and frees the server's slots
        set_field(driver, "max-tokens", "1000")
        send(driver, "Go on and on")
        wait_for(driver, lambda d: d.execute_script(
            "return [...document.querySelectorAll('.msg.assistant.streaming')].filter(m => m.textContent).length === 2"),
            what="two streams running")
        driver.find_element(By.ID, "stop").click()
        wait_for(driver, idle, what="the streams to stop")
        assert driver.execute_script("return [...document.querySelectorAll('.column')].map(c => "
                                     "[...c.querySelectorAll('.meta')].pop().textContent)") == ["stopped", "stopped"]
        t0 = time.perf_counter()
        while any(m["running_rows"] for m in http.get("/health")[1]["models"].values()) and time.perf_counter() - t0 < 5:
            time.sleep(0.05)
        assert not any(m["running_rows"] for m in http.get("/health")[1]["models"].values())
    finally:
        driver.quit()


@pytest.mark.slow
@pytest.mark.embedded
def test_chat_page_with_embedded_model_screenshot(embedded, tmp_path):
    """The README's screenshot: the embedded model in both columns (sampled, so two different answers) asked
    for code. ``TULU_SCREENSHOT=docs/img/serve.png`` copies it there."""
    from tulu.serve.app import create_app
    from tulu.serve.engine import FastEngine
    from tulu.serve.server import ServerThread

    model, tok = embedded
    engine = FastEngine("embedded", model, tok, max_batch_size=4, max_model_len=1024)
    driver = start_browser(1280, 900)
    try:
        with ServerThread(create_app({"embedded": engine})) as srv:
            from selenium.webdriver.common.by import By

            driver.get(srv.url + "/")
            wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#model-a option"), what="models listed")
            driver.find_element(By.ID, "side-by-side").click()
            driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
            set_field(driver, "system", "You are a helpful assistant.")
            set_field(driver, "max-tokens", "160")
            send(driver, "Write a Python function that checks whether a word is a palindrome.")
            wait_for(driver, idle, timeout=300, poll=0.2, what="both answers")
            texts = assistant_texts(driver)
            assert all(t and t.strip() for t in texts)
            driver.find_element(By.CSS_SELECTOR, "#settings summary").click()  # fold the settings away
            driver.execute_script("document.querySelectorAll('.messages').forEach(m => { m.scrollTop = 0; })")
            path = tmp_path / "serve.png"
            driver.save_screenshot(str(path))
            if os.environ.get("TULU_SCREENSHOT"):
                shutil.copyfile(path, os.environ["TULU_SCREENSHOT"])
    finally:
        driver.quit()
        engine.close()
