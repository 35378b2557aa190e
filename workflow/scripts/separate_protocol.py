"""Each network trained for one static β beside the bank's static-β row of the same seed."""

from dmbn.logs import logging_to
from dmbn.runs import read_runs
from dmbn.tables import separate_against_bank

with logging_to(snakemake.log[0]) as log:
    table = separate_against_bank(read_runs(snakemake.input.metrics, snakemake.params.runs))
    log.info("%d networks trained for one β, beside their seed's bank run", len(table))
    table.to_csv(snakemake.output[0], index=False)
