"""The study's long metrics table: one row per (dataset, regime, arch, seed, estimator)."""

from pathlib import Path

from dmbn.logs import logging_to
from dmbn.report import rst_to_html, write_page
from dmbn.runs import read_runs
from dmbn.tables import html, long_metrics, styled

with logging_to(snakemake.log[0]) as log:
    metrics = long_metrics(read_runs(snakemake.input.metrics, snakemake.params.runs))
    log.info("%d rows from %d runs", len(metrics), len(snakemake.input.metrics))
    metrics.to_csv(snakemake.output.csv, index=False)
    caption = rst_to_html(Path(snakemake.input.caption).read_text())
    table = html(styled(metrics), snakemake.params.decimals, caption)
    write_page(snakemake.output.html, f"{snakemake.wildcards.study}: metrics", [table])
