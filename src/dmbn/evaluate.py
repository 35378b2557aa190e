"""Test-set metrics of a trained run for every estimator it carries, on the same weights."""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from .metrics import classification_metrics
from .bn_state import preserved
from .statistics import EstimatorStatistics, batchnorm_layers


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, chunk: int = 4096) -> Tensor:
    """Eval-mode class predictions, ``chunk`` samples at a time."""
    model.eval()
    return torch.cat([model(part).argmax(dim=1) for part in x.split(chunk)])


def prediction_batch_sizes(n: int, batch_size: int | None) -> list[int]:
    """Sizes of consecutive test batches of ``batch_size`` (None: one batch of all ``n``); a
    trailing batch of one sample, which has no variance, joins the batch before it."""
    sizes = [min(batch_size or n, n - start) for start in range(0, n, batch_size or n)]
    if len(sizes) > 1 and sizes[-1] == 1:
        sizes[-2:] = [sizes[-2] + 1]
    return sizes


@torch.no_grad()
def predict_with_batch_statistics(model: nn.Module, x: Tensor, batch_size: int | None) -> Tensor:
    """Prediction-time BN (Nado et al. 2020): class predictions where every BN layer normalises
    each test batch (``prediction_batch_sizes``, in order) with that batch's own mean and biased variance, as
    in training. Only the BN layers are in train mode, at momentum 0 so their running statistics
    stay; buffers, momenta, batch counters and every module's mode are restored afterwards
    (``bn_state.preserved``)."""
    with preserved(model):
        model.eval()
        for _, bn in batchnorm_layers(model):
            bn.train()
            bn.momentum = 0.0
        return torch.cat([model(part).argmax(dim=1)
                          for part in x.split(prediction_batch_sizes(len(x), batch_size))])


def evaluate_estimators(model: nn.Module, statistics: EstimatorStatistics, x: Tensor, y: Tensor,
                        num_classes: int, chunk: int = 4096) -> pd.DataFrame:
    """One row per estimator: ``estimator, accuracy, sensitivity, specificity, f1``; the estimators
    with statistics first, then those that normalise with test-batch statistics."""
    predictions = {}
    for name in statistics.names:
        with statistics.use(model, name):
            predictions[name] = predict(model, x, chunk)
    for name, batch_size in statistics.prediction_batches.items():
        predictions[name] = predict_with_batch_statistics(model, x, batch_size)
    return pd.DataFrame([{"estimator": name, **classification_metrics(
        y.cpu().numpy(), predicted.cpu().numpy(), num_classes)} for name, predicted in predictions.items()])
