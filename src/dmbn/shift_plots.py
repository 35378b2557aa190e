"""Figures of the distribution-shift study (matplotlib, as dmbn.plots)."""

from __future__ import annotations

import numpy as np
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
