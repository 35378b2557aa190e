"""Markdown tables for docs/ESTIMATORS.md ("Where each estimator wins"), generated from a
published batch-size study (docs/results/<study>/), so the page and the files cannot disagree.

    python docs/estimator_tables.py batch_sweep > /tmp/estimators.md

Per data set and BN architecture (with its BN-BFN twin as the `bn-bfn` row): how well the network trained at each batch size (last-epoch train accuracy, from
the published summaries), each estimator's test accuracy at every batch size (mean ± std over n
seeds), then its paired difference from the default EMA (β = 0.1) — same seed, same weights —
with the Student-t 95 % interval, marked where the interval excludes zero; then β* of DMBN and
its variants and every estimator's ESM_μ at each batch size (from the published summaries).
Intervals come from ``dmbn.tables.paired_comparisons``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from dmbn.names import BATCH_FREE_ARCHS, DEFAULT_ESTIMATOR, FULL_BATCH_REGIMES, family_batch_size, regime_rank  # noqa: E402
from dmbn.tables import paired_comparisons, present_order, with_variants  # noqa: E402

CONFIDENCE = 0.95
# The reviewer's questions (issue #14), each a paired difference a − b: does choosing β* need
# the look-back, which ESM criterion matters, is DMBN more than a horizon-matched EMA, and how
# do DMBN, prediction-time BN and the moment EMA compare with PreciseBN.
QUESTIONS = (("dmbn-causal", "dmbn"), ("dmbn-sigma", "dmbn"), ("dmbn-mu-sigma", "dmbn"),
             ("dmbn", "horizon-0.1"), ("dmbn", "static-1"), ("dmbn", "precise"), ("test-batch", "precise"),
             ("moment-0.1", "precise"), ("recalibrated", "precise"))
BETTER, WORSE = "▲", "▼"  # the paired interval lies above / below zero


def batch_column(regime: str) -> str:
    """A batch size's column: ``B = 8`` …, ``full`` (held out), ``full (thesis)`` (the thesis's
    full batch, trained on the test set); a regime without its own batch size keeps its name."""
    if regime in FULL_BATCH_REGIMES:
        return "full" if regime == "full-heldout" else f"{regime} (thesis)"
    size = family_batch_size(regime)
    return regime if size is None else f"B = {size}"


def _columns(regimes) -> list[str]:
    """Batch sizes ascending, full batch last (``regime_rank`` puts the largest first)."""
    ordered = sorted(set(regimes), key=regime_rank, reverse=True)
    return list(dict.fromkeys(batch_column(r) for r in ordered))


def training_table(training: pd.DataFrame) -> str:
    """Train accuracy (train mode, running over the last epoch) at each batch size, one row per
    architecture: mean ± std, min–max (n seeds) — an estimator can only be as good as the weights
    it is given. The members of a run (the separate protocol's βs) share its trajectory, so a seed
    counts once."""
    per_seed = training.groupby(["arch", "regime", "seed"]).train_accuracy.mean().reset_index()
    cells = per_seed.groupby(["arch", "regime"]).train_accuracy.agg(["mean", "std", "min", "max", "count"]).reset_index()
    cells["cell"] = [f"{c['mean']:.3f} ± {c['std']:.3f}, {c['min']:.3f}–{c['max']:.3f} ({c['count']:.0f})"
                     for _, c in cells.iterrows()]
    return _wide(cells, "arch", "train accuracy (last epoch)")


def family(arch: str) -> str:
    """The BN architecture an architecture's rows belong to: itself, or its BN-BFN twin's BN arch
    (the twin is the `bn-bfn` row of the BN network's tables)."""
    return BATCH_FREE_ARCHS.get(arch, arch)


def accuracy_table(metrics: pd.DataFrame) -> str:
    """Test accuracy of each variant at each batch size: mean ± std (n seeds)."""
    cells = _mean_std(with_variants(metrics), "variant", "accuracy")
    return _wide(cells, "variant", "variant")


def paired_table(metrics: pd.DataFrame, reference: str = DEFAULT_ESTIMATOR) -> str:
    """Each estimator minus ``reference`` (accuracy, paired by seed) at each batch size: the mean
    difference with its 95 % interval, ▲/▼ where the interval excludes zero."""
    variants = [v for v in present_order(with_variants(metrics).variant.unique()) if v != reference]
    return _paired(metrics, tuple((v, reference) for v in variants), f"minus {reference}", shown=lambda a, b: a)


def questions_table(metrics: pd.DataFrame) -> str | None:
    """The ``QUESTIONS`` pairs whose rows the study has, as ``paired_table``'s cells (None: none)."""
    present = set(with_variants(metrics).variant)
    pairs = tuple(q for q in QUESTIONS if set(q) <= present)
    return _paired(metrics, pairs, "paired difference") if pairs else None


def _paired(metrics: pd.DataFrame, pairs: tuple[tuple[str, str], ...], name: str,
            shown=lambda a, b: f"{a} − {b}") -> str:
    """Accuracy differences a − b by seed for ``pairs``, a row each (named ``shown(a, b)``)."""
    rows = paired_comparisons(metrics, CONFIDENCE, pairs)
    rows = rows[rows.metric == "accuracy"].copy()
    rows["cell"] = [_difference(m, lo, hi) for m, lo, hi in zip(rows.mean_difference, rows.ci_low, rows.ci_high)]
    names = {f"{a} - {b}": shown(a, b) for a, b in pairs}  # paired_comparisons' key -> row name
    rows["row"] = rows.comparison.map(names)
    return _wide(rows, "row", name, order=list(names.values()))


def beta_star_table(beta_star: pd.DataFrame) -> str:
    """β* at each run's last epoch, per choosing kind (DMBN and its variants) and batch size:
    median and min–max over seeds × BN layers (n)."""
    epochs = [c for c in beta_star.columns if re.fullmatch(r"e\d+", c)]
    last = beta_star[epochs].ffill(axis=1).iloc[:, -1]  # a shorter run keeps its own last epoch
    frame = beta_star.assign(beta=last)
    if "estimator" not in frame.columns:  # summaries written before the variants: DMBN's alone
        frame["estimator"] = "dmbn"
    cells = frame.groupby(["estimator", "regime"]).beta.agg(["median", "min", "max", "count"]).reset_index()
    cells["cell"] = [f"{c['median']:.2f} ({c['min']:.2f}–{c['max']:.2f}; {c['count']:.0f})"
                     for _, c in cells.iterrows()]
    return _wide(cells, "estimator", "β* (last epoch)")


def esm_table(esm_last: pd.DataFrame) -> str:
    """ESM_μ at each run's last epoch, averaged over the BN layers, per estimator and batch
    size: mean ± std (n seeds)."""
    layers = [c for c in esm_last.columns if re.fullmatch(r"l\d+", c)]
    cells = _mean_std(esm_last.assign(esm_mu=esm_last[layers].mean(axis=1)), "estimator", "esm_mu")
    return _wide(cells, "estimator", "ESM_μ (last epoch, mean of layers)")


def _mean_std(frame: pd.DataFrame, row: str, value: str) -> pd.DataFrame:
    """(row, regime, cell): ``value``'s mean ± std over the frame's seeds, and their number."""
    cells = frame.groupby([row, "regime"])[value].agg(["mean", "std", "count"]).reset_index()
    cells["cell"] = [f"{m:.3f} ± {s:.3f} ({n})" for m, s, n in zip(cells["mean"], cells["std"], cells["count"])]
    return cells


def _wide(cells: pd.DataFrame, row: str, name: str, order: list[str] | None = None) -> str:
    """Cells (``row``, regime, cell) as a markdown table: rows in ``order`` (default: the tables'
    order), batch sizes ascending, – where a row has no value at a batch size."""
    wide = cells.assign(column=cells.regime.map(batch_column)).pivot(index=row, columns="column", values="cell")
    rows = present_order(wide.index) if order is None else [r for r in order if r in wide.index]
    wide = wide.loc[rows, _columns(cells.regime)].fillna("–")
    return wide.rename_axis(name).reset_index().rename_axis(None, axis=1).to_markdown(index=False)


def _difference(mean: float, low: float, high: float) -> str:
    mark = BETTER if low > 0 else WORSE if high < 0 else ""
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]{mark}"


def _summary(study: Path, name: str) -> pd.DataFrame | None:
    """A published summary, or None: studies published before it existed lack it."""
    path = study / "summaries" / f"{name}.csv"
    return pd.read_csv(path) if path.exists() else None


def _section(title: str, table: str) -> None:
    print(f"### {title}\n\n{table}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a folder under docs/results/ with a batch-size study")
    args = parser.parse_args(argv)
    study = HERE / "results" / args.study
    metrics = pd.read_csv(study / "metrics.csv")
    training, beta_star, esm = (_summary(study, n) for n in ("training_last_epoch", "beta_star", "esm_last_epoch"))
    for (dataset, arch), runs in metrics.groupby(["dataset", metrics.arch.map(family)], sort=False):
        def of(frame: pd.DataFrame, archs=(arch,)) -> pd.DataFrame:
            return frame[(frame.dataset == dataset) & frame.arch.isin(archs)]

        if training is not None:
            archs = [a for a in training.arch.unique() if family(a) == arch]
            _section(f"{dataset}, {arch}: how well the network trained at each batch size",
                     training_table(of(training, archs)))
        _section(f"{dataset}, {arch}: test accuracy against batch size (mean ± std, n seeds)",
                 accuracy_table(runs))
        _section(f"{dataset}, {arch}: minus the default EMA, paired by seed (95 % CI; "
                 f"{BETTER} above zero, {WORSE} below)", paired_table(runs))
        questions = questions_table(runs)
        if questions is not None:
            _section(f"{dataset}, {arch}: the reviewer's questions, paired by seed (95 % CI)", questions)
        if beta_star is not None and len(of(beta_star)):
            _section(f"{dataset}, {arch}: β* at the last epoch (median, min–max over seeds × BN layers; n)",
                     beta_star_table(of(beta_star)))
        if esm is not None and len(of(esm)):
            _section(f"{dataset}, {arch}: ESM_μ at the last epoch, mean over BN layers (mean ± std, n seeds)",
                     esm_table(of(esm)))


if __name__ == "__main__":
    main()
