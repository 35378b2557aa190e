"""Tables and numbers for docs/CNN.md, generated from the published `cnn` study (issue #25), so
that the page and the files cannot disagree.

    python docs/cnn_findings.py cnn [cnn_b32 cnn_b16_s1 cnn_b16_s2 cnn_b16_s3] --mlp batch_sweep shift > /tmp/cnn.md

Several studies (the thesis's batch and the small batches, trained in sessions of their own) are
read as one: each one's own tables first, then the joint ones.

First everything ``docs/estimator_tables.py`` prints for a batch-size study (how well each
network trained, accuracy per batch size, every row minus the default EMA paired by seed, the
reviewer's questions, β*, ESM_μ, marks and cost), then what the CNN page adds:

* Tables 5.3/5.4's layout at B = 100 beside the thesis's CIFAR-10 and CIFAR-100 numbers: a
  stand-in (FashionMNIST, a width-scaled network), so the thesis's numbers are shown, not tested;
* does XBNBlock-P2 lower ESM (Huang et al.'s claim)? ESM_μ of each network (the mean over its own
  BN layers; XBNBlock-P2 has fewer) at the last epoch, XBNBlock-P2 − ResNet, Welch's 95 % interval
  over seeds (different networks: nothing to pair);
* the MLP's small-batch questions asked of the CNN, where a BN layer pools B × H × W values per
  channel: the same paired differences for the MLP (``--mlp``, a published batch-size study)
  and both CNNs at the batch sizes they share;
* how many values a BN channel pools per batch, Bessel's factor (n−1)/n at the smallest, and how
  far the batch means spread against independent samples (where the study publishes PreciseBN's
  spread diagnostic).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import estimator_tables  # noqa: E402
from dmbn.names import BATCH_FREE_ARCHS, DEFAULT_ESTIMATOR, family_batch_size, regime_rank  # noqa: E402
from dmbn.tables import paired_cell, paired_comparisons, present_order, with_variants  # noqa: E402

CONFIDENCE = 0.95
THESIS_REGIME = "mini"  # Tables 5.3/5.4: mini-batch 100
THESIS_BATCH = 100
THESIS_DATASETS = ("CIFAR-10", "CIFAR-100")
ESM_ROWS = (DEFAULT_ESTIMATOR, "dmbn", "precise")
# The MLP's small-batch questions (docs/ESTIMATORS.md, finding 2): do the pooled estimators
# recover where the per-batch-variance EMA collapses, and does the variance convention matter?
SMALL_BATCH_PAIRS = (("precise", DEFAULT_ESTIMATOR), ("static-biased-0.1", DEFAULT_ESTIMATOR),
                     ("precise-mean-biased", "precise-mean-unbiased"), ("moment-0.1", DEFAULT_ESTIMATOR),
                     ("dmbn", DEFAULT_ESTIMATOR))


def batch_size(regime: str) -> int | None:
    """B of a regime: ``mini`` is the thesis's mini-batch (``train.batch_size``, 100), a
    ``mini-b<B>`` its own; None for full batch."""
    return THESIS_BATCH if regime == THESIS_REGIME else family_batch_size(regime)


def _mean_std(values: pd.Series, decimals: int = 3) -> str:
    return f"{values.mean():.{decimals}f} ± {values.std():.{decimals}f} ({len(values)})"


def thesis_layout(metrics: pd.DataFrame, paper: pd.DataFrame) -> str:
    """At B = 100, every thesis row (static β, DMBN, BN-BFN = XBNBlock-P2 with the default EMA)
    of each data set: our accuracy (mean ± std, n seeds) beside the thesis's CIFAR numbers."""
    at_100 = metrics[metrics.regime.map(batch_size) == THESIS_BATCH]
    ours = with_variants(at_100)
    thesis = paper[(paper.regime == THESIS_REGIME) & paper.dataset.isin(THESIS_DATASETS)]
    parts = []
    for dataset, runs in ours.groupby("dataset"):
        rows = []
        for variant in present_order(set(thesis.variant)):
            cell = runs[runs.variant == variant].accuracy
            row = {"variant": variant, f"{dataset} (ours, B = {THESIS_BATCH})": _mean_std(cell) if len(cell) else "–"}
            for name in THESIS_DATASETS:
                value = thesis[(thesis.dataset == name) & (thesis.variant == variant)].accuracy
                row[f"{name} (thesis)"] = f"{value.iloc[0]:.3f}" if len(value) else "–"
            rows.append(row)
        parts.append(pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts)


