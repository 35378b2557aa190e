"""Test-set metrics of a trained run for every estimator it carries, on the same weights."""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor, nn

from .metrics import classification_metrics
from .statistics import EstimatorStatistics


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, chunk: int = 4096) -> Tensor:
    """Eval-mode class predictions, ``chunk`` samples at a time."""
    model.eval()
    return torch.cat([model(part).argmax(dim=1) for part in x.split(chunk)])


def evaluate_estimators(model: nn.Module, statistics: EstimatorStatistics, x: Tensor, y: Tensor,
                        num_classes: int, chunk: int = 4096) -> pd.DataFrame:
    """One row per estimator: ``estimator, accuracy, sensitivity, specificity, f1``."""
    rows = []
    for name in statistics.names:
        with statistics.use(model, name):
            predictions = predict(model, x, chunk)
        rows.append({"estimator": name,
                     **classification_metrics(y.cpu().numpy(), predictions.cpu().numpy(), num_classes)})
    return pd.DataFrame(rows)
