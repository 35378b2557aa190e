"""Generate one corrupted test set and record its md5."""

from dmbn.logs import logging_to
from dmbn.shift import corrupted_test_set, write_set

w = snakemake.wildcards
with logging_to(snakemake.log[0]) as log:
    images = corrupted_test_set(snakemake.input[0], w.corruption, int(w.severity), snakemake.params.seed)
    digest = write_set(images, snakemake.output.images, snakemake.output.md5)
    log.info("%s at severity %s: %d images, md5 %s", w.corruption, w.severity, len(images), digest)
