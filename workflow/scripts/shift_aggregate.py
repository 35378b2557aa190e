"""A study's shift scores and ESM, every run and corruption, as two long tables."""

import pandas as pd

from dmbn.logs import logging_to

LABELS = ("dataset", "regime", "arch", "seed")

with logging_to(snakemake.log[0]) as log:
    for kind in ("scores", "esm"):
        frames = [pd.read_csv(path).assign(**{k: run[k] for k in LABELS})
                  for path, run in zip(snakemake.input[kind], snakemake.params.runs)]
        table = pd.concat(frames, ignore_index=True)
        table[[*LABELS, *[c for c in table.columns if c not in LABELS]]].to_csv(snakemake.output[kind], index=False)
        log.info("%s: %d rows", kind, len(table))
