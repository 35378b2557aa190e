"""One data set's table in the thesis's layout: LaTeX (booktabs), HTML and CSV."""

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.study_tables import TableFiles, write_thesis_table

w = snakemake.wildcards
o = snakemake.output
with logging_to(snakemake.log[0]):
    metrics = read_study_file(snakemake.input.metrics)
    write_thesis_table(metrics, w.study, w.dataset, snakemake.params.decimals,
                       TableFiles(o.csv, o.tex, o.html, snakemake.input.caption))
