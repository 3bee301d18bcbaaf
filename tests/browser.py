"""Drive the system's headless Chromium with Selenium, for the report tests.

Only Debian's ``chromium`` and ``chromedriver`` are used, by path: nothing is
ever downloaded (no Selenium Manager, no ``playwright install``), so the
tests run on a closed network. ``missing()`` says why the browser cannot
run, for a skip; CI sets ``CI`` and must have it.

Also a command, to take the README's screenshot of a report:

    python tests/browser.py REPORT.html OUT.png [--open NAME]
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile

# Debian's paths; the environment may name others (never a download).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# What works as root in a container without network or GPU.
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
]
# Installed before any script of the page runs: errors, rejected promises
# and Content-Security-Policy violations (a blocked injected script is a bug
# even when blocked) all end up in window.__errors.
ERROR_TRAP = """
window.__errors = [];
window.addEventListener('error', function (e) {
  window.__errors.push('error: ' + (e.message || e.type) + ' at ' + (e.filename || '') + ':' + (e.lineno || ''));
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__errors.push('unhandled rejection: ' + e.reason);
});
document.addEventListener('securitypolicyviolation', function (e) {
  window.__errors.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});
"""


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} not found: apt-get install chromium chromium-driver ({package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


def start(profile_dir, width: int = 1280, height: int = 900):
    """A headless Chromium with a fresh profile in ``profile_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium fetch anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_TRAP})
    return driver


def open_report(driver, path, timeout: float = 30.0) -> None:
    """Load a report from disk and wait until all its rows are built."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"file://{os.path.abspath(path)}")
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body && document.body.getAttribute('data-ready') === '1'")
    )


def row(driver, name):
    """The row element (``.res``) of result ``name``."""
    return driver.execute_script(
        "var name = arguments[0];"
        "return Array.from(document.querySelectorAll('#rows .res')).find(function (res) {"
        "  return res.querySelector('.name').firstChild.nodeValue === name; }) || null;",
        name,
    )


def open_result(driver, name):
    """Click result ``name``'s row open; return the row."""
    element = row(driver, name)
    assert element is not None, f"no row for {name!r}"
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.find_element("css selector", ".line").click()
    return element


def page_errors(driver) -> list[str]:
    """Errors the page raised and SEVERE console messages since the last call."""
    errors = list(driver.execute_script("return window.__errors || []"))
    errors += [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return errors


def screenshot(driver, path, full_page: bool = True) -> None:
    """A PNG of the page, all of it when ``full_page`` (Selenium shows the
    viewport only)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not full_page:
        driver.save_screenshot(str(path))
        return
    # Rows off screen are not rendered (content-visibility: auto), and a
    # capture beyond the viewport does not scroll them into view.
    driver.execute_script(
        "if (!document.getElementById('shot-style')) { var s = document.createElement('style');"
        " s.id = 'shot-style'; s.textContent = '.res { content-visibility: visible !important; }';"
        " document.head.appendChild(s); }"
    )
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        },
    )
    with open(path, "wb") as handle:
        handle.write(base64.b64decode(shot["data"]))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Screenshot an HTML report in headless Chromium.")
    parser.add_argument("report")
    parser.add_argument("png")
    parser.add_argument("--open", action="append", default=[], help="expand this result first (repeatable)")
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args(argv)
    reason = missing()
    if reason:
        print(reason, file=sys.stderr)
        return 2
    profile = tempfile.mkdtemp(prefix="report-shot-")
    driver = start(profile, width=args.width)
    try:
        open_report(driver, args.report)
        for name in args.open:
            open_result(driver, name)
        driver.execute_script("window.scrollTo(0, 0)")
        from selenium.webdriver.common.action_chains import ActionChains

        # Away from the timeline, whose bars outline under the pointer.
        ActionChains(driver).move_to_element(driver.find_element("css selector", "h1")).perform()
        screenshot(driver, args.png)
        errors = page_errors(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
