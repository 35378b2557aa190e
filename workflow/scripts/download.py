"""Fetch one data set's archives: local copies by md5 first, then the network."""

import json

from dmbn.data import fetch
from dmbn.logs import logging_to

with logging_to(snakemake.log[0]):
    p, config, dataset = snakemake.params, snakemake.config, snakemake.wildcards.dataset
    # Where to fetch from comes from the config, not params (the rule's docstring says why); the
    # data set's whole entry carries its mirrors, and agrees with params.spec on all else.
    fetch(dataset, config["datasets"][dataset], p.root, config.get("local_sources", []),
          download=config.get("download", True))
    with open(snakemake.output[0], "w") as handle:
        json.dump({"dataset": dataset, "spec": p.spec}, handle, indent=2)
