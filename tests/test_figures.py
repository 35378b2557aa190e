"""Figures that hide nothing (issue: a new user's first hour): each case is built to trigger the
fault a reader met (identical seeds, near-equal references, a default under DMBN, a narrow log
axis, 30-odd rows, t-intervals past 1, unexplained bands), and the drawn artists and legend
entries are checked against what the data say, computed here."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from dmbn import plots
from dmbn.names import DEFAULT_ESTIMATOR, ESTIMATORS
from dmbn.tables import label

SIZES = {"mini-b8": 8, "mini-b100": 100, "full-heldout": 1005}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")  # pyplot keeps every figure open otherwise


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend else []


# -- seeds whose lines coincide ------------------------------------------------------------------------

def test_equal_seeds_stay_visible_and_say_so():
    """The quickstart's mini β*: seed 1's sequence equals seed 2's and was drawn exactly under it."""
    same = [0.1, 0.3, 0.3, 0.2]
    betas = pd.DataFrame([dict(seed=seed, epoch=e + 1, layer=2, beta=b)
                          for seed, seq in ((1, same), (2, same), (3, [0.1, 0.1, 0.5, 0.5]))
                          for e, b in enumerate(seq)])
    fig = plots.beta_star(betas, 2)
    ax = fig.axes[0]
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(lines) == 3  # one per seed
    drawn = [tuple(np.round(line.get_xdata(), 9)) for line in lines]
    assert len(set(drawn)) == 3  # no two seeds on the same x: seeds 1 and 2 no longer overlap
    for line, seq in zip(lines, (same, same, [0.1, 0.1, 0.5, 0.5])):
        np.testing.assert_allclose(line.get_ydata(), seq)
        shift = np.asarray(line.get_xdata(), float) - [1, 2, 3, 4]
        assert np.ptp(shift) < 1e-12 and abs(shift[0]) <= plots.SEED_DODGE / 2 + 1e-12  # a small shift
    assert len({line.get_marker() for line in lines}) == 3
    assert legend_texts(ax) == ["seed 1 (same as seed 2)", "seed 2 (same as seed 1)", "seed 3"]


def test_one_seed_is_not_shifted():
    betas = pd.DataFrame(dict(seed=1, epoch=[1, 2], layer=1, beta=[0.2, 0.4]))
    (line,) = plots.beta_star(betas, 1).axes[0].get_lines()
    np.testing.assert_array_equal(line.get_xdata(), [1, 2])


# -- reference levels ------------------------------------------------------------------------------------

def test_near_equal_reference_levels_are_separate_points_with_their_spread():
    """Five reference lines within 0.955-0.965 could not be told apart."""
    levels = {"dmbn": 0.955, "precise": 0.9575, "cma": 0.96, "recalibrated": 0.9625, "dmbn-causal": 0.965}
    rows = []
    for seed, jitter in ((1, -0.002), (2, 0.0), (3, 0.002)):
        for estimator, level in {**levels, "static-0.1": 0.9, "static-0.5": 0.8}.items():
            rows.append(dict(dataset="d", regime="mini", arch="mlp", seed=seed, estimator=estimator,
                             accuracy=level + jitter, sensitivity=0, specificity=0, f1=0))
    fig = plots.accuracy_vs_beta(pd.DataFrame(rows), "mlp", "t")
    _, right = fig.axes
    points = {c.get_label(): c for c in right.containers}
    order = ["dmbn", "dmbn-causal", "precise", "cma", "recalibrated"]  # the tables' order
    assert list(points) == [f"{label(v)} (mean ± std)" for v in order]
    assert [t.get_text() for t in right.get_xticklabels()] == [label(v) for v in order]
    for position, variant in enumerate(order):
        container = points[f"{label(variant)} (mean ± std)"]
        assert container.lines[0].get_xdata()[0] == position  # each level at its own place
        assert container.lines[0].get_ydata()[0] == pytest.approx(levels[variant])
        (segment,) = container.lines[2][0].get_segments()
        assert np.ptp(segment[:, 1]) == pytest.approx(2 * 0.002)  # ± the sample std (0.002), drawn
    assert not [line for line in right.get_lines() if len(set(line.get_xdata())) > 1]  # no lines across


# -- a default row under another -------------------------------------------------------------------------

