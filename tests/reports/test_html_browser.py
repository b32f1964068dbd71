"""The HTML report in a real headless Chromium: charts render, nothing is fetched, screenshot.

Uses Debian's chromium (``apt-get install chromium``; ``make test`` installs it when it can).
Without it the test is skipped on a developer machine and FAILS in CI (``CI`` set).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tracegrade.analysis import RegressionReport
from tracegrade.analysis.examples import FailingSpan
from tracegrade.reports import regressions_html

CHROMIUM = os.environ.get("TRACEGRADE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("TRACEGRADE_SCREENSHOTS", "")) if os.environ.get(
    "TRACEGRADE_SCREENSHOTS") else None


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser binary, or a skip (locally) / a failure (in CI) saying how to get it."""
    if Path(CHROMIUM).is_file() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = (f"headless Chromium not found at {CHROMIUM}: install it with "
               "`sudo apt-get install -y chromium` (make test does this when run as root)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def test_html_report_renders_offline_with_its_charts(
        chromium: str, report: RegressionReport, examples: dict[str, list[FailingSpan]],
        tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "report.html"
    page_file.write_text(regressions_html(report, examples), encoding="utf-8")
    requests: list[str] = []
    failed: list[str] = []
    console_errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("console", lambda msg: console_errors.append(msg.text)
                if msg.type == "error" else None)
        page.goto(page_file.as_uri(), wait_until="load")
        charts = page.locator("svg.chart")
        assert charts.count() == 5  # four graders and the slice that regressed on its own
        # Each chart drew its points and interval bars with real, visible geometry.
        for index in range(charts.count()):
            box = charts.nth(index).bounding_box()
            assert box is not None and box["width"] > 400 and box["height"] > 200
            assert charts.nth(index).locator("circle").count() >= 1
        regressed = page.locator("figure", has_text="tool_ok").locator("circle")
        assert regressed.count() == 3  # r0, r1, r2
        # Red: tool_ok's candidate (regressed overall) and the eu slice's candidate.
        assert page.locator("circle[fill='#c62828']").count() == 2
        assert page.locator("figure", has_text="reply_ok [environment=eu]").count() == 1
        # Trace data is text, not markup: the hostile output shows literally.
        assert page.locator("pre", has_text='<script>alert("owned")</script>').count() >= 1
        assert page.evaluate("() => document.scripts.length") == 0
        shot = page.screenshot(full_page=True)
        browser.close()
    assert requests == [page_file.as_uri()]  # the page itself, nothing else
    assert failed == [] and console_errors == []
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "regressions-report.png").write_bytes(shot)
