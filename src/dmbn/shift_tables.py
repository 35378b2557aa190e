"""The distribution-shift study's tables, from the long ``results/<study>/shift/scores.csv``
(dataset, regime, arch, seed, corruption, severity, stream, family, row, accuracy):

* ``corruptions``: accuracy per row and corruption, the mean over severities and seeds;
* ``severities``: accuracy per row and severity, the mean over corruptions and seeds;
* ``relative``: each row's error relative to the default EMA, mCE-style (Hendrycks & Dietterich
  2019): per seed and corruption CE = Σ_severity error(row) / Σ_severity error(static-0.1), then the
  mean over corruptions, then the mean and Student-t interval over seeds;
* ``streams``: the rows that use test batches on each test order, and each non-i.i.d. order minus
  the i.i.d. one, paired over seeds.

Rows: a run's trained estimators first (their table order), then ``dmbn.names.SHIFT_RULES`` in
its order; test-time rows are read on ``REFERENCE_STREAM`` except in ``streams``. Regimes in the
tables' order (``regime_rank``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .names import (ANY_STREAM, DEFAULT_ESTIMATOR, SHIFT_SOURCE, SHIFT_TEST_TIME, regime_label, regime_rank,
                    shift_row_label, shift_row_rank)
from .tables import t_interval

REFERENCE_STREAM = "iid"  # the order test-time rows are compared with the source rows on
ROW_KEYS = ["regime", "arch", "family", "row"]
SHIFT_TABLES = ("corruptions", "severities", "relative", "streams")


def on_stream(scores: pd.DataFrame, stream: str = REFERENCE_STREAM) -> pd.DataFrame:
    """Every row once: the order-free rows, and the test-time rows on ``stream``."""
    return scores[(scores.stream == ANY_STREAM) | (scores.stream == stream)]


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in the tables' order: regime, architecture, then the shift rows' order."""
    keys = frame.apply(lambda r: (regime_rank(r.regime), r.arch, shift_row_rank(r.row, r.family)), axis=1)
    return frame.loc[keys.sort_values(kind="stable").index].reset_index(drop=True)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """The row keys as readers' columns: regime, architecture and the row's label first."""
    labels = pd.DataFrame({"Regime": frame.regime.map(regime_label), "Network": frame.arch,
                           "Row": [shift_row_label(r, f) for r, f in zip(frame.row, frame.family)]})
    return pd.concat([labels, frame.drop(columns=ROW_KEYS)], axis=1)


def _wide(scores: pd.DataFrame, column: str) -> pd.DataFrame:
    """Accuracy per row (ROW_KEYS) and value of ``column``: the mean over seeds of each seed's
    mean over the rest, with a ``mean`` column over the values of ``column``."""
    per_seed = scores.groupby([*ROW_KEYS, column, "seed"], sort=False).accuracy.mean()
    table = per_seed.groupby([*ROW_KEYS, column], sort=False).mean().unstack(column)
    table = table[list(dict.fromkeys(scores[column]))]
    table.columns = [str(c) for c in table.columns]
    table["mean"] = table.mean(axis=1)
    return _ordered(table.reset_index())


def corruption_table(scores: pd.DataFrame) -> pd.DataFrame:
    return _wide(on_stream(scores), "corruption")


def severity_table(scores: pd.DataFrame) -> pd.DataFrame:
    return _wide(on_stream(scores).sort_values("severity", kind="stable"), "severity")


def _interval(values: pd.Series, confidence: float) -> dict:
    low, high = t_interval(values.to_numpy(), confidence)
    return {"mean": values.mean(), "ci_low": low, "ci_high": high, "seeds": len(values)}


def relative_error(scores: pd.DataFrame, confidence: float, reference: str = DEFAULT_ESTIMATOR) -> pd.DataFrame:
    """mCE-style error relative to ``reference`` (a source row), per row: mean over seeds of the
    per-seed mean over corruptions of Σ_s error / Σ_s error(reference), with its interval."""
    errors = on_stream(scores).assign(error=lambda f: 1 - f.accuracy)
    sums = errors.groupby([*ROW_KEYS, "seed", "corruption"], sort=False).error.sum().reset_index()
    base = sums[(sums.family == SHIFT_SOURCE) & (sums.row == reference)]
    merged = sums.merge(base[["regime", "arch", "seed", "corruption", "error"]],
                        on=["regime", "arch", "seed", "corruption"], suffixes=("", "_reference"))
    merged["ce"] = merged.error / merged.error_reference
    per_seed = merged.groupby([*ROW_KEYS, "seed"], sort=False).ce.mean()
    rows = [{**dict(zip(ROW_KEYS, key)), **_interval(values, confidence)}
            for key, values in per_seed.groupby(ROW_KEYS, sort=False)]
    return _ordered(pd.DataFrame(rows)).assign(confidence=confidence, reference=reference)


def stream_table(scores: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """The test-time rows on each stream (mean over corruptions, severities and seeds), and each
    other stream minus ``REFERENCE_STREAM``, paired over seeds (mean and interval)."""
    streamed = scores[(scores.family == SHIFT_TEST_TIME) & (scores.stream != ANY_STREAM)]
    per_seed = streamed.groupby([*ROW_KEYS, "seed", "stream"], sort=False).accuracy.mean().unstack("stream")
    streams = list(dict.fromkeys(streamed.stream))
    rows = []
    for key, seeds in per_seed.groupby(ROW_KEYS, sort=False):
        row = {**dict(zip(ROW_KEYS, key)), "seeds": len(seeds)}
        row.update({order: seeds[order].mean() for order in streams})
        if REFERENCE_STREAM in streams:
            for order in streams:
                if order != REFERENCE_STREAM:
                    change = _interval(seeds[order] - seeds[REFERENCE_STREAM], confidence)
                    row.update({f"{order} - {REFERENCE_STREAM}": change["mean"],
                                f"{order} - {REFERENCE_STREAM} ci_low": change["ci_low"],
                                f"{order} - {REFERENCE_STREAM} ci_high": change["ci_high"]})
        rows.append(row)
    return _ordered(pd.DataFrame(rows)).assign(confidence=confidence)


def shown(table: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """A table for reading: labels for the row keys, intervals as "mean [low, high]"."""
    out = _labelled(table.drop(columns=["confidence", "reference"], errors="ignore"))
    for low in [c for c in out.columns if c.endswith("ci_low")]:
        name = low.removesuffix("ci_low").strip() or "mean"
        high = low.replace("ci_low", "ci_high")
        sign = "+" if " - " in name else ""  # differences carry their sign, ratios do not
        out[name] = [f"{m:{sign}.{decimals}f} [{lo:{sign}.{decimals}f}, {hi:{sign}.{decimals}f}]"
                     if not np.isnan(lo) else f"{m:{sign}.{decimals}f}"
                     for m, lo, hi in zip(out[name], out[low], out[high])]
        out = out.drop(columns=[low, high])
    return out


def shift_tables(scores: pd.DataFrame, confidence: float) -> dict[str, pd.DataFrame]:
    """Every shift table of one data set's scores, by name (``SHIFT_TABLES``)."""
    return {"corruptions": corruption_table(scores), "severities": severity_table(scores),
            "relative": relative_error(scores, confidence), "streams": stream_table(scores, confidence)}
