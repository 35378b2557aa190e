"""One run's scores on one corruption's sets, every severity (checked by md5 before use)."""

import torch

from dmbn.data import Processed, load_run_data, training_moments
from dmbn.files import load_pt
from dmbn.logs import logging_to
from dmbn.models import build_model
from dmbn.readback import load_weights
from dmbn.shift import read_set, score_corruption
from dmbn.statistics import EstimatorStatistics

w = snakemake.wildcards
settings = snakemake.params.shift
with logging_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    device = snakemake.params.device
    files = dict(zip(snakemake.input.sets[0::2], snakemake.input.sets[1::2]))  # .npy -> .md5
    sets = {severity: read_set(npy, md5) for severity, (npy, md5) in zip(settings["severities"], files.items())}
    data = load_run_data(snakemake.input.data, snakemake.input.split, w.regime).to(device)
    mean, std = training_moments(Processed.load(snakemake.input.data), w.regime,
                                 load_pt(snakemake.input.split)["train"])
    model = build_model(w.arch, data.input_shape, data.num_classes, **snakemake.params.model).to(device)
    load_weights(model, snakemake.input.model, device)
    statistics = EstimatorStatistics.load(snakemake.input.statistics, device)
    scores, esm = score_corruption(model, statistics, sets, data.y_test, mean.to(device), std.to(device),
                                   w.corruption, settings, settings["batch_size"])
    log.info("\n%s", scores.to_string(index=False))
    scores.to_csv(snakemake.output.scores, index=False)
    esm.to_csv(snakemake.output.esm, index=False)
