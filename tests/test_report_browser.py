"""The report as a reader sees it: a tiny quickstart study's `snakemake --report`, opened in headless
Chromium (Debian's `chromium`, driven by Playwright; no browser download). Every table must show
as an HTML table with the rows the study's CSVs say (counted and checked here with pandas), every
figure as an image with its caption below it, and the page must raise no console or page errors.

Skips where Playwright or Chromium is missing (`.ci/run` installs both where it can). Set
DMBN_SCREENSHOTS=<folder> to keep a screenshot of every view."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, quickstart_config, snakemake, write_config
from dmbn.names import BATCH_FREE_ARCHS, regime_label
from dmbn.report import ALL_DATASETS, FIGURES, RUN_FIGURES, item_label

pytestmark = [pytest.mark.slow, pytest.mark.browser]
STUDY = "quickstart"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The quickstart study for real (2 epochs, 2 seeds) and its report. DMBN_REPORT_WORKDIR=<dir>
    reuses (and completes) the study in that folder, for working on the report."""
    reuse = os.environ.get("DMBN_REPORT_WORKDIR")
    workdir = Path(reuse) if reuse else tmp_path_factory.mktemp("report")
    config = quickstart_config(workdir)
    config["studies"][STUDY]["seeds"] = [1, 2]
    path = workdir / "config.yaml" if reuse else write_config(workdir, config)
    if reuse:
        import yaml

        config = yaml.safe_load(path.read_text())
    snakemake(workdir, path, "--cores", "2", STUDY)
    report = workdir / f"results/{STUDY}/report.html"
    snakemake(workdir, path, "--report", str(report), STUDY)
    return workdir, config, report


class Reader:
    """A page on the report that records console and page errors and clicks as a reader would."""

    def __init__(self, browser, report: Path, shots: Path | None):
        self.page = browser.new_page(viewport={"width": 1600, "height": 1000})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.goto(report.as_uri())
        self.page.wait_for_selector("#app nav, #app ul", timeout=120_000)
        self.shots = shots

    def open_category(self, name: str) -> None:
        self.page.goto(self.page.url.split("#")[0])
        self.page.get_by_text(name, exact=True).first.click()

    def row(self, item: str, regime: str | None = None, arch: str | None = None):
        rows = self.page.locator("tr").filter(has_text=item)
        for text in (regime, arch):
            if text:  # a cell holding exactly this text ("mlp" is not "mlp-bnbfn")
                cell = self.page.locator("td", has_text=re.compile(f"^{re.escape(text)}$"))
                rows = rows.filter(has=cell)
        assert rows.count() == 1, f"{rows.count()} rows for {item} {regime} {arch}"
        return rows.first

    def view(self, item: str, regime: str | None = None, arch: str | None = None) -> None:
        self.row(item, regime, arch).locator("a").first.click()

    def shot(self, name: str) -> None:
        if self.shots:
            self.page.screenshot(path=str(self.shots / f"{name}.png"))


@pytest.fixture(scope="module")
def reader(browser, study):
    shots = os.environ.get("DMBN_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
    page = Reader(browser, study[2], Path(shots) if shots else None)
    yield page
    page.page.close()


def html_rows(reader: Reader) -> tuple[list[list[str]], str, str]:
    """The body rows (cell texts, row headers included), the caption and the notes of the HTML
    page shown in the report's frame."""
    frame = reader.page.frame_locator("iframe").first
    table = frame.locator("table")
    table.wait_for(timeout=120_000)
    rows = table.locator("tbody tr")
    cells = [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()] for i in range(rows.count())]
    notes = " ".join(frame.locator("p.note").all_inner_texts())
    return cells, table.locator("caption").inner_text(), notes


def shown_figure(reader: Reader, category: str, name: str, regime: str | None = None, arch: str | None = None):
    """Open figure item ``name`` (of ``regime`` and ``arch`` where several) under ``category``:
    its PNG has loaded and its caption starts as its .rst does. Returns the item's frame."""
    reader.open_category(category)
    reader.view(item_label(name), regime and regime_label(regime), arch)
    frame = reader.page.frame_locator("iframe").first
    image = frame.locator("figure img[src^='data:image/png']")
    image.wait_for(timeout=120_000)
    assert image.evaluate("i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100"), name
    caption = " ".join(frame.locator("figure figcaption").inner_text().split())
    assert caption.startswith(first_words(f"{name}.rst")), (name, caption)
    return frame


def first_words(rst: str, n: int = 6) -> str:
    """The caption's first words as a reader sees them (inline-literal marks dropped)."""
    text = Path(ROOT / "workflow/report" / rst).read_text().replace("``", "")
    return " ".join(text.split()[:n])


def test_report_loads_without_errors(reader):
    reader.shot("start")
    assert reader.errors == []