def _layer_mean(esm_last: pd.DataFrame) -> pd.DataFrame:
    layers = [c for c in esm_last.columns if re.fullmatch(r"l\d+", c)]
    return esm_last.assign(esm_mu=esm_last[layers].mean(axis=1))  # NaN layers (not BN here) skipped


def _welch(a: np.ndarray, b: np.ndarray) -> str:
    from scipy import stats

    if min(len(a), len(b)) < 2:
        return "–"
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(CONFIDENCE)
    return f"{a.mean() - b.mean():+.2f} [{interval.low:+.2f}, {interval.high:+.2f}]"


def esm_by_network(esm_last: pd.DataFrame) -> str:
    """Per batch size and row (``ESM_ROWS``): each network's layer-mean ESM_μ at the last epoch
    (mean ± std, n seeds) and the batch-free twin minus its BN network (Welch)."""
    frame = _layer_mean(esm_last[esm_last.estimator.isin(ESM_ROWS)])
    rows = []
    for twin, bn in BATCH_FREE_ARCHS.items():
        if not {twin, bn} <= set(frame.arch):
            continue
        for (dataset, regime, estimator), cells in frame.groupby(["dataset", "regime", "estimator"]):
            a, b = (cells[cells.arch == arch].esm_mu for arch in (twin, bn))
            if len(a) and len(b):
                rows.append({"data set": dataset, "batch": estimator_tables.batch_column(regime), "row": estimator,
                             bn: _mean_std(b, 2), twin: _mean_std(a, 2),
                             f"{twin} − {bn}": _welch(a.to_numpy(), b.to_numpy()),
                             "_rank": (-regime_rank(regime)[1], ESM_ROWS.index(estimator))})
    if not rows:
        return "(no network and batch-free twin in the study)"
    table = pd.DataFrame(rows).sort_values("_rank").drop(columns="_rank")
    return table.to_markdown(index=False, disable_numparse=True)


def against_mlp(cnn: pd.DataFrame, mlp: pd.DataFrame | None) -> str:
    """``SMALL_BATCH_PAIRS`` paired by seed for every network (the MLP study's and each CNN) at
    every batch size and data set of the CNN study: the mean and 95 % interval, – where a study
    lacks a row. An MLP regime counts at the CNN's regime of the same B (``mini-b100`` at ``mini``)."""
    studies = [cnn] if mlp is None else [cnn, _at_batch_sizes_of(mlp, cnn)]
    rows = []
    for metrics in studies:
        for arch, runs in metrics.groupby("arch"):
            # each network on its own, as its BN rows (with_variants would fold a twin into its BN network)
            runs = runs.assign(arch=BATCH_FREE_ARCHS.get(arch, arch))
            cells = paired_comparisons(runs, CONFIDENCE, SMALL_BATCH_PAIRS)
            if cells.empty:
                continue
            for _, c in cells[cells.metric == "accuracy"].iterrows():
                rows.append({"comparison": c.comparison.replace(" - ", " − "), "network": arch,
                             "column": estimator_tables.batch_column(c.regime), "regime": c.regime,
                             "cell": paired_cell(c.mean_difference, c.ci_low, c.ci_high, 4) + f" ({c.seeds})"})
    frame = pd.DataFrame(rows)
    wide = frame.pivot(index=["comparison", "network"], columns="column", values="cell")
    order = [f"{a} − {b}" for a, b in SMALL_BATCH_PAIRS]
    wide = wide.reindex(columns=estimator_tables._columns(frame.regime)).fillna("–")
    wide = wide.sort_index(key=lambda level: level.map(order.index) if level.name == "comparison" else level)
    return wide.reset_index().rename_axis(None, axis=1).to_markdown(index=False, disable_numparse=True)


