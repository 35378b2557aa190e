"""Markdown tables for docs/ESTIMATORS.md ("Where each estimator wins"), generated from a
published batch-size study (docs/results/<study>/), so the page and the files cannot disagree.

    python docs/estimator_tables.py batch_sweep > /tmp/estimators.md

Per data set and architecture: how well the network trained at each batch size (last-epoch train accuracy, from
the published summaries), each estimator's test accuracy at every batch size (mean ± std over n
seeds), then its paired difference from the default EMA (β = 0.1) — same seed, same weights —
with the Student-t 95 % interval, marked where the interval excludes zero.
Intervals come from ``dmbn.tables.paired_comparisons``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from dmbn.names import DEFAULT_ESTIMATOR, FULL_BATCH_REGIMES, family_batch_size, regime_rank  # noqa: E402
from dmbn.tables import paired_comparisons, present_order, with_variants  # noqa: E402

CONFIDENCE = 0.95
BETTER, WORSE = "▲", "▼"  # the paired interval lies above / below zero


def batch_column(regime: str) -> str:
    """A batch size's column: ``B = 8`` … , ``full`` for the full-batch regimes."""
    return "full" if regime in FULL_BATCH_REGIMES else f"B = {family_batch_size(regime)}"


def _columns(regimes) -> list[str]:
    """Batch sizes ascending, full batch last (``regime_rank`` puts the largest first)."""
    ordered = sorted(set(regimes), key=regime_rank, reverse=True)
    return list(dict.fromkeys(batch_column(r) for r in ordered))


def training_table(training: pd.DataFrame) -> str:
    """Train accuracy (train mode, running over the last epoch) at each batch size: mean ± std,
    min–max (n seeds) — an estimator can only be as good as the weights it is given. One
    architecture; the members of a run (the separate protocol's βs) share its trajectory, so a
    seed counts once."""
    per_seed = training.groupby(["regime", "seed"]).train_accuracy.mean()
    cells = per_seed.groupby("regime").agg(["mean", "std", "min", "max", "count"])
    row = {batch_column(regime): f"{c['mean']:.3f} ± {c['std']:.3f}, {c['min']:.3f}–{c['max']:.3f} ({c['count']:.0f})"
           for regime, c in cells.iterrows()}
    frame = pd.DataFrame([{"": "train accuracy, last epoch", **row}])
    return frame[[""] + _columns(cells.index)].to_markdown(index=False)


def accuracy_table(metrics: pd.DataFrame) -> str:
    """Test accuracy of each variant at each batch size: mean ± std (n seeds)."""
    frame = with_variants(metrics)
    cells = frame.groupby(["variant", "regime"]).accuracy.agg(["mean", "std", "count"]).reset_index()
    cells["cell"] = [f"{m:.3f} ± {s:.3f} ({n})" for m, s, n in zip(cells["mean"], cells["std"], cells["count"])]
    cells["column"] = cells.regime.map(batch_column)
    wide = cells.pivot(index="variant", columns="column", values="cell")
    wide = wide.loc[present_order(wide.index), _columns(frame.regime)]
    return wide.rename_axis("variant").reset_index().rename_axis(None, axis=1).to_markdown(index=False)


def paired_table(metrics: pd.DataFrame, reference: str = DEFAULT_ESTIMATOR) -> str:
    """Each estimator minus ``reference`` (accuracy, paired by seed) at each batch size: the mean
    difference with its 95 % interval, ▲/▼ where the interval excludes zero."""
    variants = [v for v in present_order(with_variants(metrics).variant.unique()) if v != reference]
    pairs = tuple((v, reference) for v in variants)
    rows = paired_comparisons(metrics, CONFIDENCE, pairs)
    rows = rows[rows.metric == "accuracy"].assign(
        variant=lambda f: f.comparison.str.removesuffix(f" - {reference}"),
        column=lambda f: f.regime.map(batch_column))
    rows["cell"] = [_difference(m, lo, hi) for m, lo, hi in zip(rows.mean_difference, rows.ci_low, rows.ci_high)]
    wide = rows.pivot(index="variant", columns="column", values="cell")
    wide = wide.loc[[v for v in variants if v in wide.index], _columns(rows.regime)]
    return wide.rename_axis(f"minus {reference}").reset_index().rename_axis(None, axis=1).to_markdown(index=False)


def _difference(mean: float, low: float, high: float) -> str:
    mark = BETTER if low > 0 else WORSE if high < 0 else ""
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]{mark}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a folder under docs/results/ with a batch-size study")
    args = parser.parse_args(argv)
    study = HERE / "results" / args.study
    metrics = pd.read_csv(study / "metrics.csv")
    training_file = study / "summaries" / "training_last_epoch.csv"
    training = pd.read_csv(training_file) if training_file.exists() else None  # older studies lack it
    for (dataset, arch), runs in metrics.groupby(["dataset", "arch"], sort=False):
        if training is not None:
            trained = training[(training.dataset == dataset) & (training.arch == arch)]
            print(f"### {dataset}, {arch}: how well the network trained at each batch size\n")
            print(training_table(trained) + "\n")
        print(f"### {dataset}, {arch}: test accuracy against batch size (mean ± std, n seeds)\n")
        print(accuracy_table(runs))
        print(f"\n### {dataset}, {arch}: minus the default EMA, paired by seed (95 % CI; "
              f"{BETTER} above zero, {WORSE} below)\n")
        print(paired_table(runs))
        print()


if __name__ == "__main__":
    main()
