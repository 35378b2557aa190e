"""The study's figures (matplotlib). Each takes tidy frames labelled by run and returns a Figure.

Frames: ``esm`` (arch, seed, epoch, layer, estimator, esm_mu, esm_sigma), ``betas`` (arch, seed,
epoch, layer, beta), ``layers`` (arch, seed, layer, name, channels, position) and ``metrics``
(the study's long metrics table).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .names import BATCH_NORM_ARCHS, DEFAULT_ESTIMATOR  # noqa: E402
from .tables import EXTRA_VARIANTS, label, with_variants  # noqa: E402


def primary_arch(archs) -> str:
    """The network whose estimators the figures show: the first BN (not BN-BFN) architecture."""
    archs = list(dict.fromkeys(archs))
    return next((a for a in archs if a in BATCH_NORM_ARCHS), archs[0])


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


def beta_star(betas: pd.DataFrame, layer: int) -> Figure:
    """Fig 5.1: DMBN's β* per epoch for one BN layer, one line per seed."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    chosen = betas[betas.layer == layer]
    for seed, run in chosen.groupby("seed"):
        ax.step(run.epoch, run.beta, where="mid", marker="o", markersize=3, label=f"seed {seed}")
    if chosen.empty:
        _no_data(ax, f"no β* logged for layer {layer}")
    ax.set(xlabel="epoch", ylabel="β*", title=f"β* of BN layer {layer}", ylim=(0.05, 0.95))
    ax.legend(fontsize="small")
    return fig


def _esm_panel(ax, esm: pd.DataFrame, curves: list[tuple[str, str, int, str]]) -> None:
    """ESM_μ per epoch: mean over seeds with a min-max band, one curve per (arch, estimator, layer)."""
    for arch, estimator, layer, text in curves:
        run = esm[(esm.arch == arch) & (esm.estimator == estimator) & (esm.layer == layer)]
        by_epoch = run.groupby("epoch").esm_mu
        mean = by_epoch.mean()
        line, = ax.plot(mean.index, mean.values, label=text)
        ax.fill_between(mean.index, by_epoch.min(), by_epoch.max(), alpha=0.2, color=line.get_color())
    ax.set(xlabel="epoch", ylabel="ESM$_\\mu$", yscale="log")
    ax.legend(fontsize="small")


