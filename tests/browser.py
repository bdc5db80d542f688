"""A small helper to drive headless Chromium with Selenium (Debian `chromium` +
`chromium-driver`). Selenium Manager is never asked to download a browser or driver."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMEDRIVER_CANDIDATES = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def _first(paths) -> str | None:
    return next((p for p in paths if os.path.exists(p) and os.access(p, os.X_OK)), None)


def chromium_path() -> str | None:
    return _first(CHROMIUM_CANDIDATES) or shutil.which("chromium")


def chromedriver_path() -> str | None:
    return _first(CHROMEDRIVER_CANDIDATES) or shutil.which("chromedriver")


def missing_reason() -> str | None:
    """Why a browser test cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install 'selenium>=4.20')"
    if not chromium_path():
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if not chromedriver_path():
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


@contextlib.contextmanager
def headless_chromium(width: int = 1400, height: int = 2000):
    """A headless Chromium WebDriver, quit on exit."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium_path()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
                "--hide-scrollbars", f"--window-size={width},{height}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # driver.get_log("browser")
    driver = webdriver.Chrome(service=Service(chromedriver_path()), options=opts)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def full_page_screenshot(driver, path: str) -> str:
    """The whole page (beyond the viewport) as a PNG at `path`, via the DevTools protocol."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
    })
    with open(path, "wb") as f:
        f.write(base64.b64decode(shot["data"]))
    return path
