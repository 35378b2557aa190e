"""Compact per-run summaries for publication: enough to check every published number from
committed files without the runs' full logs.

* ``beta_star``: β* of every run, one row per (run, choosing kind, BN layer), one column per
  epoch; the kinds are DMBN and its variants (``estimator``).
* ``esm_last_epoch``: ESM_μ at each run's last epoch, one row per (run, estimator), one column
  per BN layer.
* ``training_last_epoch``: train loss and train accuracy at each run's last epoch, one row per
  run: whether the network trained at all, which no estimator can repair.
* ``training_curves``: every epoch's train loss, train accuracy and accuracy on the ESM set of
  each row: how training went, and what an lr or epoch count is chosen on (never the test set).
* ``precise_spread``: per run with PreciseBN and BN layer, the variance of the batch means over
  PreciseBN's batches against pooled variance / B (issue #27: does the spread of the batch means
  matter?); runs without the file (no PreciseBN, or trained before it existed) have no rows.
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


def _last_epoch(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each run's own last epoch (a shorter run keeps its own)."""
    return frame[frame.epoch == frame.groupby(_run_keys(frame), sort=False).epoch.transform("max")]


def esm_last_epoch_summary(esm: pd.DataFrame) -> pd.DataFrame:
    """``esm`` (run keys, epoch, layer, estimator, esm_mu, …) -> run keys, epoch, estimator, then
    ESM_μ per BN layer (``l1``…) at each run's last epoch."""
    runs = _run_keys(esm)
    wide = _last_epoch(esm).pivot_table(index=runs + ["epoch", "estimator"], columns="layer", values="esm_mu",
                             aggfunc="first", sort=False)
    wide.columns = [f"l{layer}" for layer in wide.columns]
    return wide.reset_index()


def training_last_epoch_summary(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` (run keys, epoch, train_loss, train_accuracy, …) -> run keys, epoch,
    train_loss, train_accuracy at each run's last epoch."""
    columns = _run_keys(history) + ["epoch", "train_loss", "train_accuracy"]
    return _last_epoch(history)[columns].reset_index(drop=True)


def training_curves_summary(history: pd.DataFrame) -> pd.DataFrame:
    """``history`` (run keys, epoch, train_loss, train_accuracy, esm_accuracy_<row>…) -> the same,
    every epoch of every run, in run and epoch order."""
    keys = _run_keys(history)
    return history.sort_values([*keys, "epoch"], kind="stable").reset_index(drop=True)[
        [*keys, *[c for c in history.columns if c not in keys]]]


SPREAD_COLUMNS = ["layer", "batch_size", "batches", "var_of_batch_means", "pooled_var", "ratio"]


def precise_spread_summary(spread: pd.DataFrame | None) -> pd.DataFrame:
    """``spread`` (run keys, then ``precise_spread.csv``'s columns; None: no run has the file)
    -> the same in run and layer order, with its columns even when empty."""
    if spread is None:
        return pd.DataFrame(columns=[*RUN_KEYS, *SPREAD_COLUMNS])
    return spread.sort_values([*_run_keys(spread), "layer"], kind="stable").reset_index(drop=True)
