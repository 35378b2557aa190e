"""Fetch one data set's archives: local copies by md5 first, then the network."""

import json

from dmbn.data import fetch
from dmbn.logs import logging_to

with logging_to(snakemake.log[0]):
    p = snakemake.params
    fetch(snakemake.wildcards.dataset, p.spec, p.root, p.sources, download=p.download)
    with open(snakemake.output[0], "w") as handle:
        json.dump({"dataset": snakemake.wildcards.dataset, "spec": p.spec}, handle, indent=2)
