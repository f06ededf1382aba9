"""Headless Chromium for checking viewer pages (the tests, the docs' screenshots, load-time runs).

Uses the system's browser and driver (Debian: ``apt-get install chromium chromium-driver``) through
selenium (the ``[test]`` extra); selenium is told to stay offline, so nothing is ever downloaded.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def why_not() -> str | None:
    """None when a headless Chromium can be driven here, else what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'lstmkit[test]')"
    if not (os.path.isfile(CHROMIUM) and os.path.isfile(DRIVER)):
        return "no Chromium and driver here (Debian: apt-get install chromium chromium-driver)"
    return None


@contextmanager
def headless_chromium(width: int = 1400, height: int = 900):
    """A selenium driver of a fresh headless Chromium with an empty profile, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    previous = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # the system's driver only: selenium must not fetch one
    profile = tempfile.mkdtemp(prefix="lstmkit-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = None
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        yield driver
    finally:
        if driver is not None:
            driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        if previous is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = previous


def open_page(driver, path: Path, frame: bool = False, timeout: float = 30.0) -> float:
    """Load a viewer page (inside the first iframe when ``frame``), wait until its script is ready.

    Returns the milliseconds from navigation start to ready, as the page measured them.
    """
    driver.get(Path(path).resolve().as_uri())
    if frame:
        driver.switch_to.frame(driver.find_element("tag name", "iframe"))
    deadline = time.monotonic() + timeout
    while not driver.execute_script("return document.body.dataset.ready === '1'"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path}: the page was not ready after {timeout} s: {console_errors(driver)}")
        time.sleep(0.05)
    return float(driver.execute_script("return window.lstmkitView.readyMs"))


def console_errors(driver) -> list[str]:
    """The console's errors since the last call (reading empties the browser's log)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def hover(driver, step: int) -> dict[str, str]:
    """Put the mouse on step ``step``; the hover panel's values by name (gates; "p:..." predictions)."""
    from selenium.webdriver.common.action_chains import ActionChains

    span = driver.find_element("css selector", f'#lv-text span[data-t="{step}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", span)
    ActionChains(driver).move_to_element(span).perform()
    cells = driver.find_elements("css selector", "#lv-hover td.lv-value")
    return {cell.get_attribute("data-name"): cell.text for cell in cells}
