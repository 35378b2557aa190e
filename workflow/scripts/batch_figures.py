"""The batch-size figures of one data set of a study with `batch_sizes` (PNG and PDF)."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.plots import batch_figures, save
from dmbn.readback import read_study_file
from dmbn.report import write_figure_pages
from dmbn.tables import with_batch_size

p = snakemake.params
w = snakemake.wildcards
with logging_to(snakemake.log[0]):
    frames = {name: read_study_file(snakemake.input[name]) for name in ("metrics", "esm", "betas")}
    metrics, esm, betas = (frame[frame.dataset == w.dataset] for frame in frames.values())
    figures = batch_figures(with_batch_size(metrics, p.batch_sizes), esm, betas, p.beta_layer,
                            list(p.esm_layers), p.confidence, w.dataset)
    for png, pdf in zip(snakemake.output.png, snakemake.output.pdf):
        save(figures[Path(png).stem], png, pdf, p.dpi)
    write_figure_pages(snakemake.output.png, snakemake.output.html, snakemake.input.captions,
                       f"{w.dataset} · every batch size")
