"""The grid of example corrupted test images of one data set, at the sets a study is scored on."""

from dmbn.data import Processed
from dmbn.logs import logging_to
from dmbn.plots import save
from dmbn.report import write_figure_pages
from dmbn.shift import read_set
from dmbn.shift_plots import examples_grid

p = snakemake.params
w = snakemake.wildcards
with logging_to(snakemake.log[0]):
    files = iter(snakemake.input.sets)  # .npy, .md5 per corruption and severity, in the grid's order
    sets = {(c, s): read_set(next(files), next(files)) for c, s in p.grid}
    clean = Processed.load(snakemake.input.data).x_test[:, 0].numpy()
    save(examples_grid(clean, sets, w.dataset), snakemake.output.png, snakemake.output.pdf, p.dpi)
    write_figure_pages([snakemake.output.png], [snakemake.output.html], [snakemake.input.caption],
                       f"{w.dataset} · the official test set")
