"""The study's figures (matplotlib). Each takes tidy frames labelled by run and returns a Figure.

Frames: ``esm`` (arch, seed, epoch, layer, estimator, esm_mu, esm_sigma), ``betas`` (arch, seed,
epoch, layer, beta), ``layers`` (arch, seed, layer, name, channels, position), ``history`` (seed,
epoch, train_loss, train_accuracy, esm_accuracy_<estimator>...) and ``metrics`` (the study's long
metrics table). ``where`` names what a figure shows (data set, regime, architecture): its title.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import Formatter, FuncFormatter, MaxNLocator, NullLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from .names import (BATCH_NORM_ARCHS, DEFAULT_ESTIMATOR, STATIC_BETAS, primary_arch,  # noqa: E402
                    regime_label)
from .names import ESTIMATORS, estimator_kind, is_estimator_name  # noqa: E402
from .runs import chosen_by, with_choosing_kind  # noqa: E402
from .tables import (BN_BFN, axis_label, batch_axis, label, present_order, t_interval,  # noqa: E402
                     with_variants)

# One look per estimator (and BN-BFN), the same in every figure, from the registry's ``look``:
# per-β kinds on their colour map by β (static β: solid lines, a marker per β of the thesis's
# grid); the others in distinct colours and line styles.
_STATIC_MARKERS = ("o", "s", "^", "v", "D", "<", ">", "p", "h")
_BN_BFN_LOOK = dict(color="#ff7f0e", linestyle=(0, (4, 1, 1, 1, 1, 1)), marker="X")
_UNKNOWN_LOOK = dict(color="grey", linestyle="-", marker=".")
# the default drawn again in another kind's panel, to compare against (small multiples)
_REFERENCE_LOOK = dict(color="0.6", linestyle="-", marker=".")


def _reference_text(text: str) -> str:
    return f"{text}, for reference"

BETA_RANGE = (0.0, 1.02)  # every β lies in (0, 1]; grids may reach 0.01 and 1


def style(variant: str) -> dict:
    """Colour, line style and marker of an estimator (or ``bn-bfn``) for ``Axes.plot``."""
    if variant == BN_BFN:
        return dict(_BN_BFN_LOOK)
    if not is_estimator_name(variant):
        return dict(_UNKNOWN_LOOK)
    kind = estimator_kind(variant)
    look = dict(ESTIMATORS[kind].look or _UNKNOWN_LOOK)
    if "cmap" in look:  # a per-β row: coloured by its β
        beta = float(variant.removeprefix(f"{kind}-"))
        look["color"] = plt.get_cmap(look.pop("cmap"))(0.9 * beta)
        if kind == "static":
            look["marker"] = _STATIC_MARKERS[min(range(len(STATIC_BETAS)), key=lambda i: abs(STATIC_BETAS[i] - beta))]
    return look


def where(dataset: str, regime: str, arch: str | None = None) -> str:
    """A figure's title: data set, regime (its label) and architecture."""
    return " · ".join([dataset, regime_label(regime), *([arch] if arch else [])])


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


BAND_LABEL = "shaded: min–max over seeds"
_BAND_GID = "seed band"  # marks a drawn band, so the legend can say what bands are


def _legend_entries(ax) -> tuple[list, list[str]]:
    """The axes' legend handles and labels, plus one entry saying what the shaded bands are
    when the axes draw any."""
    handles, labels = ax.get_legend_handles_labels()
    if handles and any(c.get_gid() == _BAND_GID for c in ax.collections):
        handles.append(Patch(facecolor="grey", alpha=0.3, linewidth=0))
        labels.append(BAND_LABEL)
    return handles, labels


def _legend_outside(ax) -> None:
    """One legend to the right of the axes, outside the data."""
    handles, labels = _legend_entries(ax)
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0,
                  fontsize="small", frameon=False)


