"""Training curves and ESM per layer and epoch of one architecture's runs (PNG and PDF)."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.plots import run_figures, save, where
from dmbn.report import write_figure_pages
from dmbn.runs import read_runs

p = snakemake.params
w = snakemake.wildcards
with logging_to(snakemake.log[0]):
    history, esm = (read_runs(snakemake.input[name], p.runs) for name in ("history", "esm"))
    figures = run_figures(history, esm, p.estimator, w.dataset, w.regime, w.arch)
    for png, pdf in zip(snakemake.output.png, snakemake.output.pdf):
        save(figures[Path(png).stem], png, pdf, p.dpi)
    write_figure_pages(snakemake.output.png, snakemake.output.html, snakemake.input.captions,
                       where(w.dataset, w.regime, w.arch))
