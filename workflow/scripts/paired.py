"""Paired comparisons over seeds (CSV, LaTeX, HTML)."""

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.study_tables import TableFiles, write_paired

p = snakemake.params
o = snakemake.output
with logging_to(snakemake.log[0]):
    write_paired(read_study_file(snakemake.input.metrics), snakemake.wildcards.study, p.decimals, p.confidence,
                 TableFiles(o.csv, o.tex, o.html, snakemake.input.caption))
