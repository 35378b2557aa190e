"""Render a published study's tables, and its batch-size figures, again from its committed files
with today's presentation (bold ties, the paired cells, small multiples): the thesis layout per
data set and the two comparison tables exactly as the workflow's ``table`` and ``compare`` rules
write them (``dmbn.study_tables``), and for a study with ``batch_sizes`` the three batch-size
figures as the ``batch_figures`` rule draws them (from ``metrics.csv`` and ``summaries/``).

    .venv/bin/python docs/rerender.py quickstart mlp        (or: make rerender)

Only presentation changes: the CSVs are rewritten from the same numbers and must come out equal
(``tests/test_tables.py`` regenerates every published table and compares). The per-regime figures
need per-run files that are not published: they keep the commit they were made at, as do the run
cards."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from dmbn.config import load_strict, paper_names, report_settings, study_batch_sizes  # noqa: E402
from dmbn.plots import batch_figures, save  # noqa: E402
from dmbn.readback import read_study_file  # noqa: E402
from dmbn.study_tables import TableFiles, write_paired, write_thesis_comparison, write_thesis_table  # noqa: E402
from dmbn.tables import thesis_covers, with_batch_size  # noqa: E402

BATCH_AXIS = "_batch_sizes"  # the batch_table rule's tables, left as they are
CAPTIONS = ROOT / "workflow/report"


def rerender(study: str, config: dict) -> None:
    folder = HERE / "results" / study
    metrics = read_study_file(folder / "metrics.csv")
    report = report_settings(config, study)
    datasets = sorted(metrics.dataset.unique())
    for dataset in datasets:
        out = folder / "tables" / dataset
        write_thesis_table(metrics, study, dataset, report["decimals"],
                           TableFiles(out.with_suffix(".csv"), out.with_suffix(".tex"),
                                      out.with_suffix(".html"), CAPTIONS / "table.rst"))
    names = paper_names(config, datasets)
    comparisons = folder / "comparisons"

    def files(name: str, caption: str) -> TableFiles:
        return TableFiles(*(comparisons / f"{name}.{ext}" for ext in ("csv", "tex", "html")), CAPTIONS / caption)

    paper = pd.read_csv(ROOT / "workflow/resources/paper_tables.csv")
    if thesis_covers(paper, names, metrics.regime.unique()):  # as the workflow: no rows, no item
        write_thesis_comparison(metrics, paper, study, names, report["decimals"], report["confidence"],
                                files("thesis", "thesis_comparison.rst"))
    write_paired(metrics, study, report["decimals"], report["confidence"], files("paired", "paired.rst"))
    print(f"{study}: {len(datasets)} thesis table(s) and the comparisons rendered in {folder}")
    if "batch_sizes" in config["studies"][study]:
        rerender_batch_figures(study, config, metrics)


def rerender_batch_figures(study: str, config: dict, metrics) -> None:
    """The batch-size figures' PNGs (``make publish`` copies PNGs only) from the published
    metrics and summaries, with the settings the ``batch_figures`` rule passes."""
    folder = HERE / "results" / study
    report = report_settings(config, study)
    esm, betas = (read_study_file(folder / "summaries" / f"{name}.csv") for name in ("esm_last_epoch", "beta_star"))
    for dataset in sorted(metrics.dataset.unique()):
        own = with_batch_size(metrics[metrics.dataset == dataset], study_batch_sizes(config, study, dataset))
        figures = batch_figures(own, esm[esm.dataset == dataset], betas[betas.dataset == dataset],
                                report["beta_layer"], list(report["esm_layers"]), report["confidence"], dataset)
        out = folder / "figures" / dataset / "batch_sizes"
        with tempfile.TemporaryDirectory() as scratch:  # the PDFs are not published
            for name, figure in figures.items():
                save(figure, out / f"{name}.png", Path(scratch) / f"{name}.pdf", report["figure_dpi"])
        print(f"{study}: {len(figures)} batch-size figures of {dataset} rendered in {out}")


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    config = load_strict(ROOT / "config.yaml")
    for study in argv:
        rerender(study, config)


if __name__ == "__main__":
    main(sys.argv[1:])
