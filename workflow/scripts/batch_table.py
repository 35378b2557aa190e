"""One data set's metrics against batch size: CSV (every metric, intervals), LaTeX and HTML
(test accuracy, mean ± half-width of the interval)."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.report import rst_to_html, write_page
from dmbn.tables import batch_axis, batch_axis_latex, batch_axis_wide, html, styled, with_batch_size

p = snakemake.params
w = snakemake.wildcards
with logging_to(snakemake.log[0]):
    metrics = read_study_file(snakemake.input.metrics)
    metrics = with_batch_size(metrics[metrics.dataset == w.dataset], p.batch_sizes)
    axis = batch_axis(metrics, p.confidence)
    axis.round(p.decimals + 3).to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.tex).write_text(batch_axis_latex(batch_axis_wide(axis), p.decimals))
    caption = rst_to_html(Path(snakemake.input.caption).read_text())
    table = html(styled(batch_axis_wide(axis, latex=False).reset_index()), p.decimals, caption)
    write_page(snakemake.output.html, f"{w.study}: {w.dataset}, test accuracy against batch size", [table])
