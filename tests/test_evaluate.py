"""Evaluation per estimator: each row is the metrics of the model with that estimator's statistics
loaded by hand into a copy's BatchNorm buffers."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, recall_score

from dmbn.evaluate import evaluate_estimators, predict
from dmbn.models import build_model
from dmbn.statistics import EstimatorStatistics, LayerLayout

WIDTH, DEPTH, CLASSES = 8, 3, 4


def model_and_data():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 1, 6), CLASSES, depth=DEPTH, width=WIDTH)
    x = torch.randn(203, 1, 1, 6)
    y = torch.randint(0, CLASSES, (203,))
    return model, x, y


def hand_statistics(model, x) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Flat per-channel statistics of DEPTH layers of WIDTH channels: ``base`` the batch statistics
    of ``x`` (read off a train-mode copy with momentum 1), ``shifted`` differs from it in layer 2
    only, ``copy`` equals it."""
    twin = copy.deepcopy(model).train()
    bns = [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    for bn in bns:
        bn.momentum = 1.0
    with torch.no_grad():
        twin(x)
    mean = torch.cat([bn.running_mean for bn in bns])
    var = torch.cat([bn.running_var for bn in bns])
    shifted, scaled = mean.clone(), var.clone()
    shifted[WIDTH:2 * WIDTH] += var[WIDTH:2 * WIDTH].sqrt()
    scaled[WIDTH:2 * WIDTH] *= 3
    return {"base": (mean, var), "shifted": (shifted, scaled), "copy": (mean.clone(), var.clone())}


def by_hand(model, mean, var, x) -> np.ndarray:
    """Predictions of a copy whose BN buffers are set layer by layer to (mean, var), in eval mode."""
    twin = copy.deepcopy(model)
    bns = [m for m in twin.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(bns) == DEPTH
    with torch.no_grad():
        for i, bn in enumerate(bns):
            bn.running_mean.copy_(mean[i * WIDTH:(i + 1) * WIDTH])
            bn.running_var.copy_(var[i * WIDTH:(i + 1) * WIDTH])
    twin.eval()
    with torch.no_grad():
        return twin(x).argmax(dim=1).numpy()


def metrics_of(y, predictions, classes: int = CLASSES) -> dict[str, float]:
    """The thesis's metrics via scikit-learn and a confusion count (independent of dmbn.metrics)."""
    labels = list(range(classes))
    specificity = [np.sum((y != c) & (predictions != c)) / np.sum(y != c) for c in labels]
    return {"accuracy": accuracy_score(y, predictions),
            "sensitivity": recall_score(y, predictions, labels=labels, average="macro", zero_division=0),
            "specificity": float(np.mean(specificity)),
            "f1": f1_score(y, predictions, labels=labels, average="macro", zero_division=0)}


@pytest.mark.parametrize("chunk", [4096, 50])
def test_each_row_is_the_model_with_that_estimators_statistics_loaded_by_hand(chunk):
    model, x, y = model_and_data()
    model.train()  # as training leaves it: evaluation must switch to eval mode itself
    before = [t.clone() for t in model.state_dict().values()]
    named = hand_statistics(model, x)
    statistics = EstimatorStatistics(list(named), torch.stack([m for m, _ in named.values()]),
                                     torch.stack([v for _, v in named.values()]), LayerLayout.of(model))
    sizes = []
    hook = model.register_forward_hook(lambda module, inputs, output: sizes.append(len(inputs[0])))
    rows = evaluate_estimators(model, statistics, x, y, CLASSES, chunk=chunk)
    hook.remove()
    assert max(sizes) == min(chunk, len(x)) and sum(sizes) == 3 * len(x)  # chunked, every sample once
    assert rows.estimator.tolist() == ["base", "shifted", "copy"]
    expected = {name: by_hand(model, mean, var, x) for name, (mean, var) in named.items()}
    assert (expected["base"] != expected["shifted"]).any()  # the statistics change predictions
    for _, row in rows.iterrows():
        reference = metrics_of(y.numpy(), expected[row.estimator])
        for metric, value in reference.items():
            assert row[metric] == pytest.approx(value, abs=1e-12), (row.estimator, metric)
    pd.testing.assert_series_equal(rows.iloc[0].drop("estimator"), rows.iloc[2].drop("estimator"),
                                   check_names=False)
    assert rows.iloc[0].accuracy != rows.iloc[1].accuracy  # the rows differ where statistics do
    # the model's own buffers are restored
    for a, b in zip(before, model.state_dict().values()):
        assert torch.equal(a, b)


def test_predict_is_eval_mode_argmax_in_chunks():
    model, x, _ = model_and_data()
    model.train()
    got = predict(model, x, chunk=17)
    model.eval()
    with torch.no_grad():
        assert torch.equal(got, model(x).argmax(dim=1))