def _at_batch_sizes_of(mlp: pd.DataFrame, cnn: pd.DataFrame) -> pd.DataFrame:
    """The MLP's runs on the CNN's data sets and batch sizes, renamed to the CNN's regimes."""
    regime_of = {batch_size(r): r for r in set(cnn.regime) if batch_size(r) is not None}
    mlp = mlp.assign(regime=mlp.regime.map(batch_size).map(regime_of))
    return mlp[mlp.regime.notna() & mlp.dataset.isin(set(cnn.dataset))]


def values_per_channel(spread: pd.DataFrame) -> str:
    """Per network and batch size, from PreciseBN's spread diagnostic (``summaries/precise_spread.csv``):
    n, the values each BN channel pools in a batch (B × H × W; B in an MLP), over the network's BN
    layers (min–max); (n−1)/n at the smallest n, the factor by which Bessel's correction separates
    the unbiased from the biased batch variance; and the variance of the batch means ÷
    (pooled variance / n) in layer 1 and the median over the layers after it (1: the n values
    spread as independent samples would; above 1: correlated, as neighbouring pixels are)."""
    rows = []
    for (arch, regime), cells in spread.groupby(["arch", "regime"]):
        n, later = cells.batch_size, cells[cells.layer > 1].ratio
        rows.append({"network": arch, "batch": estimator_tables.batch_column(regime),
                     "n per channel (min–max over layers)": f"{n.min():.0f}–{n.max():.0f}",
                     "(n−1)/n at the smallest n": f"{(n.min() - 1) / n.min():.4f}",
                     "spread ratio, layer 1 (median)": f"{cells[cells.layer == 1].ratio.median():.3f}",
                     "spread ratio, later layers (median)": f"{later.median():.3f}" if len(later) else "–",
                     "_rank": (arch, regime_rank(regime))})
    table = pd.DataFrame(rows).sort_values("_rank").drop(columns="_rank")
    return table.to_markdown(index=False, disable_numparse=True)


def _mlp_studies(published: Path, studies: list[str]) -> pd.DataFrame | None:
    """The MLP studies' runs as one frame; with several, each network is named ``arch (study)``,
    as their networks differ (epochs, seeds) and are never paired with each other."""
    frames = [pd.read_csv(published / study / "metrics.csv") for study in studies]
    if len(frames) > 1:
        frames = [f.assign(arch=f.arch + f" ({study})") for f, study in zip(frames, studies)]
    return pd.concat(frames, ignore_index=True) if frames else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", help="the published cnn studies under docs/results/, read as one")
    parser.add_argument("--mlp", nargs="+", default=[],
                        help="published MLP studies to set beside it (e.g. batch_sweep shift); each network is "
                             "named after its study where there are several")
    parser.add_argument("--published", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    roots = [args.published / study for study in args.studies]
    estimator_tables.main([*args.studies, "--published", str(args.published)])
    metrics = estimator_tables.joint(roots, "metrics.csv")
    paper = pd.read_csv(HERE.parent / "workflow" / "resources" / "paper_tables.csv")
    print(f"### Tables 5.3/5.4's layout at B = {THESIS_BATCH}, beside the thesis's CIFAR numbers "
          "(a stand-in: other data, other width; shown, not tested)\n")
    print(thesis_layout(metrics, paper) + "\n")
    esm = estimator_tables.joint(roots, "summaries/esm_last_epoch.csv")
    if esm is not None:
        print("### Does the batch-free twin lower ESM? ESM_μ at the last epoch, mean over each network's "
              f"BN layers (mean ± std, n seeds; Welch {CONFIDENCE:.0%} interval of the difference)\n")
        print(esm_by_network(esm) + "\n")
    spread = estimator_tables.joint(roots, "summaries/precise_spread.csv")
    if spread is not None:
        print("### Values per BN channel in a batch and Bessel's factor; the spread of the batch means "
              "(PreciseBN's batches, the final weights)\n")
        print(values_per_channel(spread) + "\n")
    mlp = _mlp_studies(args.published, args.mlp)
    print("### The MLP's small-batch questions asked of each network, paired by seed "
          f"(mean [{CONFIDENCE:.0%} CI] (n seeds))\n")
    print(against_mlp(metrics, mlp))


if __name__ == "__main__":
    main()
