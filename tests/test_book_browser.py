"""The HTML course book in headless Chromium with the network off: math is rendered (MathML), not raw TeX.

Builds the book for two small notebooks and opens a chapter page offline. Skips, saying why, when
chromium or playwright is missing (the system chromium is used; no Playwright browser download).
Set LABKIT_SCREENSHOTS=<folder> to keep a screenshot of the page.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest

from labkit.record import MIMETYPE
from labkit.report import write_html_report

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    sync_playwright = None

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chapter(path: Path, title: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(
        f"# {title}\n\nGradient descent: $\\theta \\leftarrow \\theta - \\eta \\nabla L(\\theta)$, with\n\n"
        "$$L(\\theta) = \\frac{1}{n}\\sum_{i=1}^{n} (y_i - \\hat y_i)^2$$"))
    cell = nbformat.v4.new_code_cell("lk.show(fig); lk.record('acc', 0.9)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("display_data", data={
                        "application/vnd.plotly.v1+json": {"data": [{"type": "scatter", "y": [3, 1, 2]}],
                                                           "layout": {"title": {"text": "a curve"}}},
                        "text/plain": "Figure"}),
                    nbformat.v4.new_output("display_data", data={
                        MIMETYPE: {"name": "acc", "value": 0.9}, "text/plain": "acc = 0.9"})]
    solution = nbformat.v4.new_code_cell("answer = 42", execution_count=2)
    solution.metadata = {"tags": ["solution"], "jupyter": {"source_hidden": True}}
    nb.cells += [cell, solution]
    nbformat.write(nb, path)
    return path


def test_chapter_page_renders_math_offline(tmp_path):
    if CHROMIUM is None or sync_playwright is None:
        pytest.skip("the book's browser test needs chromium and playwright")
    notebooks = [_chapter(tmp_path / "01_one.ipynb", "01 · One"), _chapter(tmp_path / "02_two.ipynb", "02 · Two")]
    rows = [{"status": "ok", "seconds": 1.0, "records": {"acc": 0.9}, "error": ""}] * 2
    write_html_report(notebooks, tmp_path / "book", rows)
    page_path = tmp_path / "book" / "02_two.html"
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context()
            context.set_offline(True)
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_path.as_uri())
            page.wait_for_selector(".js-plotly-plot", timeout=15_000)    # plotly.js, loaded from the folder
            assert page.locator("math").count() == 2
            assert page.locator('math[display="block"]').count() == 1
            assert page.locator("math mfrac").count() == 1
            box = page.locator('math[display="block"]').bounding_box()
            assert box and box["height"] > 20                            # laid out as a formula
            text = page.inner_text("main")
            assert "$$" not in text and "\\frac" not in text and "\\theta" not in text
            assert not page.locator("details.solution").get_attribute("open") is not None
            assert page.locator("nav.toc li.current").inner_text().strip() == "02 · Two"
            page.click("text=← 01 · One")
            page.wait_for_url("**/01_one.html")
            assert page.locator("table").last.inner_text().count("acc") == 1
            if os.environ.get("LABKIT_SCREENSHOTS"):
                page.screenshot(path=str(Path(os.environ["LABKIT_SCREENSHOTS"]) / "book_chapter.png"), full_page=True)
        finally:
            browser.close()
    assert all(url.startswith("file://") for url in requests), requests
