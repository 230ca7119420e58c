"""A headless Chromium (Debian's, driven by selenium) for the playground's browser tests, and
the few page actions they share."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# Runs before any of the page's own script: every Content-Security-Policy violation the browser
# reports (a blocked inline script or handler, a blocked load) lands in window.cspViolations.
RECORD_CSP_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


def chromium() -> Iterator[Any]:
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
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_CSP_VIOLATIONS}
    )
    try:
        yield driver
    finally:
        driver.quit()


def fill(driver, *, query: str, passages: list[str], key: str, top_n: str = "") -> None:
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


def wait(driver, condition, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(condition)


def csp_violations(driver) -> list[str]:
    return driver.execute_script("return window.cspViolations")
