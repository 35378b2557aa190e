"""One data set's shift tables: CSV (unrounded), LaTeX and an HTML page each."""

from pathlib import Path

import pandas as pd

from dmbn.logs import logging_to
from dmbn.report import rst_to_html, write_page
from dmbn.shift_tables import shift_tables, shown
from dmbn.tables import html, styled, to_latex

p = snakemake.params
w = snakemake.wildcards
out = snakemake.output
with logging_to(snakemake.log[0]):
    scores = pd.read_csv(snakemake.input.scores)
    tables = shift_tables(scores[scores.dataset == w.dataset], p.confidence)
    for table, csv, tex, page, caption in zip(tables.values(), out.csv, out.tex, out.html, snakemake.input.captions):
        table.to_csv(csv, index=False)
        readable = shown(table, p.decimals)
        Path(tex).write_text(to_latex(readable, p.decimals))
        write_page(page, f"{w.study}: {w.dataset}, {Path(page).stem.split('_shift_')[-1]} under shift",
                   [html(styled(readable), p.decimals, rst_to_html(Path(caption).read_text()))])
