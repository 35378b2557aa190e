"""The study page (results/<study>/index.html) as a reader on a laptop sees it: built from the
published quickstart's tables and figures exactly as the `study_page` rule builds it, opened in
headless Chromium at 1366×768 and 1920×1080. No table may be wider than its box (a wider one
would scroll, hiding columns), the row labels stay in view, and every figure is at least 700 px
wide. DMBN_SCREENSHOTS=<folder> keeps a screenshot at each width."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import ROOT
from dmbn.report import FIGURES, write_figure_pages
from dmbn.study_page import write_study_page

pytestmark = pytest.mark.browser
PUBLISHED = ROOT / "docs/results/quickstart"
WIDTHS = [(1366, 768), (1920, 1080)]


def published_item_pages(folder: Path) -> list[Path]:
    """The quickstart's item pages in the rule's reading order: its table, the figures of each
    regime (pages made from the published PNGs as the `figures` rule makes them), the comparisons."""
    pages = sorted((PUBLISHED / "tables").glob("*.html"))
    for regime_folder in sorted(p for p in (PUBLISHED / "figures/digits").iterdir() if p.is_dir()):
        pngs = [regime_folder / f"{name}.png" for name in FIGURES if (regime_folder / f"{name}.png").exists()]
        htmls = [folder / f"{regime_folder.name}-{png.stem}.html" for png in pngs]
        write_figure_pages([str(p) for p in pngs], [str(h) for h in htmls],
                           [str(ROOT / f"workflow/report/{png.stem}.rst") for png in pngs], f"digits · {regime_folder.name}")
        pages += htmls
    return pages + sorted((PUBLISHED / "comparisons").glob("*.html"))  # the paired comparisons only:
    # the thesis has no digits numbers, so the quickstart has no comparison with it


def layout(browser, page_file: Path, width: int, height: int, shot: str | None = None) -> dict:
    """What a reader at ``width`` px sees: each table's width against its box's, whether the row
    labels stick, each figure's width, and the page's errors."""
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")
    seen = page.evaluate("""() => ({
        tables: [...document.querySelectorAll('.scroll')].map(box => ({
            heading: box.closest('section').querySelector('h2').innerText,
            table: box.querySelector('table').scrollWidth, box: box.clientWidth,
            sticky: getComputedStyle(box.querySelector('tbody tr > :first-child')).position})),
        figures: [...document.querySelectorAll('figure img')].map(img => img.getBoundingClientRect().width),
        pageWidth: document.documentElement.scrollWidth})""")
    if shot:
        page.screenshot(path=shot, full_page=False)
    page.close()
    return {**seen, "errors": errors}


def too_wide(seen: dict) -> list[str]:
    return [f"{t['heading']}: table {t['table']} px in a {t['box']} px box" for t in seen["tables"]
            if t["table"] > t["box"]]


@pytest.fixture(scope="module")
def study_page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("page")
    page = folder / "index.html"
    write_study_page(page, "quickstart", published_item_pages(folder))
    return page


@pytest.mark.parametrize("width, height", WIDTHS, ids=[f"{w}px" for w, _ in WIDTHS])
def test_every_table_fits_and_every_figure_is_readable_on_a_laptop(browser, study_page, width, height):
    shots = os.environ.get("DMBN_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    seen = layout(browser, study_page, width, height, shot=f"{shots}/study_page_{width}.png" if shots else None)
    assert len(seen["tables"]) == 2  # the digits table and the paired comparisons
    assert too_wide(seen) == []
    assert {t["sticky"] for t in seen["tables"]} == {"sticky"}  # row labels stay in view
    regimes = [p for p in (PUBLISHED / "figures/digits").iterdir() if p.is_dir()]
    assert len(seen["figures"]) == len(regimes) * len(FIGURES)
    assert min(seen["figures"]) >= 700, seen["figures"]
    assert seen["pageWidth"] <= width  # nothing makes the page itself scroll sideways
    assert seen["errors"] == []


def test_the_check_fails_on_a_table_made_too_wide_on_purpose(browser, study_page, tmp_path):
    """The same check on the same page with one table of 40 wide columns added: it must say so."""
    wide = "".join(f"<th>column number {i} of a table that is far too wide</th>" for i in range(40))
    item = tmp_path / "wide.html"
    item.write_text(f"<!DOCTYPE html><html><body><h1>a too wide table</h1><table><thead><tr>{wide}</tr>"
                    f"</thead><tbody><tr><td>row</td></tr></tbody></table></body></html>")
    page = tmp_path / "index.html"
    write_study_page(page, "quickstart", [*published_item_pages(tmp_path), item])
    seen = layout(browser, page, 1366, 768)
    (problem,) = too_wide(seen)
    assert problem.startswith("a too wide table: table ")
