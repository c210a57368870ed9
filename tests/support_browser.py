"""Render a local HTML file in Debian's headless Chromium through Playwright: console
errors, the page text and a screenshot (no network: the report must be self-contained)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@dataclass
class Rendered:
    text: str
    console_errors: list[str]
    failed_requests: list[str]
    decision: str
    scenario_sections: int
    svg_charts: int


def render(page_file: Path, screenshot: Path) -> Rendered:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the browser tests

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            failed: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: failed.append(r.url))

            def refuse(route: Any) -> None:
                failed.append(route.request.url)
                route.abort()

            page.route("http*://**", refuse)
            page.goto(page_file.resolve().as_uri(), wait_until="load", timeout=30_000)
            page.screenshot(path=str(screenshot), full_page=True)
            return Rendered(
                text=page.inner_text("body"),
                console_errors=errors,
                failed_requests=failed,
                decision=page.inner_text("#decision"),
                scenario_sections=page.locator("section.scenario").count(),
                svg_charts=page.locator("svg.chart").count(),
            )
        finally:
            browser.close()
