"""The thesis's numbers beside ours (CSV, LaTeX, HTML)."""

import pandas as pd

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.study_tables import TableFiles, write_thesis_comparison

p = snakemake.params
o = snakemake.output
with logging_to(snakemake.log[0]):
    write_thesis_comparison(read_study_file(snakemake.input.metrics), pd.read_csv(snakemake.input.paper),
                            snakemake.wildcards.study, p.paper_names, p.decimals, p.confidence,
                            TableFiles(o.csv, o.tex, o.html, snakemake.input.caption))
