"""One data set's table in the thesis's layout: LaTeX (booktabs), HTML and CSV."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.report import rst_to_html, write_page
from dmbn.tables import html, summary, thesis_styler, thesis_table

w = snakemake.wildcards
decimals = snakemake.params.decimals
with logging_to(snakemake.log[0]):
    metrics = read_study_file(snakemake.input.metrics)
    rows = summary(metrics[metrics.dataset == w.dataset])
    csv, latex = thesis_table(rows, decimals)
    csv.to_csv(snakemake.output.csv, index=False)
    Path(snakemake.output.tex).write_text(latex)
    caption = rst_to_html(Path(snakemake.input.caption).read_text())
    table = html(thesis_styler(rows), decimals, caption)
    write_page(snakemake.output.html, f"{w.study}: {w.dataset}, the thesis's layout", [table])