class _PlainLogMinor(Formatter):
    """Minor ticks of a log axis labelled in plain numbers where the decades' labels alone would
    leave too few: every one on an axis spanning under a factor of 3, at 2, 3 and 5 per decade
    under a decade, at 2 and 5 under two decades, never on a wider one."""

    def __call__(self, value: float, pos=None) -> str:
        low, high = sorted(self.axis.get_view_interval())
        if value <= 0 or low <= 0:
            return ""
        span = high / low
        mantissa = round(value / 10 ** np.floor(np.log10(value)), 6)
        shown = range(1, 10) if span <= 3 else (2, 3, 5) if span <= 10 else (2, 5) if span <= 100 else ()
        return f"{value:g}" if mantissa in shown else ""


def _plain_log_axis(axis) -> None:
    """A log axis labelled in plain numbers (0.02, 0.1, 1) instead of matplotlib's "6×10⁻¹"
    labels on minor ticks when the data span less than a decade."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(_PlainLogMinor())


def same_as(curves: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """For each named curve, the other curves drawn exactly on top of it (equal values at every
    point, NaNs alike): a legend names them, since one line hides the other."""
    def equal(a, b) -> bool:
        return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return {name: [other for other, values in curves.items() if other != name and equal(values, curve)]
            for name, curve in curves.items()}


def _with_same(text: str, same: list[str]) -> str:
    return text + (f" (same as {', '.join(same)})" if same else "")


def _integer_ticks(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def _log_curve(ax, x, mean, low, high, variant: str, text: str, band: bool = True,
               reference: bool = False) -> None:
    """A mean with a band (min-max) on a log axis. Zeros cannot be drawn there: a curve that is
    all zeros (the recalibrated estimator's ESM) becomes markers on the axis floor, so named in the
    legend. A ``reference`` curve (the default repeated in another kind's panel) is grey, without
    band or halo."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    look = style(variant)
    if reference:
        look, text, band = dict(_REFERENCE_LOOK), _reference_text(text), False
    if (mean <= 0).all():
        floor = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot(x, np.zeros(len(x)), transform=floor, clip_on=False, linestyle="none",
                marker=look["marker"], color=look["color"], label=f"{text}, on the axis floor")
        return
    positive = np.where(mean > 0, mean, np.nan)
    if not reference:
        _default_halo(ax, x, positive, variant)
    ax.plot(x, positive, label=text, markersize=4, markevery=max(1, len(x) // 10), **look)
    if band:
        ax.fill_between(x, np.where(low > 0, low, np.nan), np.where(high > 0, high, np.nan),
                        alpha=0.15, color=look["color"], linewidth=0, gid=_BAND_GID)


def _default_halo(ax, x, y, variant: str) -> None:
    """The default estimator's curve gets a wide pale halo underneath: a curve drawn over it (DMBN
    where β* stays at 0.1) no longer hides it."""
    if variant == DEFAULT_ESTIMATOR:
        ax.plot(x, y, color=style(variant)["color"], linewidth=6, alpha=0.3, solid_capstyle="round",
                zorder=1.5, label="_default halo")


_SEED_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
SEED_DODGE = 0.3  # epochs: the spread of the seeds' sideways offsets


def beta_star(betas: pd.DataFrame, layer: int, title: str = "") -> Figure:
    """Fig 5.1: DMBN's β* per epoch for one BN layer, one line per seed. Seeds are offset
    sideways (within ``SEED_DODGE`` epochs) and marked differently, and a seed whose sequence
    equals another's says so in the legend: equal seeds stay visible."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    chosen = betas[betas.layer == layer].sort_values(["seed", "epoch"])
    runs = dict(list(chosen.groupby("seed")))
    same = same_as({f"seed {seed}": run.beta.to_numpy(float) for seed, run in runs.items()})
    for i, (seed, run) in enumerate(runs.items()):
        offset = SEED_DODGE * (i / (len(runs) - 1) - 0.5) if len(runs) > 1 else 0.0
        ax.step(run.epoch + offset, run.beta, where="mid", marker=_SEED_MARKERS[i % len(_SEED_MARKERS)],
                markersize=4, label=_with_same(f"seed {seed}", same[f"seed {seed}"]))
    if chosen.empty:
        _no_data(ax, f"no β* logged for BN layer {layer}")
    xlabel = "epoch" + (" (seeds offset sideways so that equal ones stay visible)" if len(runs) > 1 else "")
    ax.set(xlabel=xlabel, ylabel="β*", title=f"{title}\nβ* of BN layer {layer}", ylim=BETA_RANGE)
    _integer_ticks(ax.xaxis)
    _legend_outside(ax)
    return fig


def esm_curve(esm: pd.DataFrame, arch: str, estimator: str, layer: int) -> pd.DataFrame:
    """ESM_μ per epoch of one estimator and BN layer: mean, min and max over seeds."""
    run = esm[(esm.arch == arch) & (esm.estimator == estimator) & (esm.layer == layer)]
    return run.groupby("epoch").esm_mu.agg(["mean", "min", "max"])


def _esm_panel(ax, esm: pd.DataFrame, curves: list[tuple[str, str, int, str, str]]) -> None:
    """ESM_μ per epoch: mean over seeds with a min-max band, one curve per (arch, estimator,
    layer, style variant, legend text)."""
    for arch, estimator, layer, variant, text in curves:
        curve = esm_curve(esm, arch, estimator, layer)
        _log_curve(ax, curve.index.to_numpy(), curve["mean"], curve["min"], curve["max"], variant, text)
    ax.set(xlabel="epoch", ylabel="ESM$_\\mu$", yscale="log")
    _plain_log_axis(ax.yaxis)
    _integer_ticks(ax.xaxis)


def esm_dmbn_vs_default(esm: pd.DataFrame, arch: str, layers: list[int], title: str = "") -> Figure:
    """Fig 5.2: ESM_μ per epoch of the default β = 0.1 and DMBN, on the same network."""
    fig, axes = plt.subplots(1, len(layers), figsize=(4.5 * len(layers) + 2, 3.6), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        _esm_panel(ax, esm, [(arch, DEFAULT_ESTIMATOR, layer, DEFAULT_ESTIMATOR, label(DEFAULT_ESTIMATOR)),
                             (arch, "dmbn", layer, "dmbn", "DMBN")])
        ax.set_title(f"BN layer {layer}")
    fig.suptitle(title)
    _legend_outside(axes[0][-1])
    return fig


def nearest_batchnorm(layers: pd.DataFrame, arch: str, position: int) -> int | None:
    """The BN layer of ``arch`` closest to norm-layer ``position`` (ties: the earlier one)."""
    table = layers[layers.arch == arch].drop_duplicates("layer")
    if table.empty:
        return None
    distance = (table.position - position).abs()
    return int(table.loc[distance.sort_values(kind="stable").index[0], "layer"])


def _position(layers: pd.DataFrame, arch: str, layer: int) -> int:
    return int(layers[(layers.arch == arch) & (layers.layer == layer)].position.iloc[0])


def esm_dmbn_vs_bnbfn(esm: pd.DataFrame, layers: pd.DataFrame, arch: str, bn_layers: list[int],
                      title: str = "") -> Figure:
    """Fig 5.3: ESM_μ of DMBN against BN-BFN (its batch-free twin with β = 0.1) at the hidden
    layer of each of ``arch``'s BN layers. Where that layer is batch-free in BN-BFN, BN-BFN's
    nearest BN layer is shown; panel titles and legends name both networks' layers."""
    twin = BATCH_NORM_ARCHS.get(arch)
    fig, axes = plt.subplots(1, len(bn_layers), figsize=(4.5 * len(bn_layers) + 3, 3.6), squeeze=False)
    for ax, bn_layer in zip(axes[0], bn_layers):
        present = not layers[(layers.arch == arch) & (layers.layer == bn_layer)].empty
        position = _position(layers, arch, bn_layer) if present else None
        twin_layer = nearest_batchnorm(layers, twin, position) if twin and present else None
        if twin_layer is None:
            _no_data(ax, "this study has no BN-BFN runs to compare with" if present
                     else f"{arch} has no BN layer {bn_layer}")
            continue
        twin_position = _position(layers, twin, twin_layer)
        _esm_panel(ax, esm, [
            (arch, "dmbn", bn_layer, "dmbn", f"DMBN: hidden layer {position} (BN layer {bn_layer})"),
            (twin, DEFAULT_ESTIMATOR, twin_layer, "bn-bfn",
             f"BN-BFN: hidden layer {twin_position} (BN layer {twin_layer})")])
        ax.set_title(f"hidden layer {position}" + ("" if twin_position == position else
                                                   f" (BN-BFN: nearest BN, hidden layer {twin_position})"),
                     fontsize="medium")
        ax.legend(*_legend_entries(ax), loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize="small",
                  frameon=False)
    fig.suptitle(title)
    return fig


def beta_star_heatmap(betas: pd.DataFrame, title: str = "") -> Figure:
    """β* per layer and epoch, averaged over seeds."""
    grid = betas.groupby(["layer", "epoch"]).beta.mean().unstack("epoch")
    fig, ax = plt.subplots(figsize=(7, 4))
    if grid.empty:
        _no_data(ax, "no β* logged")
        return fig
    _layer_epoch_image(fig, ax, grid, "mean β* over seeds", f"{title}\nDMBN's β* per layer and epoch",
                       cmap="viridis", vmin=0.1, vmax=0.9)
    return fig


def _layer_epoch_image(fig: Figure, ax, grid: pd.DataFrame, colour_label: str, title: str, **style) -> None:
    """``grid`` (BN layers × epochs) as an image with one cell per layer and epoch, integer ticks."""
    image = ax.imshow(grid.values, aspect="auto", origin="lower",
                      extent=(grid.columns.min() - 0.5, grid.columns.max() + 0.5,
                              grid.index.min() - 0.5, grid.index.max() + 0.5), **style)
    fig.colorbar(image, ax=ax, label=colour_label)
    ax.set(xlabel="epoch", ylabel="BN layer", title=title)
    _integer_ticks(ax.xaxis)
    _integer_ticks(ax.yaxis)


def esm_vs_depth(esm: pd.DataFrame, arch: str, title: str = "") -> Figure:
    """ESM_μ per BN layer at the last epoch, every estimator, mean over seeds (no bands: there are
    too many curves for them). Curves that coincide are named in the legend, and the default
    keeps its halo under any curve drawn over it."""
    run = esm[(esm.arch == arch) & (esm.epoch == esm.epoch.max())]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    order = _estimator_order(run.estimator)
    by_layer = {e: run[run.estimator == e].groupby("layer").esm_mu for e in order}
    same = same_as({label(e): by_layer[e].mean().to_numpy(float) for e in order})
    for estimator in order:
        means = by_layer[estimator].mean()
        _log_curve(ax, means.index.to_numpy(), means, by_layer[estimator].min(), by_layer[estimator].max(),
                   estimator, _with_same(label(estimator), same[label(estimator)]), band=False)
    ax.set(xlabel="BN layer", ylabel="ESM$_\\mu$ (last epoch)", yscale="log",
           title=f"{title}\nESM$_\\mu$ per BN layer at the last epoch")
    _plain_log_axis(ax.yaxis)
    _integer_ticks(ax.xaxis)
    _legend_outside(ax)
    return fig


def _single_rows(variants) -> list[str]:
    """The variants that are one row each (not a kind with one row per β, like the static EMAs)."""
    return [v for v in variants if not (is_estimator_name(v) and ESTIMATORS[estimator_kind(v)].per_beta)]


def _estimator_order(estimators) -> list[str]:
    """The estimators present, in the tables' order (``tables.present_order``)."""
    return present_order(estimators)


def accuracy_vs_beta(metrics: pd.DataFrame, arch: str, title: str = "") -> Figure:
    """Test accuracy of every static β (mean ± std over seeds) on the left; on the right every
    other estimator (and BN-BFN) as its own point with mean ± std, named on the axis. Reference
    levels within a hair of each other (0.955-0.965) stay apart, each with its spread."""
    variants = with_variants(metrics)
    own = variants[(variants.arch == arch) | (variants.variant == "bn-bfn")]
    references = [v for v in _single_rows(present_order(own.variant)) if (own.variant == v).any()]
    fig, (ax, right) = plt.subplots(1, 2, figsize=(7.5 + 0.45 * len(references), 4), sharey=True,
                                    width_ratios=[3, max(1, 0.45 * len(references))], layout="constrained")
    is_static = own.variant.map(lambda v: is_estimator_name(v) and estimator_kind(v) == "static")  # not static-biased
    static = own[is_static].assign(
        beta=lambda f: f.variant.str.removeprefix("static-").astype(float))
    by_beta = static.groupby("beta").accuracy
    ax.errorbar(by_beta.mean().index, by_beta.mean().values, yerr=by_beta.std().fillna(0).values,
                marker="o", capsize=3, color="#1f4e79", label="Static BN (mean ± std over seeds)")
    ax.set(xlabel="β of the static EMA", ylabel="test accuracy", title="Static BN against β")
    for position, variant in enumerate(references):
        rows = own[own.variant == variant].accuracy
        look = style(variant)
        right.errorbar([position], [rows.mean()], yerr=[0.0 if len(rows) < 2 else rows.std()], capsize=3,
                       marker=look["marker"] or "o", color=look["color"], linestyle="none",
                       label=f"{label(variant)} (mean ± std)")
    right.set_xticks(range(len(references)), [label(v) for v in references], rotation=45, ha="right",
                     fontsize="small")
    right.set_xlim(-0.6, len(references) - 0.4)
    right.set_title("other estimators", fontsize="medium")
    if not references:
        right.set_axis_off()
    fig.suptitle(f"{title}\nTest accuracy (mean ± std over seeds)")
    return fig


def history_curve(history: pd.DataFrame, column: str) -> pd.DataFrame:
    """One column of the training history per epoch: mean, min and max over seeds."""
    return history.groupby("epoch")[column].agg(["mean", "min", "max"])


def training_curves(history: pd.DataFrame, title: str = "") -> Figure:
    """Training loss, training accuracy and ESM-set accuracy of every estimator per epoch: mean
    over seeds, band from minimum to maximum."""
    estimators = [c.removeprefix("esm_accuracy_") for c in history.columns if c.startswith("esm_accuracy_")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    for ax, column, ylabel in ((axes[0], "train_loss", "training loss"),
                               (axes[1], "train_accuracy", "training accuracy")):
        curve = history_curve(history, column)
        ax.plot(curve.index, curve["mean"], color="#1f4e79", label="mean over seeds")
        ax.fill_between(curve.index, curve["min"], curve["max"], color="#1f4e79", alpha=0.2,
                        linewidth=0, label="min-max over seeds")
        ax.set(xlabel="epoch", ylabel=ylabel)
        _integer_ticks(ax.xaxis)
    axes[0].legend(fontsize="small", frameon=False)
    ax = axes[2]
    for estimator in _estimator_order(estimators):
        curve = history_curve(history, f"esm_accuracy_{estimator}")
        ax.plot(curve.index, curve["mean"], label=label(estimator), markersize=4,
                markevery=max(1, len(curve) // 10), **style(estimator))
        ax.fill_between(curve.index, curve["min"], curve["max"], color=style(estimator)["color"],
                        alpha=0.06, linewidth=0, gid=_BAND_GID)
    ax.set(xlabel="epoch", ylabel="ESM-set accuracy")
    _integer_ticks(ax.xaxis)
    _legend_outside(ax)
    fig.suptitle(title)
    return fig


def esm_layers(esm: pd.DataFrame, estimator: str, title: str = "") -> Figure:
    """ESM_μ of one estimator per BN layer and epoch, mean over seeds, on a log colour scale."""
    grid = esm[esm.estimator == estimator].groupby(["layer", "epoch"]).esm_mu.mean().unstack("epoch")
    fig, ax = plt.subplots(figsize=(7.5, 4))
    positive = grid.where(grid > 0)
    if positive.isna().all().all():
        _no_data(ax, f"no positive ESM$_\\mu$ logged for {label(estimator)}"
                     + (" (ESM = 0 by construction)" if estimator == "recalibrated" else ""))
        return fig
    _layer_epoch_image(fig, ax, positive, "ESM$_\\mu$, mean over seeds", f"{title}\nESM$_\\mu$ of {label(estimator)}",
                       cmap="magma", norm=LogNorm(vmin=np.nanmin(positive.values), vmax=np.nanmax(positive.values)))
    return fig


# -- the batch-size axis: one point per regime of a study with `batch_sizes` -----------------------

def _point_sizes(points: pd.DataFrame) -> pd.Series:
    """Regime -> batch size (NaN: a full batch of unknown size) of ``points`` (regime, batch_size)."""
    return points.drop_duplicates("regime").set_index("regime").batch_size.astype(float)


def axis_positions(points: pd.DataFrame) -> pd.Series:
    """x of each regime of ``points`` (regime, batch_size): its batch size (full batch: the number
    of training samples); a full batch of unknown size (a custom data set) one decade beyond the
    largest known batch."""
    sizes = _point_sizes(points)
    beyond = 10 * sizes.max() if sizes.notna().any() else 1.0
    return sizes.fillna(beyond)


def _batch_axis(ax, points: pd.DataFrame) -> None:
    """A log x axis with one tick per batch size, the full batch labelled ``full (N)``."""
    x, sizes = axis_positions(points), _point_sizes(points)
    ax.set_xscale("log")
    ax.set_xticks(x.to_numpy(), [axis_label(r, sizes[r]) for r in x.index])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size (log scale; full = every training sample)")


def panels_by_kind(variants) -> list[tuple[str, list[str]]]:
    """Small multiples for many rows: one panel per per-β kind (all its β), one for every other
    estimator and BN-BFN, in the tables' order; (panel title, variants)."""
    panels: dict[str, list[str]] = {}
    for variant in present_order(variants):
        per_beta = is_estimator_name(variant) and ESTIMATORS[estimator_kind(variant)].per_beta
        title = ESTIMATORS[estimator_kind(variant)].label + ", every β" if per_beta else "other estimators"
        panels.setdefault(title, []).append(variant)
    return list(panels.items())


def accuracy_vs_batch_size(metrics: pd.DataFrame, arch: str, confidence: float, title: str = "") -> Figure:
    """Test accuracy against batch size: mean over seeds with its Student-t interval
    (``tables.batch_axis``), in small multiples (``panels_by_kind``) with the default repeated
    in grey in every panel. An accuracy lies in [0, 1]: intervals are clipped there and the
    title says so when any was. ``metrics`` carries ``batch_size``."""
    own = metrics[(metrics.arch == arch) | (metrics.arch == BATCH_NORM_ARCHS.get(arch))]
    axis = batch_axis(own, confidence)
    x = axis_positions(axis)
    panels = panels_by_kind(axis.variant.unique())
    columns = min(2, len(panels))
    rows_of_panels = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(6 * columns, 4.6 * rows_of_panels),
                             squeeze=False, sharey=True, layout="constrained")
    clipped = False
    for ax, (panel, variants) in zip(axes.flat, panels):
        shown = variants if DEFAULT_ESTIMATOR in variants else [DEFAULT_ESTIMATOR, *variants]
        for variant in shown:
            rows = axis[axis.variant == variant]
            if rows.empty:
                continue
            mean = rows.accuracy_mean.to_numpy()
            low, high = rows.accuracy_ci_low.to_numpy(), rows.accuracy_ci_high.to_numpy()
            clipped |= bool(np.any(low < 0) or np.any(high > 1))
            error = np.nan_to_num(np.stack([mean - np.clip(low, 0, 1), np.clip(high, 0, 1) - mean]))
            look = style(variant) if variant in variants else dict(_REFERENCE_LOOK)
            text = label(variant) if variant in variants else _reference_text(label(variant))
            ax.errorbar(x[rows.regime].to_numpy(), mean, yerr=error, capsize=2, markersize=4, label=text, **look)
        _batch_axis(ax, axis)
        ax.set(ylabel="test accuracy", title=panel)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize="x-small", frameon=False)
    for ax in axes.flat[len(panels):]:
        ax.set_axis_off()
    note = "; intervals clipped to [0, 1]" if clipped else ""
    fig.suptitle(f"{title}\nTest accuracy against batch size (mean, {confidence:.0%} t-interval over seeds{note})")
    return fig


def esm_vs_batch_size(esm_last: pd.DataFrame, sizes: pd.DataFrame, arch: str, layers: list[int],
                      title: str = "") -> Figure:
    """ESM_μ at the last epoch against batch size: a column per BN layer, a row of panels per
    estimator kind (``panels_by_kind``: small multiples, the default repeated in grey), each curve
    the mean over seeds with a min-max band. ``esm_last``: the ``esm_last_epoch`` summary (run
    keys, epoch, estimator, ``l<layer>``); ``sizes``: regime, batch_size."""
    runs = esm_last[(esm_last.arch == arch) & (esm_last.member == "bank")]
    x = axis_positions(sizes)
    panels = panels_by_kind(runs.estimator.unique())
    fig, axes = plt.subplots(max(1, len(panels)), len(layers), figsize=(4.5 * len(layers) + 3.5, 3.4 * max(1, len(panels))),
                             squeeze=False, sharey="col", layout="constrained")
    for row, (panel, variants) in zip(axes, panels):
        for ax, layer in zip(row, layers):
            for estimator in ([] if DEFAULT_ESTIMATOR in variants else [DEFAULT_ESTIMATOR]) + variants:
                by_regime = runs[runs.estimator == estimator].groupby("regime")[f"l{layer}"]
                stats = by_regime.agg(["mean", "min", "max"]).assign(x=lambda f: x[f.index]).sort_values("x")
                if stats.empty:
                    continue
                _log_curve(ax, stats.x.to_numpy(), stats["mean"], stats["min"], stats["max"], estimator,
                           label(estimator), reference=estimator not in variants)
            _batch_axis(ax, sizes)
            ax.set(ylabel="ESM$_\\mu$ (last epoch)", yscale="log", title=f"{panel} · BN layer {layer}")
            _plain_log_axis(ax.yaxis)
        _legend_outside(row[-1])
    fig.suptitle(f"{title}\nESM$_\\mu$ at the last epoch against batch size")
    return fig


def beta_star_vs_batch_size(beta_star: pd.DataFrame, sizes: pd.DataFrame, arch: str, layer: int,
                            confidence: float, title: str = "") -> Figure:
    """β* of one BN layer against batch size, for DMBN and each variant present (other choice
    criteria): at the last epoch (solid) and averaged over the epochs (dashed), each the mean
    over seeds with its Student-t interval. ``beta_star``: the ``beta_star`` summary (run keys,
    estimator, layer, ``e<epoch>``); ``sizes``: regime, batch_size."""
    runs = with_choosing_kind(beta_star)
    runs = runs[(runs.arch == arch) & (runs.member == "bank") & (runs.layer == layer)]
    kinds = present_order(runs.estimator.unique())
    x = axis_positions(sizes)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for kind in kinds:
        chosen = chosen_by(runs, kind)
        epochs = chosen.filter(regex=r"^e\d+$")
        per_run = pd.DataFrame({"regime": chosen.regime,
                                "last epoch": epochs.ffill(axis=1).iloc[:, -1] if len(epochs.columns) else np.nan,
                                "mean over epochs": epochs.mean(axis=1)})
        prefix = "" if kind == "dmbn" else f"{label(kind)}: "
        for column, linestyle, marker in (("last epoch", "-", "o"), ("mean over epochs", "--", "s")):
            points = []
            for regime, values in per_run.groupby("regime")[column]:
                low, high = t_interval(values.to_numpy(), confidence)
                points.append((x[regime], values.mean(), low, high))
            if not points:
                continue
            px, mean, low, high = (np.array(v, dtype=float) for v in zip(*sorted(points)))
            ax.errorbar(px, mean, yerr=np.nan_to_num(np.stack([mean - low, high - mean])), capsize=2,
                        label=prefix + (f"β* at the {column}" if column == "last epoch" else f"β*, {column}"),
                        color=style(kind)["color"], linestyle=linestyle, marker=marker)
    if runs.empty:
        _no_data(ax, f"no β* logged for BN layer {layer}")
    else:
        _batch_axis(ax, sizes)
    ax.set(ylabel="β*", ylim=BETA_RANGE,
           title=f"{title}\nβ* of BN layer {layer} against batch size "
                 f"(mean, {confidence:.0%} t-interval over seeds)")
    _legend_outside(ax)
    return fig


def batch_figures(metrics: pd.DataFrame, esm_last: pd.DataFrame, beta_star: pd.DataFrame, beta_layer: int,
                  esm_layers: list[int], confidence: float, dataset: str) -> dict[str, Figure]:
    """The batch-size figures of one data set, keyed by the workflow's figure names; every frame
    is the data set's, ``metrics`` with ``batch_size``."""
    arch = primary_arch(metrics.arch)
    sizes = metrics[["regime", "batch_size"]].drop_duplicates("regime")
    title = f"{dataset} · {arch}"
    return {
        "accuracy_vs_batch_size": accuracy_vs_batch_size(metrics, arch, confidence, title),
        "esm_vs_batch_size": esm_vs_batch_size(esm_last, sizes, arch, esm_layers, title),
        "beta_star_vs_batch_size": beta_star_vs_batch_size(beta_star, sizes, arch, beta_layer, confidence, title),
    }


def save(fig: Figure, png: str | Path, pdf: str | Path, dpi: int = 150) -> None:
    """PNG and PDF, cropped to what is drawn (legends sit outside the axes)."""
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)


def study_figures(esm: pd.DataFrame, betas: pd.DataFrame, layers: pd.DataFrame, metrics: pd.DataFrame,
                  beta_layer: int, esm_layers: list[int], dataset: str, regime: str) -> dict[str, Figure]:
    """All figures of one data set and regime, keyed by the workflow's figure names."""
    arch = primary_arch(esm.arch)
    own_betas = chosen_by(betas[betas.arch == arch])
    title = where(dataset, regime, arch)
    return {
        "beta_star": beta_star(own_betas, beta_layer, title),
        "esm_dmbn_vs_default": esm_dmbn_vs_default(esm, arch, esm_layers, title),
        "esm_dmbn_vs_bnbfn": esm_dmbn_vs_bnbfn(esm, layers, arch, esm_layers,
                                               where(dataset, regime, f"{arch} against BN-BFN")),
        "beta_star_heatmap": beta_star_heatmap(own_betas, title),
        "esm_vs_depth": esm_vs_depth(esm, arch, title),
        "accuracy_vs_beta": accuracy_vs_beta(metrics, arch, title),
    }


def run_figures(history: pd.DataFrame, esm: pd.DataFrame, estimator: str, dataset: str, regime: str,
                arch: str) -> dict[str, Figure]:
    """The figures of one architecture's runs (seeds), keyed by the workflow's figure names."""
    title = where(dataset, regime, arch)
    return {"training": training_curves(history, title), "esm_layers": esm_layers(esm, estimator, title)}
