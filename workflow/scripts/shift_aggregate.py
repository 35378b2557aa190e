"""A study's shift scores and ESM, every run and corruption, as two long tables, and ESM_μ per
BN layer as the wide summary that is published."""

import pandas as pd

from dmbn.logs import logging_to
from dmbn.shift import esm_mu_by_layer

LABELS = ("dataset", "regime", "arch", "seed")

with logging_to(snakemake.log[0]) as log:
    tables = {}
    for kind in ("scores", "esm"):
        frames = [pd.read_csv(path).assign(**{k: run[k] for k in LABELS})
                  for path, run in zip(snakemake.input[kind], snakemake.params.runs)]
        table = pd.concat(frames, ignore_index=True)
        tables[kind] = table[[*LABELS, *[c for c in table.columns if c not in LABELS]]]
        tables[kind].to_csv(snakemake.output[kind], index=False)
        log.info("%s: %d rows", kind, len(table))
    esm_mu_by_layer(tables["esm"]).to_csv(snakemake.output.esm_mu, index=False, float_format="%.5g")
