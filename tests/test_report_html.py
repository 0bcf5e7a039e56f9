"""report.html in a real browser: headless Chromium (Debian's) driven by Playwright.

It must render, every plot image must load (they are embedded), the console must stay
free of errors, tables must sort, and user strings must stay text. A screenshot is kept
in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from quantbench.report import render_report
from test_report import RUN, make_results

ARTIFACTS = Path(__file__).parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
EVIL = (
    '<img src=x onerror="window.pwned=1">[x](javascript:window.pwned=2)'
    "x`<img src=x onerror=window.pwned=3>``"  # backticks that look like a code span
)


def _chromium() -> str:
    path = os.environ.get("QUANTBENCH_CHROMIUM") or shutil.which("chromium")
    path = path or shutil.which("chromium-browser")
    if not path:
        msg = "no Chromium (Debian package 'chromium'; .ci/run installs it)"
        if os.environ.get("QUANTBENCH_REQUIRE_BROWSER"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def page_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    results = make_results()
    for c in results:
        if c.model == "mobilenet_v2":
            c.model = EVIL  # a hostile model name: must be shown, never run
    render_report(out, RUN, results)
    html = out / "report.html"
    # self-contained: the page must not need the plots folder beside it
    alone = tmp_path_factory.mktemp("alone") / "report.html"
    shutil.copy(html, alone)
    return alone


@pytest.mark.slow  # seconds of real processes or runs: the everyday suite stays under 5 minutes
def test_report_html_in_chromium(page_report: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = _chromium()
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1366, "height": 900})  # a laptop screen
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_report.as_uri(), wait_until="load")
        assert page.title().startswith("quantbench report")
        n_img = page.locator("img").count()
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.alt)"
        )
        assert n_img >= 8 and broken == []
        # the recommendation table comes first and sorts on a click
        first = page.locator("h2").first.inner_text()
        assert first == "Recommendation"
        table = page.locator("table").nth(1)
        table.locator("th").nth(0).click()
        col = table.locator("tbody tr td:first-child").all_inner_texts()
        assert col == sorted(col, key=str.lower)
        table.locator("th").nth(0).click()
        assert table.locator("tbody tr td:first-child").all_inner_texts() == sorted(
            col, key=str.lower, reverse=True
        )
        # the hostile name is text on the page, and nothing of it ran
        assert page.evaluate("window.pwned === undefined")
        assert "onerror=" in page.locator("main").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "report-html.png"
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot), full_page=False)
        page.emulate_media(media="print")  # printable: still renders, no errors
        page.pdf(path=str(ARTIFACTS / "report-html.pdf"))
        browser.close()
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # no network
    assert shot.read_bytes()[:4] == b"\x89PNG"
