"""Figures of the distribution-shift study (matplotlib, as dmbn.plots)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plots import plt

EXAMPLE = 0  # the test image shown: the first of the official test split, the same in every cell


def examples_grid(clean: np.ndarray, sets: dict[tuple[str, int], np.ndarray], dataset: str) -> Figure:
    """Rows: corruptions; columns: the clean image, then each severity."""
    corruptions = list(dict.fromkeys(c for c, _ in sets))
    severities = sorted({s for _, s in sets})
    fig, axes = plt.subplots(len(corruptions), len(severities) + 1, squeeze=False,
                             figsize=(1.1 * (len(severities) + 1) + 1.6, 1.1 * len(corruptions) + 0.6))
    for row, corruption in enumerate(corruptions):
        images = [clean[EXAMPLE]] + [sets[corruption, s][EXAMPLE] for s in severities]
        for col, image in enumerate(images):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("clean" if col == 0 else f"severity {severities[col - 1]}", fontsize=8)
        axes[row, 0].set_ylabel(corruption.replace("_", " "), rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(f"{dataset}: test image {EXAMPLE} under each corruption", fontsize=9)
    return fig


def _panels(regimes: list[str], width: float = 4.2) -> tuple[Figure, np.ndarray]:
    fig, axes = plt.subplots(1, len(regimes), squeeze=False, figsize=(width * len(regimes) + 2.5, 3.6),
                             sharey=True)
    return fig, axes[0]


def _row_style(row: str, family: str) -> dict:
    """A trained estimator's style from the registry (per-β kinds: the default's grey for
    static-0.1, thin grey otherwise), a test-time rule's from a fixed cycle."""
    from .names import ESTIMATORS, SHIFT_RULES, SHIFT_TEST_TIME, estimator_kind

    if family == SHIFT_TEST_TIME:
        colours = ("#2ca02c", "#ff7f0e", "#1f77b4", "#e377c2", "#111111")
        return dict(color=colours[list(SHIFT_RULES).index(row) % len(colours)], linestyle="-", marker="o",
                    linewidth=1.8)
    look = dict(ESTIMATORS[estimator_kind(row)].look)
    if "cmap" in look:
        look.pop("cmap")
        look.update(color="#444444" if row == "static-0.1" else "#bbbbbb", linewidth=1.6 if row == "static-0.1" else 0.8)
    return look


def severity_curves(severities: pd.DataFrame, dataset: str) -> Figure:
    """Accuracy against severity (the ``severities`` table: mean over corruptions and seeds), a
    panel per regime; test-time rows on the i.i.d. stream."""
    from .names import regime_label, shift_row_label

    columns = [c for c in severities.columns if c.isdigit()]
    regimes = list(dict.fromkeys(severities.regime))
    fig, axes = _panels(regimes)
    several = severities.arch.nunique() > 1  # then each line names its network
    for ax, regime in zip(axes, regimes):
        for row in severities[severities.regime == regime].itertuples():
            label = shift_row_label(row.row, row.family) + (f" ({row.arch})" if several else "")
            ax.plot([int(c) for c in columns], [severities.loc[row.Index, c] for c in columns],
                    label=label, **_row_style(row.row, row.family))
        ax.set_title(regime_label(regime), fontsize=9)
        ax.set_xlabel("severity")
        ax.set_xticks([int(c) for c in columns])
    axes[0].set_ylabel("test accuracy (mean over corruptions, seeds)")
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=7, frameon=False)
    fig.suptitle(f"{dataset}: accuracy under corruption against severity", fontsize=10)
    return fig


def esm_vs_accuracy(scores: pd.DataFrame, esm: pd.DataFrame, dataset: str) -> Figure:
    """Each trained estimator's ESM_μ against the shifted set (mean over BN layers) against its
    accuracy on that set: a point per estimator and severity (means over corruptions and seeds),
    a panel per regime. Does the estimator closer to the target win?"""
    from .names import SHIFT_SOURCE, regime_label

    source = scores[scores.family == SHIFT_SOURCE].rename(columns={"row": "estimator"})
    layer_mean = esm.groupby(["regime", "arch", "seed", "corruption", "severity", "estimator"]).esm_mu.mean()
    joined = source.merge(layer_mean.reset_index(), on=["regime", "arch", "seed", "corruption", "severity", "estimator"])
    points = joined.groupby(["regime", "arch", "estimator", "severity"])[["esm_mu", "accuracy"]].mean().reset_index()
    regimes = list(dict.fromkeys(points.regime))
    fig, axes = _panels(regimes, width=3.8)
    for ax, regime in zip(axes, regimes):
        part = points[points.regime == regime]
        shade = ax.scatter(part.esm_mu, part.accuracy, c=part.severity, cmap="viridis", s=14, vmin=1, vmax=5)
        ax.set_title(regime_label(regime), fontsize=9)
        ax.set_xlabel("ESM$_\\mu$ on the shifted set (mean over layers)")
    axes[0].set_ylabel("test accuracy on the shifted set")
    fig.colorbar(shade, ax=list(axes), label="severity")
    fig.suptitle(f"{dataset}: trained estimators, closeness to the shifted statistics against accuracy", fontsize=10)
    return fig
