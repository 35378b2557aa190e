"""The thesis's numbers beside ours, and paired comparisons (DMBN against its rivals)."""

import pandas as pd

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.study_tables import TableFiles, write_comparisons

p = snakemake.params
i = snakemake.input
o = snakemake.output
with logging_to(snakemake.log[0]):
    write_comparisons(read_study_file(i.metrics), pd.read_csv(i.paper), snakemake.wildcards.study,
                      p.paper_names, p.decimals, p.confidence,
                      thesis=TableFiles(o.thesis, o.thesis_tex, o.thesis_html, i.thesis_caption),
                      paired=TableFiles(o.paired, o.paired_tex, o.paired_html, i.paired_caption))
