"""Seeded stratified train/validation split of the training set (validation = ESM set)."""

import torch

from dmbn.data import Processed, stratified_split
from dmbn.logs import logging_to

with logging_to(snakemake.log[0]) as log:
    labels = Processed.load(snakemake.input[0]).y_train
    train, validation = stratified_split(labels, snakemake.params.fraction, snakemake.params.seed)
    log.info("%d train, %d validation", len(train), len(validation))
    torch.save({"train": train, "validation": validation}, snakemake.output[0])