def esm_rows(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([dict(arch="mlp", seed=seed, epoch=5, layer=layer + 1, estimator=estimator,
                              esm_mu=v * seed, esm_sigma=0.0)
                         for estimator, per_layer in values.items() for seed in (1, 2)
                         for layer, v in enumerate(per_layer)])


def test_the_default_is_never_hidden_under_dmbn():
    """esm_vs_depth: where DMBN's β* stays at 0.1 its curve is the default's, drawn over it."""
    same = [0.4, 0.2, 0.1, 0.05]
    fig = plots.esm_vs_depth(esm_rows({"static-0.1": same, "static-0.9": [1, 0.9, 0.8, 0.7], "dmbn": same}), "mlp")
    ax = fig.axes[0]
    default, dmbn = label(DEFAULT_ESTIMATOR), label("dmbn")
    assert legend_texts(ax) == [f"{default} (same as {dmbn})", label("static-0.9"), f"{dmbn} (same as {default})"]
    (halo,) = [line for line in ax.get_lines() if line.get_label() == "_default halo"]
    (top,) = [line for line in ax.get_lines() if line.get_label().startswith(dmbn)]
    np.testing.assert_allclose(halo.get_ydata(), top.get_ydata())  # under DMBN's curve ...
    assert halo.get_zorder() < top.get_zorder() and halo.get_linewidth() >= 2 * top.get_linewidth()  # ... wider


def test_distinct_curves_carry_no_same_as_note():
    fig = plots.esm_vs_depth(esm_rows({"static-0.1": [0.4, 0.2], "dmbn": [0.3, 0.2]}), "mlp")
    assert legend_texts(fig.axes[0]) == [label(DEFAULT_ESTIMATOR), label("dmbn")]


# -- log axes --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("low, high", [(0.3, 0.7), (0.02, 0.9), (1e-4, 1.0)])
def test_log_axes_use_plain_tick_labels(low, high):
    fig = plots.esm_vs_depth(esm_rows({"static-0.1": [low, (low * high) ** 0.5, high / 2]}), "mlp")
    ax = fig.axes[0]
    fig.canvas.draw()
    bottom, top = ax.get_ylim()
    shown = [(t.get_position()[1], t.get_text()) for t in ax.yaxis.get_ticklabels(which="both")
             if bottom <= t.get_position()[1] <= top and t.get_text()]
    assert len(shown) >= 2, shown  # enough labels to read the axis, even within one decade
    for value, text in shown:
        assert re.fullmatch(r"\d+(\.\d+)?(e-\d+)?", text), text  # no "6×10⁻¹", no mathtext
        assert float(text) == pytest.approx(value, rel=1e-6)


# -- many rows -------------------------------------------------------------------------------------------

def many_rows(accuracy=lambda seed, i: 0.9 - 0.01 * i + 0.001 * seed) -> pd.DataFrame:
    """batch_sweep-like metrics: three per-β kinds at nine β and the single rows, 32 in all."""
    betas = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    estimators = [f"{kind}-{b:g}" for kind in ("static", "static-biased", "moment") for b in betas]
    estimators += ["dmbn", "dmbn-causal", "precise", "cma", "recalibrated"]
    rows = []
    for regime, size in SIZES.items():
        for seed in (1, 2, 3):
            for i, estimator in enumerate(estimators):
                rows.append(dict(dataset="d", regime=regime, arch="mlp", seed=seed, estimator=estimator,
                                 batch_size=size, accuracy=accuracy(seed, i), sensitivity=0, specificity=0, f1=0))
            rows.append(dict(dataset="d", regime=regime, arch="mlp-bnbfn", seed=seed, estimator="static-0.1",
                             batch_size=size, accuracy=0.8, sensitivity=0, specificity=0, f1=0))
    return pd.DataFrame(rows)


def test_many_rows_are_small_multiples_with_legends_no_taller_than_their_axes():
    fig = plots.accuracy_vs_batch_size(many_rows(), "mlp", 0.95, "d · mlp")
    panels = [ax for ax in fig.axes if ax.axison]
    titles = {f"{ESTIMATORS[k].label}, every β": k for k in ("static", "static-biased", "moment")}
    assert panels[0].get_title() == f"{ESTIMATORS['static'].label}, every β"  # the tables' order
    assert {ax.get_title() for ax in panels[:3]} == set(titles) and panels[3].get_title() == "other estimators"
    for ax in panels[:3]:
        kind = titles[ax.get_title()]
        own = [t for t in legend_texts(ax) if not t.endswith("for reference")]
        assert own == [label(f"{kind}-{b:g}") for b in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
        assert len(ax.containers) == 9 + (kind != "static")  # the default in grey where it is not its own
    singles = ["dmbn", "dmbn-causal", "bn-bfn", "precise", "cma", "recalibrated"]
    assert legend_texts(panels[-1]) == [f"{label(DEFAULT_ESTIMATOR)}, for reference", *map(label, singles)]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in panels:
        assert ax.get_legend().get_window_extent(renderer).height <= ax.get_window_extent(renderer).height


def test_intervals_of_an_accuracy_stay_inside_0_and_1_and_the_title_says_so():
    """n = 3 t-intervals of accuracies near 1 reach past 1 (the published axis ran to 1.3)."""
    spread = many_rows(lambda seed, i: [0.99, 0.70, 0.999][seed - 1])
    fig = plots.accuracy_vs_batch_size(spread, "mlp", 0.95, "d · mlp")
    from scipy import stats
    values = np.array([0.99, 0.70, 0.999])
    high = values.mean() + stats.t.ppf(0.975, 2) * values.std(ddof=1) / np.sqrt(3)
    assert high > 1  # the case: the unclipped interval leaves [0, 1]
    for ax in fig.axes:
        for container in ax.containers:
            for segment in container.lines[2][0].get_segments():
                assert 0 <= segment[:, 1].min() and segment[:, 1].max() <= 1
    assert "intervals clipped to [0, 1]" in fig._suptitle.get_text()
    assert fig.axes[0].get_ylim()[1] < 1.1
    narrow = plots.accuracy_vs_batch_size(many_rows(), "mlp", 0.95, "d · mlp")
    assert "clipped" not in narrow._suptitle.get_text()  # said only when it happened


# -- bands -------------------------------------------------------------------------------------------------

def test_a_band_says_in_the_legend_what_it_is():
    esm = pd.DataFrame([dict(arch="mlp", seed=seed, epoch=epoch, layer=1, estimator=e,
                             esm_mu=0.1 * seed * epoch, esm_sigma=0.0)
                        for seed in (1, 2) for epoch in (1, 2, 3) for e in ("static-0.1", "dmbn")])
    fig = plots.esm_dmbn_vs_default(esm, "mlp", [1])
    ax = fig.axes[0]
    assert len(ax.collections) == 2  # one band per curve
    assert legend_texts(ax)[-1] == plots.BAND_LABEL == "shaded: min–max over seeds"
    assert plots.BAND_LABEL not in legend_texts(plots.esm_vs_depth(esm, "mlp").axes[0])  # no bands there
    history = pd.DataFrame([dict(seed=s, epoch=e, train_loss=1 / e, train_accuracy=0.5, esm_accuracy_dmbn=0.1 * s)
                            for s in (1, 2) for e in (1, 2)])
    esm_set = plots.training_curves(history).axes[2]
    assert legend_texts(esm_set) == [label("dmbn"), plots.BAND_LABEL]


def test_many_rows_of_esm_against_batch_size_are_small_multiples_too():
    estimators = many_rows().query("arch == 'mlp'").estimator.unique()
    esm = pd.DataFrame([dict(dataset="d", regime=regime, arch="mlp", seed=seed, member="bank", epoch=4,
                             estimator=e, l1=0.1 * (i + 1) * seed, l2=0.2 * (i + 1))
                        for regime in SIZES for seed in (1, 2) for i, e in enumerate(estimators)])
    sizes = pd.DataFrame({"regime": list(SIZES), "batch_size": list(SIZES.values())})
    fig = plots.esm_vs_batch_size(esm, sizes, "mlp", [1, 2], "d · mlp")
    assert len(fig.axes) == 4 * 2  # four kinds' rows of panels, one column per BN layer
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legends = [ax for ax in fig.axes if ax.get_legend()]
    assert len(legends) == 4  # one per row, beside its last panel
    for ax in legends:
        assert ax.get_legend().get_window_extent(renderer).height <= ax.get_window_extent(renderer).height
        assert legend_texts(ax)[-1] == plots.BAND_LABEL
    drawn = {t for ax in legends for t in legend_texts(ax)}
    assert {label(e) for e in estimators} <= drawn  # every row somewhere
