"""The study's long metrics table: one row per (dataset, regime, arch, seed, estimator)."""

from dmbn.logs import logging_to
from dmbn.runs import read_runs
from dmbn.tables import long_metrics

with logging_to(snakemake.log[0]) as log:
    metrics = long_metrics(read_runs(snakemake.input, snakemake.params.runs))
    log.info("%d rows from %d runs", len(metrics), len(snakemake.input))
    metrics.to_csv(snakemake.output[0], index=False)
