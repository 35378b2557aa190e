"""The thesis's numbers beside ours, and paired comparisons (DMBN against its rivals)."""

import pandas as pd

from dmbn.logs import logging_to
from dmbn.tables import paired_comparisons, summary, thesis_comparison, to_latex

p = snakemake.params
with logging_to(snakemake.log[0]):
    metrics = pd.read_csv(snakemake.input.metrics)
    versus_thesis = thesis_comparison(summary(metrics), pd.read_csv(snakemake.input.paper), p.paper_names)
    paired = paired_comparisons(metrics, p.confidence)
    for frame, csv, tex in ((versus_thesis, snakemake.output.thesis, snakemake.output.thesis_tex),
                            (paired, snakemake.output.paired, snakemake.output.paired_tex)):
        frame.to_csv(csv, index=False)
        with open(tex, "w") as handle:
            handle.write(to_latex(frame, p.decimals))
