"""Compact summaries of every run of a study: β* per layer and epoch, last-epoch ESM_μ, last-epoch
training loss and accuracy, every epoch's (the training curves), and PreciseBN's batch-mean spread."""

from dmbn.logs import logging_to
from dmbn.runs import read_present_runs, read_runs
from dmbn.summaries import (beta_star_summary, esm_last_epoch_summary, precise_spread_summary,
                            training_curves_summary, training_last_epoch_summary)

with logging_to(snakemake.log[0]) as log:
    runs = snakemake.params.runs
    betas = beta_star_summary(read_runs(snakemake.input.betas, runs))
    esm = esm_last_epoch_summary(read_runs(snakemake.input.esm, runs))
    betas.to_csv(snakemake.output.beta_star, index=False, float_format="%.2g")
    esm.to_csv(snakemake.output.esm_last_epoch, index=False, float_format="%.5g")
    history = read_runs(snakemake.input.history, runs)
    training_last_epoch_summary(history).to_csv(snakemake.output.training_last_epoch, index=False, float_format="%.4f")
    training_curves_summary(history).to_csv(snakemake.output.training_curves, index=False, float_format="%.4f")
    spread = precise_spread_summary(read_present_runs(snakemake.params.precise_spread, runs))
    spread.to_csv(snakemake.output.precise_spread, index=False, float_format="%.5g")
    log.info("%d β* rows, %d ESM rows from %d runs", len(betas), len(esm), len(runs))
