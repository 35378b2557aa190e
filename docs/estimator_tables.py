"""Markdown tables for docs/ESTIMATORS.md ("Where each estimator wins"), generated from a
published batch-size study (docs/results/<study>/), so the page and the files cannot disagree.

    python docs/estimator_tables.py batch_sweep > /tmp/estimators.md

Per data set and BN architecture (with its BN-BFN twin as the `bn-bfn` row): how well the network trained at each batch size (last-epoch train accuracy, from
the published summaries), each estimator's test accuracy at every batch size (mean ± std over n
seeds), then its paired difference from the default EMA (β = 0.1) — same seed, same weights —
with the Student-t 95 % interval, marked where the interval excludes zero; then β* of DMBN and
its variants and every estimator's ESM_μ at each batch size (from the published summaries); and the
numbers the findings quote that no table shows (cost and overlaps from the run cards, interval
counts, every mark's reading under the page's one rule, ranges, (B−1)/B), one labelled line each.
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

from dmbn.names import (BATCH_FREE_ARCHS, DEFAULT_ESTIMATOR, FULL_BATCH_REGIMES, estimator_kind,  # noqa: E402
                        family_batch_size, is_estimator_name, regime_rank)
from dmbn.tables import interval_sign, mark_verdict, paired_comparisons, present_order, with_variants  # noqa: E402
from dmbn.readback import read_parts  # noqa: E402
from lr_sweep import CRITERION  # noqa: E402  (the lr sweep's criterion: the ESM set, never the test set)

CONFIDENCE = 0.95
# The reviewer's questions (issue #14), each a paired difference a − b: does choosing β* need
# the look-back, which ESM criterion matters, is DMBN more than a horizon-matched EMA, and how
# do DMBN, prediction-time BN and the moment EMA compare with PreciseBN; and (issue #27) what
# Bessel's factor alone does to the mean of the batch variances, and what the observed spread of
# the batch means adds to it (PreciseBN's σ̂² is that mean plus the spread).
QUESTIONS = (("dmbn-causal", "dmbn"), ("dmbn-sigma", "dmbn"), ("dmbn-mu-sigma", "dmbn"),
             ("dmbn", "horizon-0.1"), ("dmbn", "static-1"), ("dmbn", "precise"), ("test-batch", "precise"),
             ("moment-0.1", "precise"), ("recalibrated", "precise"),
             ("precise-mean-biased", "precise-mean-unbiased"), ("precise", "precise-mean-biased"))
# The rows that separate the two explanations of the small-batch collapse (docs/ESTIMATORS.md,
# finding 2), each a − b: Bessel's factor taken out of the EMA, Bessel's factor alone (the same
# batches, no spread of their means in either), the observed spread of the batch means added.
SEPARATING = (("static-biased-0.1", DEFAULT_ESTIMATOR), ("precise-mean-biased", "precise-mean-unbiased"),
              ("precise", "precise-mean-biased"))
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


TRAINING_ROWS = (("train_accuracy", "train accuracy"), ("train_loss", "train loss"),
                 (CRITERION, "ESM-set accuracy, recalibrated"))


def training_table(training: pd.DataFrame, curves: pd.DataFrame | None = None) -> str:
    """How well the networks trained at each batch size, rows per architecture: train accuracy and
    train loss (train mode, running over the last epoch), and where a study publishes its
    training curves the ESM-set accuracy with recalibrated statistics at the last epoch (the lr
    sweep's criterion: train mode's loss at a small batch carries its batch statistics' noise);
    mean ± std, min–max (n seeds). An estimator can only be as good as the weights it is given.
    The members of a run (the separate protocol's βs) share its trajectory, so a seed counts once."""
    keys = ["arch", "regime", "seed"]
    per_seed = training.groupby(keys)[["train_accuracy", "train_loss"]].mean().reset_index()
    if curves is not None and CRITERION in curves:
        last = curves[curves.epoch == curves.groupby(keys + ["member"]).epoch.transform("max")]
        per_seed = per_seed.merge(last.groupby(keys)[CRITERION].mean().reset_index(), on=keys, how="left")
    parts = []
    for column, what in (row for row in TRAINING_ROWS if row[0] in per_seed):
        cells = per_seed.groupby(["arch", "regime"])[column].agg(["mean", "std", "min", "max", "count"]).reset_index()
        cells = cells[cells["count"] > 0]
        cells["cell"] = [_mean_with_std(c["mean"], c["std"], c["count"])
                         + (f", {c['min']:.3f}–{c['max']:.3f}" if c["count"] > 1 else "") + f" ({c['count']:.0f})"
                         for _, c in cells.iterrows()]
        parts.append(cells.assign(arch=cells.arch + ", " + what))
    cells = pd.concat(parts, ignore_index=True)
    order = [f"{arch}, {what}" for arch in present_order(per_seed.arch.unique()) for _, what in TRAINING_ROWS]
    return _wide(cells, "arch", "last epoch", order=order)


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
    cells["cell"] = [f"{_mean_with_std(m, s, n)} ({n})" for m, s, n in zip(cells["mean"], cells["std"], cells["count"])]
    return cells


def _mean_with_std(mean: float, std: float, n: int) -> str:
    """"mean ± std", or the mean alone where one seed has no spread (pandas' std of one value is
    NaN, which a reader would take for a failed run)."""
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _wide(cells: pd.DataFrame, row: str, name: str, order: list[str] | None = None) -> str:
    """Cells (``row``, regime, cell) as a markdown table: rows in ``order`` (default: the tables'
    order), batch sizes ascending, – where a row has no value at a batch size."""
    wide = cells.assign(column=cells.regime.map(batch_column)).pivot(index=row, columns="column", values="cell")
    rows = present_order(wide.index) if order is None else [r for r in order if r in wide.index]
    wide = wide.loc[rows, _columns(cells.regime)].fillna("–")
    # cells are formatted strings: a one-seed difference "+0.0251" must not be re-read as a number
    return wide.rename_axis(name).reset_index().rename_axis(None, axis=1).to_markdown(index=False, disable_numparse=True)


def _difference(mean: float, low: float, high: float) -> str:
    if pd.isna(low):  # one seed: a difference, but no interval
        return f"{mean:+.4f}"
    mark = BETTER if low > 0 else WORSE if high < 0 else ""
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]{mark}"


def _summary(studies: list[Path], name: str) -> pd.DataFrame | None:
    """A published summary of every study, concatenated, or None: studies published before it
    existed lack it."""
    return joint(studies, f"summaries/{name}.csv")


def joint(studies: list[Path], name: str) -> pd.DataFrame | None:
    """One published file of several studies (the parts of one study, a batch size or a seed each)
    read as one by ``dmbn.readback.read_parts``, which refuses a run that two parts both hold; None
    where none has it."""
    frame = read_parts(studies, name)
    return None if frame is None else frame.drop(columns="study")


def _section(title: str, table: str) -> None:
    print(f"### {title}\n\n{table}\n")



# ---- numbers the findings quote (tests/test_prose_numbers.py requires every number of the
# page's prose to be printed by this script), one labelled line each.

def interval_cells(metrics: pd.DataFrame, confidence: float = CONFIDENCE) -> pd.DataFrame:
    """Every accuracy interval the page's two paired tables show: the default-EMA table's and
    the questions'."""
    variants = [v for v in present_order(with_variants(metrics).variant.unique()) if v != DEFAULT_ESTIMATOR]
    present = set(with_variants(metrics).variant)
    pairs = tuple((v, DEFAULT_ESTIMATOR) for v in variants) + tuple(q for q in QUESTIONS if set(q) <= present)
    rows = paired_comparisons(metrics, confidence, pairs)
    return rows[(rows.metric == "accuracy") & (rows.seeds > 1)].reset_index(drop=True)  # one seed: no interval


def multiplicity(metrics: pd.DataFrame) -> list[str]:
    """How many intervals the page shows, how many exclude zero, how many would by chance, and
    the t quantile behind an n-seed interval."""
    from scipy import stats

    cells = interval_cells(metrics)
    if cells.empty:
        return ["intervals on this page: none (one seed per cell)"]
    excluding = sum(interval_sign(lo, hi) != 0 for lo, hi in zip(cells.ci_low, cells.ci_high))
    seeds = sorted(cells.seeds.unique())
    quantiles = ", ".join(f"t = {stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1):.2f} for n = {n} ({n - 1} degrees of freedom)"
                          for n in seeds)
    return [f"intervals on this page (both paired tables): {len(cells)}, {excluding} of {len(cells)} exclude zero; "
            f"at 95 % with no difference anywhere about 1 in 20, i.e. {len(cells) / 20:.0f} of {len(cells)}, "
            f"would by chance",
            f"Student-t quantile of a 95 % interval: {quantiles}"]


def marks(metrics: pd.DataFrame) -> list[str]:
    """Every interval excluding zero under the page's one rule: *repeated* when the same row
    excludes zero in the same direction at a neighbouring batch size, *survives adjustment* when
    it still excludes zero with every interval of the page adjusted together (Bonferroni), else
    *isolated* (quoted, never read as an effect)."""
    cells = interval_cells(metrics)
    if cells.empty:
        return []
    adjusted = interval_cells(metrics, 1 - (1 - CONFIDENCE) / len(cells))
    cells = cells.assign(sign=[interval_sign(lo, hi) for lo, hi in zip(cells.ci_low, cells.ci_high)],
                         adjusted=[interval_sign(lo, hi) for lo, hi in zip(adjusted.ci_low, adjusted.ci_high)],
                         column=cells.regime.map(batch_column))
    order = _columns(cells.regime)
    lines = []
    for _, c in cells[cells.sign != 0].iterrows():
        at = order.index(c.column)
        neighbours = cells[(cells.comparison == c.comparison)
                           & cells.column.isin(order[max(at - 1, 0):at] + order[at + 1:at + 2])]
        verdict = mark_verdict(c.sign, neighbours.sign, c.adjusted)
        lines.append(f"mark, {c.comparison.replace(' - ', ' − ')}, {c.column}: "
                     f"{_difference(c.mean_difference, c.ci_low, c.ci_high)} {verdict}")
    return lines


def half_widths(metrics: pd.DataFrame, columns=("B = 32", "B = 100", "B = 1000"), skip=("cma",)) -> list[str]:
    """Half-widths of the default-EMA table's intervals at the middle batch sizes: what 3 seeds
    resolve (10th–90th percentile, every row but ``skip``)."""
    cells = interval_cells(metrics)
    row, reference = cells.comparison.str.split(" - ").str[0], cells.comparison.str.split(" - ").str[1]
    cells = cells[cells.regime.map(batch_column).isin(columns) & (reference == DEFAULT_ESTIMATOR) & ~row.isin(skip)]
    if cells.empty:
        return []
    half = (cells.ci_high - cells.ci_low) / 2
    present = [c for c in _columns(cells.regime) if c in columns]  # name only the batch sizes the study has
    return [f"half-width of the intervals against {DEFAULT_ESTIMATOR}, {', '.join(present)}, every row but "
            f"{', '.join(skip)}: {half.quantile(0.1):.4f}–{half.quantile(0.9):.4f} (10th–90th percentile of "
            f"{len(half)}), median {half.median():.4f}"]


def bessel_factors(metrics: pd.DataFrame) -> list[str]:
    """(B−1)/B at each mini-batch size: what PyTorch's unbiased running_var carries against the
    biased batch variance that train-mode BN normalises with."""
    sizes = sorted({family_batch_size(r) for r in metrics.regime.unique()} - {None})
    return ["(B−1)/B, the ratio of the biased to the unbiased batch variance: "
            + ", ".join(f"B = {b}: {(b - 1) / b:g}" for b in sizes)] if sizes else []


def seeds_above(metrics: pd.DataFrame) -> list[str]:
    """Per ``SEPARATING`` pair and batch size, in how many seeds a's test accuracy is above b's
    (a sign test's count, beside the paired interval, which few seeds make wide), and over every
    network of the study (each seed at each batch size is its own training): the count and the
    one-sided sign test against 1/2 (no difference: either row above with probability 1/2)."""
    from scipy.stats import binomtest

    lines = []
    for a, b in SEPARATING:
        if not {a, b} <= set(metrics.estimator):
            continue
        wide = metrics[metrics.estimator.isin([a, b])].pivot_table(
            index=["regime", "seed"], columns="estimator", values="accuracy").dropna()
        regimes = sorted(set(wide.index.get_level_values("regime")), key=regime_rank, reverse=True)
        counts = [f"{batch_column(r)}: {int((wide.loc[r, a] > wide.loc[r, b]).sum())} of {len(wide.loc[r])}"
                  for r in regimes]
        above, networks = int((wide[a] > wide[b]).sum()), len(wide)
        p = binomtest(above, networks, 0.5, alternative="greater").pvalue
        lines.append(f"seeds in which {a} is above {b}: " + ", ".join(counts)
                     + f"; every network (seed × batch size): {above} of {networks}, one-sided sign test p = {p:.2g}")
    return lines


def esm_against_accuracy(metrics: pd.DataFrame, esm_last: pd.DataFrame | None,
                         rows=("static-0.1", "horizon-0.1", "moment-0.1", "dmbn", "precise")) -> list[str]:
    """Per batch size: ``rows`` ordered by mean ESM_μ (last epoch, mean of layers; lowest first)
    and by mean test accuracy (highest first): whether ESM_μ ranks the kinds as accuracy does."""
    if esm_last is None or esm_last.empty:
        return []
    layers = [c for c in esm_last.columns if re.fullmatch(r"l\d+", c)]
    esm = esm_last.assign(esm_mu=esm_last[layers].mean(axis=1)).groupby(["regime", "estimator"]).esm_mu.mean()
    accuracy = metrics.groupby(["regime", "estimator"]).accuracy.mean()
    lines = []
    for regime in sorted(set(esm.index.get_level_values(0)), key=regime_rank, reverse=True):
        present = [r for r in rows if (regime, r) in esm.index and (regime, r) in accuracy.index]
        by_esm = sorted(present, key=lambda r: esm[(regime, r)])
        by_accuracy = sorted(present, key=lambda r: -accuracy[(regime, r)])
        lines.append(f"{batch_column(regime)}: by ESM_μ (lowest first) "
                     + ", ".join(f"{r} {esm[(regime, r)]:.3f}" for r in by_esm)
                     + "; by test accuracy (highest first) "
                     + ", ".join(f"{r} {accuracy[(regime, r)]:.3f}" for r in by_accuracy)
                     + ("; same order" if by_esm == by_accuracy else "; order differs"))
    return lines


VARIANCE_EMA_KINDS = ("static", "horizon", "dmbn", "dmbn-sigma", "dmbn-mu-sigma", "dmbn-causal")


def variance_ema_ranges(metrics: pd.DataFrame) -> list[str]:
    """At each batch size, the range of the mean test accuracies of every EMA of BN's per-batch
    variances (static, horizon-matched, DMBN and its variants), and of the static rows from the
    default β = 0.1 up."""
    means = metrics.groupby(["regime", "estimator"]).accuracy.mean().reset_index()
    # by registry kind, not by prefix: `static-biased-β` (the biased-variance EMA, issue #27) is
    # a row to compare against these, not one of them
    kind = means.estimator.map(lambda name: estimator_kind(name) if is_estimator_name(name) else None)
    kind = kind.where(kind.isin(VARIANCE_EMA_KINDS))
    lines = []
    for regime in sorted(means.regime.unique(), key=regime_rank, reverse=True):
        at = means.regime == regime
        beta = pd.to_numeric(means.estimator.str.removeprefix("static-"), errors="coerce")
        ema, static = means[at & kind.notna()].accuracy, means[at & (kind == "static") & (beta >= 0.1)].accuracy
        if len(ema):
            lines.append(f"{batch_column(regime)}: EMAs of per-batch variances (static, horizon, DMBN and its "
                         f"variants) {ema.min():.3f}–{ema.max():.3f}; static from β = 0.1 to 1 "
                         f"{static.min():.3f}–{static.max():.3f}")
    return lines

def _published_cards() -> dict[str, pd.DataFrame]:
    return {folder.name: pd.read_csv(folder / "run_cards.csv", parse_dates=["started", "finished"])
            for folder in sorted((HERE / "results").iterdir()) if (folder / "run_cards.csv").exists()}


def cost(name: str) -> list[str]:
    """Job time from the run cards; which runs shared the machine with another published study
    (and for how long both were in progress); and the cost of the study from the runs that shared
    it with none: the median run at each batch size, times the seeds, on 2 cores."""
    cards = _published_cards()
    ours = cards.get(name)
    if ours is None:
        return []
    lines = [f"job time: {ours.wall_seconds.sum() / 3600:.2f} h for {len(ours)} runs"]
    alone = pd.Series(True, index=ours.index)
    for other, theirs in cards.items():
        if other == name:
            continue
        shared = pd.Series([((theirs.started < r.finished) & (theirs.finished > r.started)).any()
                            for _, r in ours.iterrows()], index=ours.index)
        alone &= ~shared
        if shared.any():
            both = min(ours.finished.max(), theirs.finished.max()) - max(ours.started.min(), theirs.started.min())
            runs = ", ".join(f"{batch_column(r.regime)} seed {r.seed}: {r.wall_seconds:.0f} s"
                             for _, r in ours[shared].iterrows())
            lines.append(f"runs that overlapped a run of `{other}`: {shared.sum()} of {len(ours)} ({runs}); "
                         f"both studies in progress for {both.total_seconds() / 60:.0f} min")
    for regime, runs in ours.groupby("regime"):
        if (~alone[runs.index]).any() and alone[runs.index].any():
            slow, fast = runs[~alone[runs.index]].wall_seconds.max(), runs[alone[runs.index]].wall_seconds.min()
            lines.append(f"{batch_column(regime)}: slowest shared run ÷ fastest unshared run: {slow / fast:.1f}×")
    medians = ours[alone].groupby("regime").wall_seconds.median()
    if medians.empty:  # no unshared run to time: say so rather than print an empty median
        lines.append("median run that shared the machine with no other study: none, every run shared it")
        return lines
    seeds = ours.groupby("regime").seed.nunique()
    total = (medians * seeds.reindex(medians.index)).sum()
    order = sorted(medians.index, key=regime_rank, reverse=True)
    lines.append("median run that shared the machine with no other study: "
                 + ", ".join(f"{batch_column(r)}: {medians[r]:.0f} s" for r in order)
                 + f"; × seeds: {total:.0f} core-seconds, {total / 2 / 3600:.1f} h on 2 cores")
    return lines


def batch_mean_spread(spread: pd.DataFrame | None) -> list[str]:
    """Per batch size, the variance of PreciseBN's batch means ÷ (pooled variance / B) per BN
    layer (``summaries/precise_spread.csv``): 1 where batch means spread as independent samples
    would, below 1 where normalising the layers before holds them still. Layer 1 (whose input is
    the data) apart from the layers after a BN layer: median (min–max; n layer-runs)."""
    if spread is None or spread.empty:
        return []
    lines = []
    for regime in sorted(set(spread.regime), key=regime_rank, reverse=True):
        cells = spread[spread.regime == regime]
        parts = []
        for name, chosen in (("layer 1", cells.layer == 1), ("layers 2 and after", cells.layer > 1)):
            ratio = cells[chosen].ratio
            if len(ratio):
                parts.append(f"{name} {ratio.median():.3f} ({ratio.min():.3f}–{ratio.max():.3f}; {len(ratio)})")
        lines.append(f"{batch_column(regime)}: variance of PreciseBN's batch means ÷ (pooled variance / B): "
                     + ", ".join(parts))
    return lines


def quoted_numbers(studies: list[Path], metrics: pd.DataFrame, esm_last: pd.DataFrame | None,
                   spread: pd.DataFrame | None = None) -> str:
    """The section "Numbers quoted in the findings" of one data set and architecture, from one
    study or several read as one (the cost lines then name their study)."""
    lines = [f"`{study.name}`: {line}" if len(studies) > 1 else line for study in studies for line in cost(study.name)]
    lines += multiplicity(metrics) + marks(metrics) + half_widths(metrics)
    lines += variance_ema_ranges(metrics) + bessel_factors(metrics) + esm_against_accuracy(metrics, esm_last)
    lines += seeds_above(metrics) + batch_mean_spread(spread)
    return "\n".join(f"* {line}" for line in lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", help="folders under docs/results/ with a batch-size study; "
                        "several (the parts of one study, a batch size or a seed each) are read as one")
    parser.add_argument("--published", type=Path, default=HERE / "results",
                        help="where the published studies are (default: docs/results)")
    args = parser.parse_args(argv)
    studies = [args.published / study for study in args.studies]
    metrics = joint(studies, "metrics.csv")
    if metrics is None:
        raise SystemExit(f"no metrics.csv in {', '.join(map(str, studies))}")
    training, curves, beta_star, esm, spread = (_summary(studies, n) for n in (
        "training_last_epoch", "training_curves", "beta_star", "esm_last_epoch", "precise_spread"))
    for (dataset, arch), runs in metrics.groupby(["dataset", metrics.arch.map(family)], sort=False):
        def of(frame: pd.DataFrame, archs=(arch,)) -> pd.DataFrame:
            return frame[(frame.dataset == dataset) & frame.arch.isin(archs)]

        if training is not None:
            archs = [a for a in training.arch.unique() if family(a) == arch]
            _section(f"{dataset}, {arch}: how well the network trained at each batch size",
                     training_table(of(training, archs), None if curves is None else of(curves, archs)))
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
        _section(f"{dataset}, {arch}: numbers quoted in the findings",
                 quoted_numbers(studies, runs[runs.arch == arch], None if esm is None else of(esm),
                                None if spread is None else of(spread)))


if __name__ == "__main__":
    main()
