"""One data set's table in the thesis's layout: LaTeX (booktabs) and CSV."""

import pandas as pd

from dmbn.logs import logging_to
from dmbn.tables import summary, thesis_table

with logging_to(snakemake.log[0]):
    metrics = pd.read_csv(snakemake.input[0])
    rows = summary(metrics[metrics.dataset == snakemake.wildcards.dataset])
    csv, latex = thesis_table(rows, snakemake.params.decimals)
    csv.to_csv(snakemake.output.csv, index=False)
    with open(snakemake.output.tex, "w") as handle:
        handle.write(latex)
