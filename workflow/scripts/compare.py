"""The thesis's numbers beside ours, and paired comparisons (DMBN against its rivals)."""

from pathlib import Path

import pandas as pd

from dmbn.logs import logging_to
from dmbn.readback import read_study_file
from dmbn.report import rst_to_html, write_page
from dmbn.tables import html, paired_comparisons, styled, summary, thesis_comparison, thesis_gaps, to_latex

p = snakemake.params
i = snakemake.input
o = snakemake.output
study = snakemake.wildcards.study
with logging_to(snakemake.log[0]):
    metrics = read_study_file(i.metrics)
    paper = pd.read_csv(i.paper)
    versus_thesis = thesis_comparison(summary(metrics), paper, p.paper_names, p.confidence)
    paired = paired_comparisons(metrics, p.confidence)
    pages = ((versus_thesis, o.thesis, o.thesis_tex, o.thesis_html, i.thesis_caption,
              "the thesis's numbers beside ours", thesis_gaps(metrics, paper, p.paper_names)),
             (paired, o.paired, o.paired_tex, o.paired_html, i.paired_caption, "paired comparisons", []))
    for frame, csv, tex, page, caption, title, notes in pages:
        frame.to_csv(csv, index=False)
        Path(tex).write_text(to_latex(frame, p.decimals))
        table = html(styled(frame), p.decimals, rst_to_html(Path(caption).read_text()))
        write_page(page, f"{study}: {title}", [table], notes)
