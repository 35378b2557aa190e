"""One data set's shift figures: accuracy against severity, ESM on the shifted set against accuracy."""

from pathlib import Path

import pandas as pd

from dmbn.logs import logging_to
from dmbn.plots import save
from dmbn.report import write_figure_pages
from dmbn.shift_plots import esm_vs_accuracy, severity_curves

w = snakemake.wildcards
with logging_to(snakemake.log[0]):
    scores, esm = (pd.read_csv(snakemake.input[k]) for k in ("scores", "esm"))
    scores, esm = scores[scores.dataset == w.dataset], esm[esm.dataset == w.dataset]
    figures = {"shift_severity_curves": severity_curves(pd.read_csv(snakemake.input.severities), w.dataset),
               "shift_esm_vs_accuracy": esm_vs_accuracy(scores, esm, w.dataset)}
    for png, pdf in zip(snakemake.output.png, snakemake.output.pdf):
        save(figures[Path(png).stem], png, pdf, snakemake.params.dpi)
    write_figure_pages(snakemake.output.png, snakemake.output.html, snakemake.input.captions,
                       f"{w.dataset} · every corruption")