def esm_dmbn_vs_default(esm: pd.DataFrame, arch: str, layers: list[int]) -> Figure:
    """Fig 5.2: ESM_μ per epoch of the default β = 0.1 and DMBN, on the same network."""
    fig, axes = plt.subplots(1, len(layers), figsize=(5 * len(layers), 3.5), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        _esm_panel(ax, esm, [(arch, DEFAULT_ESTIMATOR, layer, "β = 0.1 (default)"),
                             (arch, "dmbn", layer, "DMBN")])
        ax.set_title(f"BN layer {layer}")
    return fig


def nearest_batchnorm(layers: pd.DataFrame, arch: str, position: int) -> int | None:
    """The BN layer of ``arch`` closest to norm-layer ``position`` (ties: the earlier one)."""
    table = layers[layers.arch == arch].drop_duplicates("layer")
    if table.empty:
        return None
    distance = (table.position - position).abs()
    return int(table.loc[distance.sort_values(kind="stable").index[0], "layer"])


def esm_dmbn_vs_bnbfn(esm: pd.DataFrame, layers: pd.DataFrame, arch: str, positions: list[int]) -> Figure:
    """Fig 5.3: ESM_μ of DMBN against BN-BFN (its batch-free twin with β = 0.1). Where the plotted
    layer is batch-free in BN-BFN, its nearest BN layer is shown and named in the legend."""
    twin = BATCH_NORM_ARCHS.get(arch)
    fig, axes = plt.subplots(1, len(positions), figsize=(5 * len(positions), 3.5), squeeze=False)
    for ax, position in zip(axes[0], positions):
        bn_layer = nearest_batchnorm(layers, arch, position)
        twin_layer = nearest_batchnorm(layers, twin, position) if twin else None
        if bn_layer is None or twin_layer is None:
            _no_data(ax, "this study has no BN-BFN runs to compare with")
            continue
        twin_position = int(layers[(layers.arch == twin) & (layers.layer == twin_layer)].position.iloc[0])
        note = "" if twin_position == position else f" (nearest BN: hidden layer {twin_position})"
        _esm_panel(ax, esm, [(arch, "dmbn", bn_layer, "DMBN"),
                             (twin, DEFAULT_ESTIMATOR, twin_layer, f"BN-BFN, BN layer {twin_layer}{note}")])
        ax.set_title(f"layer {position}")
    return fig


def beta_star_heatmap(betas: pd.DataFrame) -> Figure:
    """β* per layer and epoch, averaged over seeds."""
    grid = betas.groupby(["layer", "epoch"]).beta.mean().unstack("epoch")
    fig, ax = plt.subplots(figsize=(7, 4))
    if grid.empty:
        _no_data(ax, "no β* logged")
        return fig
    image = ax.imshow(grid.values, aspect="auto", origin="lower", cmap="viridis", vmin=0.1, vmax=0.9,
                      extent=(grid.columns.min() - 0.5, grid.columns.max() + 0.5,
                              grid.index.min() - 0.5, grid.index.max() + 0.5))
    fig.colorbar(image, ax=ax, label="mean β* over seeds")
    ax.set(xlabel="epoch", ylabel="BN layer", title="DMBN's β* per layer and epoch")
    return fig


def esm_vs_depth(esm: pd.DataFrame, arch: str) -> Figure:
    """ESM_μ per BN layer at the last epoch, every estimator, mean over seeds."""
    run = esm[(esm.arch == arch) & (esm.epoch == esm.epoch.max())]
    fig, ax = plt.subplots(figsize=(7, 4))
    for estimator, rows in run.groupby("estimator", sort=False):
        mean = rows.groupby("layer").esm_mu.mean()
        style = "-" if estimator.startswith("static-") else "--"
        ax.plot(mean.index, mean.values.clip(min=1e-12), style, marker=".", label=label(estimator))
    ax.set(xlabel="BN layer", ylabel="ESM$_\\mu$ (last epoch)", yscale="log", title=f"{arch}")
    ax.legend(fontsize="x-small", ncol=2)
    return fig


def accuracy_vs_beta(metrics: pd.DataFrame, arch: str) -> Figure:
    """Test accuracy of every static β (mean ± std over seeds), other estimators as lines."""
    variants = with_variants(metrics)
    own = variants[(variants.arch == arch) | (variants.variant == "bn-bfn")]
    fig, ax = plt.subplots(figsize=(6, 4))
    static = own[own.variant.str.startswith("static-")].assign(
        beta=lambda f: f.variant.str.removeprefix("static-").astype(float))
    by_beta = static.groupby("beta").accuracy
    ax.errorbar(by_beta.mean().index, by_beta.mean().values, yerr=by_beta.std().fillna(0).values,
                marker="o", capsize=3, label="static β (mean ± std)")
    for variant in ("dmbn", "bn-bfn", *EXTRA_VARIANTS):
        rows = own[own.variant == variant]
        if not rows.empty:
            ax.axhline(rows.accuracy.mean(), linestyle="--", linewidth=1,
                       color=f"C{1 + ['dmbn', 'bn-bfn', *EXTRA_VARIANTS].index(variant)}",
                       label=label(variant))
    ax.set(xlabel="β", ylabel="test accuracy", title=f"{arch}")
    ax.legend(fontsize="x-small")
    return fig


def save(fig: Figure, png: str | Path, pdf: str | Path, dpi: int = 150) -> None:
    fig.tight_layout()
    fig.savefig(png, dpi=dpi)
    fig.savefig(pdf)
    plt.close(fig)


def study_figures(esm: pd.DataFrame, betas: pd.DataFrame, layers: pd.DataFrame, metrics: pd.DataFrame,
                  beta_layer: int, esm_layers: list[int]) -> dict[str, Figure]:
    """All figures of one data set and regime, keyed by the workflow's figure names."""
    arch = primary_arch(esm.arch)
    own_betas = betas[betas.arch == arch]
    return {
        "beta_star": beta_star(own_betas, beta_layer),
        "esm_dmbn_vs_default": esm_dmbn_vs_default(esm, arch, esm_layers),
        "esm_dmbn_vs_bnbfn": esm_dmbn_vs_bnbfn(esm, layers, arch, esm_layers),
        "beta_star_heatmap": beta_star_heatmap(own_betas),
        "esm_vs_depth": esm_vs_depth(esm, arch),
        "accuracy_vs_beta": accuracy_vs_beta(metrics, arch),
    }
