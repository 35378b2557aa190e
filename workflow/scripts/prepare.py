"""Decode a fetched data set with torchvision into compact uint8 tensors."""

from dmbn.data import parse
from dmbn.logs import logging_to

with logging_to(snakemake.log[0]) as log:
    data = parse(snakemake.wildcards.dataset, snakemake.params.spec, snakemake.params.root)
    log.info("train %s, test %s, %d classes", tuple(data.x_train.shape), tuple(data.x_test.shape),
             data.num_classes)
    data.save(snakemake.output[0])
