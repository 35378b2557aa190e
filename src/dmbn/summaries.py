"""Compact per-run summaries for publication: enough to check every published number from
committed files without the runs' full logs.

* ``beta_star``: β* of every run, one row per (run, choosing kind, BN layer), one column per
  epoch; the kinds are DMBN and its variants (``estimator``).
* ``esm_last_epoch``: ESM_μ at each run's last epoch, one row per (run, estimator), one column
  per BN layer.
"""

from __future__ import annotations

import pandas as pd

from .runs import RUN_KEYS


def _run_keys(frame: pd.DataFrame) -> list[str]:
    return [k for k in RUN_KEYS if k in frame.columns]


def beta_star_summary(betas: pd.DataFrame) -> pd.DataFrame:
    """``betas`` (run keys, epoch, layer, estimator, beta) -> run keys, estimator, layer, then β*
    per epoch (``e1``…)."""
    keys = _run_keys(betas) + [k for k in ("estimator", "layer") if k in betas.columns]
    wide = betas.pivot_table(index=keys, columns="epoch", values="beta", aggfunc="first")
    wide.columns = [f"e{epoch}" for epoch in wide.columns]
    return wide.reset_index()


def esm_last_epoch_summary(esm: pd.DataFrame) -> pd.DataFrame:
    """``esm`` (run keys, epoch, layer, estimator, esm_mu, …) -> run keys, epoch, estimator, then
    ESM_μ per BN layer (``l1``…) at each run's last epoch."""
    runs = _run_keys(esm)
    last = esm.groupby(runs, sort=False).epoch.transform("max")
    final = esm[esm.epoch == last]
    wide = final.pivot_table(index=runs + ["epoch", "estimator"], columns="layer", values="esm_mu",
                             aggfunc="first", sort=False)
    wide.columns = [f"l{layer}" for layer in wide.columns]
    return wide.reset_index()
