"""The md5 manifest of a data set's corrupted sets."""

from dmbn.logs import logging_to
from dmbn.shift import manifest

with logging_to(snakemake.log[0]) as log:
    table = manifest(snakemake.input, snakemake.params.sets)
    table.to_csv(snakemake.output[0], index=False)
    log.info("%d sets", len(table))
