"""Rounding noise: this study's runs minus the reference study's runs of the same seeds."""

from dmbn.logs import logging_to
from dmbn.noise import rounding_noise
from dmbn.readback import read_study_file

with logging_to(snakemake.log[0]) as log:
    reference, perturbed = (read_study_file(snakemake.input[k]) for k in ("reference", "perturbed"))
    noise = rounding_noise(reference, perturbed, snakemake.params.confidence)
    log.info("%d cells over %d paired seeds", len(noise), noise.seeds.max() if len(noise) else 0)
    noise.to_csv(snakemake.output[0], index=False)