def test_thesis_table_shows_every_variant_with_its_seed_means(reader, study):
    workdir, config, _ = study
    metrics = pd.read_csv(workdir / f"results/{STUDY}/metrics.csv")
    bn = metrics[metrics.arch == "mlp"]
    reader.open_category("digits")
    reader.view(item_label("table"))
    rows, caption, _ = html_rows(reader)
    reader.shot("table")
    per_regime = bn.estimator.nunique() + 1  # every estimator of the BN network, and BN-BFN
    assert len(rows) == len(config["studies"][STUDY]["regimes"]) * per_regime
    assert {r[-1] for r in rows} == {str(len(config["studies"][STUDY]["seeds"]))}  # the n column
    for regime in ("mini", "full"):
        dmbn = bn[(bn.regime == regime) & (bn.estimator == "dmbn")].accuracy
        expected = f"{dmbn.mean():.3f} ± {dmbn.std():.3f}"
        dmbn_rows = [r for r in rows if "DMBN" in r]
        assert any(r[r.index("DMBN") + 1] == expected for r in dmbn_rows), (regime, expected, dmbn_rows)
    assert caption.startswith(first_words("table.rst"))
    assert reader.errors == []


@pytest.mark.parametrize("item, csv", [("paired", "comparisons/paired.csv"),
                                       ("metrics", "metrics.csv"),
                                       ("run_cards", "run_cards.csv")])
def test_study_tables_show_every_row_of_their_csv(reader, study, item, csv):
    workdir = study[0]
    path = workdir / f"results/{STUDY}" / csv
    if item == "run_cards" and not path.exists():
        pytest.skip("training writes no run cards yet (dmbn.names.RUN_CARD)")
    frame = pd.read_csv(path)
    reader.open_category(ALL_DATASETS)
    reader.view(item_label(item))
    rows, caption, notes = html_rows(reader)
    reader.shot(item)
    assert len(rows) == len(frame)
    assert [r[0] for r in rows] == frame.iloc[:, 0].astype(str).tolist()
    assert caption.startswith(first_words(f"{item}.rst"))
    assert reader.errors == []


def test_an_item_with_no_data_is_not_in_the_report(reader):
    """The thesis has no digits numbers: the quickstart's report lists no comparison with it
    (it used to show an empty table), and still lists the study's other items."""
    reader.open_category(ALL_DATASETS)
    reader.row(item_label("paired"))  # exactly one row: the listing is there
    assert reader.page.get_by_text(item_label("thesis")).count() == 0
    assert reader.errors == []


def figure_items(config):
    study = config["studies"][STUDY]
    for regime in study["regimes"]:
        for name in FIGURES:
            yield name, regime, "mlp"
        for arch in study["archs"]:
            for name in RUN_FIGURES:
                yield name, regime, arch


def test_every_figure_shows_with_its_caption(reader, study):
    config = study[1]
    seen = 0
    for name, regime, arch in figure_items(config):
        shown_figure(reader, "digits", name, regime, arch)
        if name in ("esm_dmbn_vs_bnbfn", "training") and regime == "mini":
            reader.shot(f"{name}_{arch}")
        seen += 1
    assert seen == len(list(figure_items(config)))
    assert reader.errors == []


def test_a_finished_studys_report_reads_in_a_browser(browser):
    """DMBN_STUDY_REPORT=<workdir>:<study>:<dataset> (e.g. /work/study-cnn:cnn:fashion-mnist): a
    finished study's own report (a long study CI never reruns), opened as a reader would: it loads
    without errors, its table shows each network's DMBN row as the mean ± std over seeds of its
    metrics.csv, and the run cards list every run."""
    if not os.environ.get("DMBN_STUDY_REPORT"):
        pytest.skip("set DMBN_STUDY_REPORT=<workdir>:<study>:<dataset> to check a finished study's report")
    folder, study, dataset = os.environ["DMBN_STUDY_REPORT"].split(":")
    results = Path(folder) / "results" / study
    reader = Reader(browser, results / "report.html", None)
    assert reader.errors == []
    metrics = pd.read_csv(results / "metrics.csv")
    reader.open_category(dataset)
    reader.view(item_label("table"))
    rows, caption, _ = html_rows(reader)
    assert caption.startswith(first_words("table.rst"))
    bn = [arch for arch in metrics.arch.unique() if arch not in BATCH_FREE_ARCHS]
    for arch in bn:
        dmbn = metrics[(metrics.arch == arch) & (metrics.estimator == "dmbn")].accuracy
        # one seed (a study published a seed at a time): the mean alone, there is no spread
        expected = f"{dmbn.mean():.3f}" + (f" ± {dmbn.std():.3f}" if len(dmbn) > 1 else "")
        assert any("DMBN" in r and expected in r and (len(dmbn) > 1 or "±" not in r) for r in rows), (arch, expected)
    cards = pd.read_csv(results / "run_cards.csv")
    reader.open_category(ALL_DATASETS)
    reader.view(item_label("run_cards"))
    rows, _, _ = html_rows(reader)
    assert len(rows) == len(cards) == metrics.groupby(["dataset", "regime", "arch", "seed"]).ngroups
    assert reader.errors == []
    reader.page.close()
