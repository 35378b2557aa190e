"""Figures 5.1-5.3 and three more for one data set and regime (PNG and PDF)."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.plots import save, study_figures, where
from dmbn.readback import read_study_file
from dmbn.report import write_figure_pages
from dmbn.runs import read_runs

p = snakemake.params
w = snakemake.wildcards
with logging_to(snakemake.log[0]):
    esm, betas, layers = (read_runs(snakemake.input[name], p.runs) for name in ("esm", "betas", "layers"))
    metrics = read_study_file(snakemake.input.metrics)
    metrics = metrics[(metrics.dataset == w.dataset) & (metrics.regime == w.regime)]
    figures = study_figures(esm, betas, layers, metrics, p.beta_layer, list(p.esm_layers),
                            w.dataset, w.regime)
    for png, pdf in zip(snakemake.output.png, snakemake.output.pdf):
        save(figures[Path(png).stem], png, pdf, p.dpi)
    write_figure_pages(snakemake.output.png, snakemake.output.html, snakemake.input.captions,
                       where(w.dataset, w.regime))
