import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dmbn.noise import rounding_noise


def frame(seeds, accuracies):
    return pd.DataFrame({"dataset": "d", "regime": "full", "arch": "mlp", "estimator": "dmbn",
                         "seed": seeds, "accuracy": accuracies, "sensitivity": 0.5,
                         "specificity": 0.9, "f1": 0.4})


def test_rounding_noise_pairs_the_same_seeds_and_reports_the_seed_spread():
    reference = frame([1, 2, 3, 4], [0.80, 0.85, 0.83, 0.90])
    perturbed = frame([1, 2, 3], [0.82, 0.84, 0.86])  # seed 4 not rerun
    row = rounding_noise(reference, perturbed).set_index("metric").loc["accuracy"]
    diff = np.array([0.02, -0.01, 0.03])
    assert row.seeds == 3 and row.mean_difference == pytest.approx(diff.mean())
    low, high = stats.t.interval(0.95, 2, loc=diff.mean(), scale=stats.sem(diff))
    assert (row.ci_low, row.ci_high) == pytest.approx((low, high))
    assert row.mean_abs_difference == pytest.approx(0.02) and row.max_abs_difference == pytest.approx(0.03)
    assert row.seed_std == pytest.approx(np.std([0.80, 0.85, 0.83, 0.90], ddof=1)) and row.seed_n == 4
    unchanged = rounding_noise(reference, perturbed).set_index("metric").loc["f1"]
    assert unchanged.max_abs_difference == 0 and unchanged.ci_low == unchanged.ci_high == 0
