"""Test-set metrics of every estimator of one run."""

import torch

from dmbn.allocator import allocator_settings
from dmbn.data import load_run_data
from dmbn.evaluate import evaluate_estimators
from dmbn.logs import logging_to
from dmbn.models import build_model
from dmbn.readback import load_weights
from dmbn.statistics import EstimatorStatistics

w = snakemake.wildcards
with logging_to(snakemake.log[0]) as log:
    torch.set_num_threads(snakemake.threads)
    log.info("glibc allocator: %s", allocator_settings() or "its defaults")  # timings depend on it
    device = snakemake.params.device
    data = load_run_data(snakemake.input.data, snakemake.input.split, w.regime).to(device)
    model = build_model(w.arch, data.input_shape, data.num_classes, **snakemake.params.model).to(device)
    load_weights(model, snakemake.input.model, device)
    statistics = EstimatorStatistics.load(snakemake.input.statistics, device)
    metrics = evaluate_estimators(model, statistics, data.x_test, data.y_test, data.num_classes)
    log.info("\n%s", metrics.to_string(index=False))
    metrics.to_csv(snakemake.output[0], index=False)
