"""The playground page in a real browser (Debian's headless Chromium driven by selenium) against
the real server on a tiny model, and its offline / off-switch guarantees without a browser."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reranker_server.api.playground import page
from server_helpers import serving
from tolerance import assert_scores_close

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
QUERY = "What is the capital of France?"
PASSAGES = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "Bananas are rich in potassium.",
]


@pytest.fixture(scope="module")
def url(tiny_qwen3_path) -> Iterator[str]:
    yield from serving(tiny_qwen3_path, api_key="play-key", served_model_name="tiny-qwen")


def _chromium() -> Iterator[Any]:
    """A headless Chromium session whose console and network logs can be read back."""
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("chromium and chromedriver are not installed (make system-deps as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1100,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from _chromium()


@pytest.fixture
def fresh_browser() -> Iterator[Any]:
    """A session of its own: Chromium remembers a failed /favicon.ico per session and would not
    ask again after another test's page load."""
    yield from _chromium()


def _fill(driver, *, query: str, passages: list[str], key: str, top_n: str = "") -> None:
    from selenium.webdriver.common.by import By

    for field_id, value in (
        ("query", query),
        ("passages", "\n".join(passages)),
        ("api_key", key),
        ("top_n", top_n),
    ):
        element = driver.find_element(By.ID, field_id)
        element.clear()
        element.send_keys(value)


def _wait(driver, condition, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def test_the_page_ranks_like_the_api(browser, url: str, tmp_path: Path, tiny_qwen3_path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/playground")
    _wait(browser, lambda d: d.find_element(By.ID, "model").text == "tiny-qwen")
    _fill(browser, query=QUERY, passages=PASSAGES, key="play-key")
    browser.find_element(By.ID, "submit").click()
    items = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
    shown = [
        (int(li.get_attribute("data-index")), float(li.get_attribute("data-score"))) for li in items
    ]
    texts = [li.find_element(By.CSS_SELECTOR, ".text").text for li in items]
    browser.save_screenshot(str(tmp_path / "playground.png"))
    assert (tmp_path / "playground.png").stat().st_size > 10_000
    api = httpx.post(
        f"{url}/v1/rerank",
        json={"query": QUERY, "documents": PASSAGES},
        headers={"Authorization": "Bearer play-key"},
        timeout=60,
    ).json()
    want = [(r["index"], r["relevance_score"]) for r in api["results"]]
    assert [i for i, _ in shown] == [i for i, _ in want]
    # the same server scoring the same request twice
    assert_scores_close(
        [s for _, s in shown], [s for _, s in want], tiny_qwen3_path, mode="same_kernel"
    )
    assert texts == [PASSAGES[i] for i, _ in want]
    status = browser.find_element(By.ID, "status").text
    assert re.search(r"3 of 3 passages ranked in \d+ ms, \d+ tokens", status), status


def _responses(driver) -> list[tuple[int, str]]:
    """(status, url) of every HTTP response the page received since the last read."""
    out = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.responseReceived":
            response = message["params"]["response"]
            out.append((response["status"], response["url"]))
    return out


def test_no_console_error_and_no_failed_request(fresh_browser, url: str) -> None:
    """Loading the page and ranking once: no error in the console (a missing /favicon.ico was
    the one) and no 4xx/5xx answer to any request the page made."""
    from selenium.webdriver.common.by import By

    browser = fresh_browser
    browser.get(f"{url}/playground")
    _wait(browser, lambda d: d.find_element(By.ID, "model").text == "tiny-qwen")
    _fill(browser, query=QUERY, passages=PASSAGES, key="play-key")
    browser.find_element(By.ID, "submit").click()
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
    responses = _responses(browser)
    assert (200, f"{url}/v1/rerank") in responses, responses  # the network log is read
    assert [r for r in responses if r[0] >= 400] == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_wrong_key_shows_the_servers_401(browser, url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/playground")
    _fill(browser, query=QUERY, passages=PASSAGES, key="wrong-key")
    browser.find_element(By.ID, "submit").click()
    error = _wait(browser, lambda d: d.find_element(By.ID, "error").text)
    assert error == "401: authorization: invalid credentials"  # the server's own message
    assert browser.find_elements(By.CSS_SELECTOR, "#results li") == []


def test_keyboard_and_phone_width(browser, url: str) -> None:
    """Ctrl+Enter submits from the passages box, top_n is honoured, and a 375-px window needs
    no horizontal scrolling."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.set_window_size(375, 800)
    try:
        browser.get(f"{url}/playground")
        _fill(browser, query=QUERY, passages=PASSAGES, key="play-key", top_n="2")
        box = browser.find_element(By.ID, "passages")
        box.send_keys(Keys.CONTROL, Keys.ENTER)
        items = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
        assert len(items) == 2
        width = browser.execute_script("return document.documentElement.scrollWidth")
        viewport = browser.execute_script("return window.innerWidth")
        assert width <= viewport, f"page is {width}px wide in a {viewport}px window"
        labels = {el.get_attribute("for") for el in browser.find_elements(By.TAG_NAME, "label")}
        assert {"query", "instruction", "passages", "top_n", "api_key"} <= labels
    finally:
        browser.set_window_size(1100, 900)


def test_the_page_is_self_contained() -> None:
    """Air-gapped clusters: no CDN, font or script from anywhere else; small enough to ship."""
    html = page()
    assert len(html.encode()) < 32_000
    external = re.findall(
        r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", html
    )
    assert not external, external
    assert 'fetch("v1/rerank"' in html  # the server's own API, relative to the page
    # its icon is inline: a browser never asks this server for /favicon.ico (a 404)
    assert re.search(r'<link rel="icon" href="data:image/svg\+xml,', html)


def test_headers_link_and_off_switch(url: str, tiny_qwen3_path) -> None:
    answer = httpx.get(f"{url}/playground", timeout=10)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    assert httpx.get(f"{url}/", timeout=10).json()["playground"] == "/playground"
    home = httpx.get(f"{url}/", headers={"Accept": "text/html"}, timeout=10).text
    assert 'href="playground"' in home
    for off in serving(tiny_qwen3_path, playground=False):
        assert httpx.get(f"{off}/playground", timeout=10).status_code == 404
        assert httpx.get(f"{off}/", timeout=10).json()["playground"] is None
