"""The playground page in a real browser (Debian's headless Chromium driven by selenium) against
the real server on a tiny model, and its offline / off-switch guarantees without a browser."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from browser_helpers import chromium, csp_violations, fill, wait
from reranker_contract import PLAYGROUND_PATH
from reranker_server.api.playground import ASSETS, SCRIPT_PATH, STYLE_PATH, asset_text
from server_helpers import serving
from tolerance import assert_scores_close

QUERY = "What is the capital of France?"
PASSAGES = [
    "Paris is the capital and largest city of France.",
    "Berlin is the capital of Germany.",
    "Bananas are rich in potassium.",
]


@pytest.fixture(scope="module")
def url(tiny_qwen3_path) -> Iterator[str]:
    yield from serving(tiny_qwen3_path, api_key="play-key", served_model_name="tiny-qwen")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


@pytest.fixture
def fresh_browser() -> Iterator[Any]:
    """A session of its own: Chromium remembers a failed /favicon.ico per session and would not
    ask again after another test's page load."""
    yield from chromium()


def test_the_page_ranks_like_the_api(browser, url: str, tmp_path: Path, tiny_qwen3_path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/playground")
    wait(browser, lambda d: d.find_element(By.ID, "model").text == "tiny-qwen")
    fill(browser, query=QUERY, passages=PASSAGES, key="play-key")
    browser.find_element(By.ID, "submit").click()
    items = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
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
    assert csp_violations(browser) == []


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
    """Loading the page and ranking once under its enforced Content-Security-Policy: no error in
    the console (a missing /favicon.ico was the one; a blocked inline script would be another),
    no policy violation and no 4xx/5xx answer to any request the page made."""
    from selenium.webdriver.common.by import By

    browser = fresh_browser
    browser.get(f"{url}/playground")
    wait(browser, lambda d: d.find_element(By.ID, "model").text == "tiny-qwen")
    fill(browser, query=QUERY, passages=PASSAGES, key="play-key")
    browser.find_element(By.ID, "submit").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
    responses = _responses(browser)
    assert (200, f"{url}/v1/rerank") in responses, responses  # the network log is read
    assert {(200, f"{url}{SCRIPT_PATH}"), (200, f"{url}{STYLE_PATH}")} <= set(responses)
    assert [r for r in responses if r[0] >= 400] == []
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    assert csp_violations(browser) == []


def test_the_browser_refuses_to_frame_the_page(fresh_browser, url: str, tmp_path: Path) -> None:
    """Clickjacking: another site framing the playground (to lure a click or a typed API key)
    gets nothing; Chromium enforces `frame-ancestors 'none'` and says so in the console."""
    from selenium.webdriver.common.by import By

    framing = tmp_path / "framing.html"
    framing.write_text(f'<iframe id="victim" src="{url}/playground"></iframe>')
    fresh_browser.get(framing.as_uri())
    wait(fresh_browser, lambda d: d.find_element(By.ID, "victim"))

    def refused(driver) -> list[str]:
        log = [e["message"] for e in driver.get_log("browser")]
        return [m for m in log if "frame-ancestors 'none'" in m and "blocked" in m]

    assert wait(fresh_browser, refused, timeout=30)


def test_a_wrong_key_shows_the_servers_401(browser, url: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{url}/playground")
    fill(browser, query=QUERY, passages=PASSAGES, key="wrong-key")
    browser.find_element(By.ID, "submit").click()
    error = wait(browser, lambda d: d.find_element(By.ID, "error").text)
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
        fill(browser, query=QUERY, passages=PASSAGES, key="play-key", top_n="2")
        box = browser.find_element(By.ID, "passages")
        box.send_keys(Keys.CONTROL, Keys.ENTER)
        items = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#results li"))
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
    texts = {asset.file_name: asset_text(asset.file_name) for asset in ASSETS.values()}
    assert sum(len(text.encode()) for text in texts.values()) < 32_000
    for name, text in texts.items():
        external = re.findall(
            r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""",
            text,
        )
        assert not external, (name, external)
    html, script = texts["playground.html"], texts["playground.js"]
    assert 'fetch("v1/rerank"' in script  # the server's own API, relative to the page
    # its icon is inline: a browser never asks this server for /favicon.ico (a 404)
    assert re.search(r'<link rel="icon" href="data:image/svg\+xml,', html)


def test_the_page_has_no_inline_script_or_style() -> None:
    """Everything the page runs or styles it with comes from its own files, named by relative
    URLs (behind an ingress path prefix `/x/playground` loads `/x/playground.js`)."""
    html = asset_text("playground.html")
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # no inline <script> block
    assert re.findall(r"\son[a-z]+\s*=", html) == []  # no onclick= and the like
    assert re.findall(r"<style|\sstyle\s*=", html) == []
    sources = re.findall(r'<script src="([^"]+)"', html)
    sheets = re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert sources == ["playground.js"] and sheets == ["playground.css"]
    assert urljoin(PLAYGROUND_PATH, sources[0]) == SCRIPT_PATH
    assert urljoin(PLAYGROUND_PATH, sheets[0]) == STYLE_PATH


def _policy(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        (PLAYGROUND_PATH, "text/html"),
        (SCRIPT_PATH, "text/javascript"),
        (STYLE_PATH, "text/css"),
    ],
)
def test_the_page_and_its_files_carry_the_security_headers(
    url: str, path: str, content_type: str
) -> None:
    """Only this origin's script (no inline script, no `unsafe-inline`), no framing, no
    sniffing, no referrer, and the same caching for the page and its files."""
    answer = httpx.get(f"{url}{path}", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == content_type
    policy = _policy(answer.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'none'"]
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-cache"


def test_headers_link_and_off_switch(url: str, tiny_qwen3_path) -> None:
    assert httpx.get(f"{url}/", timeout=10).json()["playground"] == "/playground"
    home = httpx.get(f"{url}/", headers={"Accept": "text/html"}, timeout=10).text
    assert 'href="playground"' in home
    for off in serving(tiny_qwen3_path, playground=False):
        for path in ASSETS:
            answer = httpx.get(f"{off}{path}", timeout=10)
            assert answer.status_code == 404, path
            assert answer.json()["error"]["type"] == "not_found"
        assert httpx.get(f"{off}/", timeout=10).json()["playground"] is None
