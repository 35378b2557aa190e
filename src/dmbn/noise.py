"""How noisy a result is, measured two ways: seed to seed, and under a change that alters nothing
but float rounding (the same seeds trained with another thread count).

In full batch a 20-layer network amplifies rounding into different trajectories, so a difference
between estimators means something only against both spreads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .names import METRICS
from .tables import t_interval

CELL = ["dataset", "regime", "arch", "estimator"]


def rounding_noise(reference: pd.DataFrame, perturbed: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per cell and metric: the perturbed run minus the reference run of the *same seed*, over
    the seeds both have (n, mean, t-interval, mean and max |Δ|), beside the reference's
    seed-to-seed std over all its seeds."""
    keys = CELL + ["seed"]
    paired = reference.merge(perturbed, on=keys, suffixes=("", "_perturbed"))
    rows = []
    for cell, group in paired.groupby(CELL, sort=False):
        spread = reference
        for key, value in zip(CELL, cell):
            spread = spread[spread[key] == value]
        for metric in METRICS:
            diff = (group[f"{metric}_perturbed"] - group[metric]).to_numpy()
            low, high = t_interval(diff, confidence)
            rows.append({**dict(zip(CELL, cell)), "metric": metric, "seeds": len(diff),
                         "mean_difference": diff.mean(), "ci_low": low, "ci_high": high,
                         "mean_abs_difference": np.abs(diff).mean(), "max_abs_difference": np.abs(diff).max(),
                         "seed_std": spread[metric].std(), "seed_n": len(spread)})
    return pd.DataFrame(rows)
