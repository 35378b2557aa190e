"""Markdown tables for docs/REPRODUCTION.md, generated from published studies' files
(docs/results/<study>/), so that the page and the committed files cannot disagree.

    python docs/reproduction_tables.py mlp --rounding mlp_threads --heldout heldout_seeds > /tmp/tables.md

Sections: per data set and regime, the thesis's (single-run) numbers beside our mean ± std over
n seeds and our 95 % prediction interval for one run; paired comparisons over seeds (95 % t
interval); the static rows within one run against their seed spread; DMBN's β* and its ESM_μ
against every static β (from the published summaries); the noise measured two ways (seed to
seed, and rounding: same seed, other thread count); what the study cost (its run cards); and
"Numbers quoted in the findings": each number the page's prose quotes that no table shows (ratios,
counts, overlaps with other published studies, intervals of BN − BN-BFN like for like, and every
interval that excludes zero with its reading under the page's one rule), one labelled line each.
Intervals come from ``dmbn.tables``; the rest are counts and quantiles of committed files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from dmbn.config import PART_NAME, paper_names as dmbn_paper_names  # noqa: E402
from dmbn.names import DEFAULT_ESTIMATOR, REGIMES, estimator_kind, is_estimator_name, regime_label  # noqa: E402
from dmbn.readback import read_parts  # noqa: E402
from dmbn.runs import with_choosing_kind  # noqa: E402
from dmbn.tables import (BN_BFN, PAIRS, interval_sign, mark_verdict, paired_comparisons,  # noqa: E402
                         prediction_interval, t_interval, variant_order, with_variants)

CONFIDENCE = 0.95
PAPER = ROOT / "workflow" / "resources" / "paper_tables.csv"
# The page's claims beyond the workflow's own pairs: does β's size matter, and does PreciseBN
# beat the default EMA.
PAGE_PAIRS = PAIRS + (("static-0.9", DEFAULT_ESTIMATOR), ("precise", DEFAULT_ESTIMATOR))
NOISE_ESTIMATORS = (DEFAULT_ESTIMATOR, "static-0.9", "dmbn", "precise")


def paper_names() -> dict[str, str]:
    """Our data set name -> the thesis's (config.yaml's ``paper_name``)."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    return dmbn_paper_names(config, config["datasets"])


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std():.3f}"


def thesis_beside_ours(metrics: pd.DataFrame, paper: pd.DataFrame, dataset: str, regime: str) -> str:
    """One data set and regime: every variant's accuracy and F1 (mean ± std, n), our 95 %
    prediction interval for one run, and the thesis's number with whether it lies inside."""
    ours = with_variants(metrics[(metrics.dataset == dataset) & (metrics.regime == regime)])
    theirs = paper[(paper.dataset == paper_names().get(dataset, dataset)) & (paper.regime == regime)]
    theirs = theirs.set_index("variant")
    rows = []
    for variant in variant_order(ours.variant.unique()):
        runs = ours[ours.variant == variant]
        if runs.empty:
            continue
        low, high = (float(v) for v in prediction_interval(runs.accuracy.mean(), runs.accuracy.std(),
                                                            len(runs), CONFIDENCE))
        thesis = theirs.accuracy.get(variant)
        rows.append({"variant": variant, "n": len(runs), "ours acc.": _mean_std(runs.accuracy),
                     "95 % PI (one run)": f"[{low:.3f}, {high:.3f}]", "thesis acc.": thesis,
                     "thesis in PI": None if thesis is None else ("yes" if low <= thesis <= high else "**no**"),
                     "ours F1": _mean_std(runs.f1), "thesis F1": theirs.f1.get(variant)})
    frame = pd.DataFrame(rows)
    frame = frame.astype(object).where(frame.notna(), None)  # no thesis number: shown as "–"
    return frame.to_markdown(index=False, floatfmt=".3f", missingval="–")


def tables(metrics: pd.DataFrame, paper: pd.DataFrame) -> str:
    parts = []
    for dataset in metrics.dataset.unique():
        for regime in (r for r in REGIMES if r in set(metrics[metrics.dataset == dataset].regime)):
            parts.append(f"**{paper_names().get(dataset, dataset)} — {regime_label(regime)}**\n\n"
                         + thesis_beside_ours(metrics, paper, dataset, regime))
    return "\n\n".join(parts)


def paired(metrics: pd.DataFrame) -> str:
    """a − b per seed over the page's pairs, accuracy and F1, with the 95 % t interval."""
    frame = paired_comparisons(metrics, CONFIDENCE, PAGE_PAIRS)
    frame = frame[frame.metric.isin(["accuracy", "f1"])]
    frame = frame.assign(**{"95 % CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(frame.ci_low, frame.ci_high)],
                            "regime": frame.regime.map(regime_label)})
    return frame[["dataset", "regime", "comparison", "metric", "seeds", "mean_difference", "95 % CI"]].to_markdown(
        index=False, floatfmt="+.4f")


GROUP = ["dataset", "regime", "arch"]


def _is_static(name: str) -> bool:
    return is_estimator_name(name) and estimator_kind(name) == "static"


def _static(names: pd.Series) -> pd.Series:
    return names.map(_is_static)


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(regime=frame.regime.map(regime_label))


def static_rows_within_runs(metrics: pd.DataFrame) -> str:
    """How far apart the static-β rows of one run (same weights) lie, against how far one row
    moves from seed to seed: the scale of what β can do versus what training noise does."""
    static = metrics[_static(metrics.estimator)].copy()
    static["beta"] = static.estimator.str.removeprefix("static-").astype(float)
    rows = []
    for keys, group in static.groupby(GROUP, sort=False):
        per_run = group.sort_values("beta").groupby("seed").accuracy
        ranges = per_run.agg(lambda acc: acc.max() - acc.min())
        drops = per_run.agg(lambda acc: (-acc.diff()).max())  # largest fall from one β to the next
        seed_std = group.groupby("beta").accuracy.std()
        rows.append(dict(zip(GROUP, keys), runs=len(ranges),
                         **{"range over β, mean (max)": f"{ranges.mean():.4f} ({ranges.max():.4f})",
                            "largest fall to the next β": max(drops.max(), 0.0) + 0.0,  # + 0.0: no "-0"
                            "seed-to-seed std per β, median (max)": f"{seed_std.median():.4f} ({seed_std.max():.4f})"}))
    return _labelled(pd.DataFrame(rows)).to_markdown(index=False, floatfmt=".4f")


def beta_star(betas: pd.DataFrame) -> str:
    """β* of DMBN (and of each variant the study ran) over every (seed, BN layer, epoch) cell of
    each data set, regime and arch; summaries from before β* named its kind hold DMBN's alone."""
    betas = with_choosing_kind(betas)
    keys = GROUP + ["estimator"]
    epochs = [c for c in betas.columns if c.startswith("e") and c[1:].isdigit()]
    long = betas.melt(id_vars=keys + ["seed", "layer"], value_vars=epochs, value_name="beta").dropna()
    last = betas.set_index(keys)[epochs[-1]]
    rows = []
    for group_keys, group in long.groupby(keys, sort=False):
        final = last.loc[group_keys]
        rows.append(dict(zip(keys, group_keys), cells=len(group), median=group.beta.median(),
                         **{"share β* ≤ 0.2": (group.beta <= 0.2).mean(),
                            "share β* ≥ 0.8": (group.beta >= 0.8).mean(),
                            "last epoch: median (cells)": f"{final.median():g} ({final.notna().sum()})"}))
    return _labelled(pd.DataFrame(rows)).to_markdown(index=False, floatfmt=".2f")


def dmbn_esm_against_static(esm: pd.DataFrame) -> str:
    """At each run's last epoch, per BN layer: in how many (seed, layer) cells is DMBN's ESM_μ
    below every static β's, and below PreciseBN's."""
    return _labelled(_esm_cells(esm)).to_markdown(index=False)


def _esm_cells(esm: pd.DataFrame) -> pd.DataFrame:
    """Per data set, regime and arch: (seed, layer) cells, and those where DMBN's last-epoch
    ESM_μ is below every static β's / below PreciseBN's."""
    layers = [c for c in esm.columns if c.startswith("l") and c[1:].isdigit()]
    long = esm.melt(id_vars=GROUP + ["seed", "estimator"], value_vars=layers, var_name="layer",
                    value_name="esm_mu").dropna()
    cells = long.pivot_table(index=GROUP + ["seed", "layer"], columns="estimator", values="esm_mu")
    static = [c for c in cells.columns if _is_static(c)]
    below_static = cells["dmbn"] < cells[static].min(axis=1)
    below_precise = cells["dmbn"] < cells["precise"]
    counts = pd.DataFrame({"cells": 1, "below every static β": below_static,
                           "below PreciseBN": below_precise}).groupby(GROUP, sort=False).sum()
    return counts.reset_index()


def compute(cards: pd.DataFrame) -> str:
    """Job time per data set, regime and arch from the run cards, then the whole study's job time
    and its wall-clock span (first start to last finish)."""
    rows = cards.groupby(GROUP, sort=False).wall_seconds.agg(["count", "sum", "median"]).reset_index()
    table = _labelled(rows.rename(columns={"count": "runs"})).assign(
        **{"job time (min)": lambda f: (f["sum"] / 60).round(1), "median per run (s)": lambda f: f["median"].round()})
    span = pd.to_datetime(cards.finished).max() - pd.to_datetime(cards.started).min()
    total = f"{len(cards)} runs, {cards.wall_seconds.sum() / 3600:.2f} h of job time, " \
            f"{span.total_seconds() / 3600:.2f} h from the first start to the last finish " \
            f"({cards.started.min()} → {cards.finished.max()})"
    return table[GROUP + ["runs", "job time (min)", "median per run (s)"]].to_markdown(index=False) + "\n\n" + total


def noise(rounding: pd.DataFrame) -> str:
    """Test accuracy's spread from seed to seed beside the change one seed shows under other
    rounding (1 vs 2 torch threads): mean and max |Δ| with the paired 95 % interval."""
    frame = rounding[(rounding.metric == "accuracy") & rounding.estimator.isin(NOISE_ESTIMATORS)]
    frame = frame.assign(**{
        "regime": frame.regime.map(regime_label),
        "seed-to-seed std (n)": [f"{s:.4f} ({n})" for s, n in zip(frame.seed_std, frame.seed_n)],
        "rounding: mean Δ, 95 % CI (n)": [f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}] ({n})" for m, lo, hi, n in
                                          zip(frame.mean_difference, frame.ci_low, frame.ci_high, frame.seeds)],
    })
    columns = ["dataset", "regime", "arch", "estimator", "seed-to-seed std (n)",
               "rounding: mean Δ, 95 % CI (n)", "mean_abs_difference", "max_abs_difference"]
    return frame[columns].to_markdown(index=False, floatfmt=".4f")



# ---- numbers the findings quote (tests/test_prose_numbers.py requires every number of the
# page's prose to be printed by this script): one labelled line each, so a reader finds where a
# number comes from. BN MLP ("mlp") runs unless a line says otherwise.

BN_ARCH = "mlp"
SPREAD_ROWS = ("dmbn", "precise", "recalibrated")  # with every static β: "the estimators hardly differ"


def _name(dataset: str) -> str:
    return paper_names().get(dataset, dataset)


def _bn_runs(metrics: pd.DataFrame, dataset: str, regime: str) -> pd.DataFrame:
    return metrics[(metrics.dataset == dataset) & (metrics.regime == regime) & (metrics.arch == BN_ARCH)]


def _with_beta(static: pd.DataFrame) -> pd.DataFrame:
    """Static rows with their β as a number."""
    return static.assign(beta=static.estimator.str.removeprefix("static-").astype(float))


def _by_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """seed × estimator accuracy of one network's runs."""
    return runs.pivot_table(index="seed", columns="estimator", values="accuracy")


def estimator_spread(metrics: pd.DataFrame) -> list[str]:
    """Mini-batch: the n-seed means of every static β, DMBN, PreciseBN and the recalibrated
    statistics, lowest to highest."""
    lines = []
    for dataset in metrics.dataset.unique():
        runs = _bn_runs(metrics, dataset, "mini")
        runs = runs[_static(runs.estimator) | runs.estimator.isin(SPREAD_ROWS)]
        if runs.empty:
            continue
        means = runs.groupby("estimator").accuracy.mean().round(3)
        lines.append(f"mini-batch, {_name(dataset)}: means of every static β, DMBN, PreciseBN and recalibrated: "
                     f"{means.min():.3f}–{means.max():.3f} (spread {means.max() - means.min():.3f})")
    return lines


def beta_star_shares(betas: pd.DataFrame) -> list[str]:
    """DMBN's β* over every (seed, layer, epoch) cell of the BN MLP, as percentages."""
    betas = with_choosing_kind(betas)
    betas = betas[(betas.arch == BN_ARCH) & (betas.estimator == "dmbn")]
    epochs = [c for c in betas.columns if c.startswith("e") and c[1:].isdigit()]
    lines = []
    for (dataset, regime), group in betas.groupby(["dataset", "regime"], sort=False):
        values = group[epochs].stack()
        lines.append(f"DMBN's β*, {_name(dataset)}, {regime_label(regime)}: ≤ 0.2 in {(values <= 0.2).mean():.0%}, "
                     f"≥ 0.8 in {(values >= 0.8).mean():.0%} of {len(values)} cells, median {values.median():g}"
                     .replace("%", " %"))
    return lines


def network_pairs(metrics: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """BN MLP minus its BN-BFN twin with the *same* estimator on both networks (accuracy), paired
    by seed, in ``paired_comparisons``' columns."""
    rows = []
    for (dataset, regime), runs in metrics.groupby(["dataset", "regime"], sort=False):
        bn, twin = _by_seed(runs[runs.arch == BN_ARCH]), _by_seed(runs[runs.arch == f"{BN_ARCH}-bnbfn"])
        for estimator in (DEFAULT_ESTIMATOR, "dmbn"):
            if estimator in bn and estimator in twin:
                diff = (bn[estimator] - twin[estimator]).dropna().to_numpy()
                low, high = t_interval(diff, confidence)
                rows.append({"dataset": dataset, "regime": regime, "comparison": f"BN − BN-BFN, both {estimator}",
                             "metric": "accuracy", "seeds": len(diff), "mean_difference": diff.mean(),
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def like_for_like_networks(metrics: pd.DataFrame) -> list[str]:
    """The page's BN vs BN-BFN comparison, like for like (same estimator on both networks)."""
    return [f"BN MLP − BN-BFN MLP, both {r.comparison.rsplit(' ', 1)[1]}, {_name(r.dataset)}, {regime_label(r.regime)}: "
            f"{r.mean_difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] (n = {r.seeds})"
            for _, r in network_pairs(metrics, CONFIDENCE).iterrows()]


def per_seed_accuracy(metrics: pd.DataFrame) -> list[str]:
    """The BN-BFN twin's mini-batch test accuracy, seed by seed (its collapse on FashionMNIST)."""
    lines = []
    for dataset in metrics.dataset.unique():
        runs = metrics[(metrics.dataset == dataset) & (metrics.regime == "mini") & (metrics.arch == f"{BN_ARCH}-bnbfn")
                       & (metrics.estimator == DEFAULT_ESTIMATOR)].sort_values("seed")
        if len(runs):
            lines.append(f"BN-BFN MLP, {_name(dataset)}, Mini-batch, test accuracy by seed "
                         f"({', '.join(map(str, runs.seed))}): " + ", ".join(f"{a:.3f}" for a in runs.accuracy))
    return lines


def static_means_by_beta(metrics: pd.DataFrame) -> list[str]:
    """Full batch: the n-seed mean of each static β, and the range of those at β ≥ 0.6."""
    lines = []
    for dataset in metrics.dataset.unique():
        runs = _bn_runs(metrics, dataset, "full")
        runs = runs[_static(runs.estimator)]
        if runs.empty:
            continue
        means = _with_beta(runs).groupby("beta").accuracy.mean()
        high = means[means.index >= 0.6]
        lines.append(f"full batch, {_name(dataset)}: static means by β: "
                     + ", ".join(f"{b:g}: {m:.3f}" for b, m in means.items())
                     + f"; at β ≥ 0.6: {high.min():.3f}–{high.max():.3f}")
    return lines


def esm_counts(esm: pd.DataFrame) -> list[str]:
    """DMBN's last-epoch ESM_μ below every static β's and below PreciseBN's, as "a of b"."""
    counts = _esm_cells(esm)
    counts = counts[counts.arch == BN_ARCH]
    lines = [f"DMBN's ESM_μ, {_name(r.dataset)}, {regime_label(r.regime)}: below every static β in "
             f"{r['below every static β']} of {r.cells} cells, below PreciseBN in {r['below PreciseBN']} of {r.cells}"
             for _, r in counts.iterrows()]
    for regime, group in counts.groupby("regime", sort=False):
        lines.append(f"DMBN's ESM_μ, both data sets, {regime_label(regime)}: below PreciseBN in "
                     f"{group['below PreciseBN'].sum()} of {group.cells.sum()} cells")
    return lines


def heldout_over_thesis_regime(metrics: pd.DataFrame) -> list[str]:
    """Each page pair's mean difference held out ÷ in the thesis's full batch, where the thesis's
    regime shows a difference at all (its interval excludes zero; else the ratio is noise)."""
    pairs = paired_comparisons(metrics, CONFIDENCE, PAGE_PAIRS)
    pairs = pairs[pairs.metric == "accuracy"].set_index(["dataset", "comparison", "regime"])
    lines = []
    for dataset in metrics.dataset.unique():
        ratios = []
        for a, b in PAGE_PAIRS:
            key = (dataset, f"{a} - {b}")
            if BN_BFN in (a, b) or not {key + ("full",), key + ("full-heldout",)} <= set(pairs.index):
                continue  # BN-BFN is another network; a pair needs both full-batch regimes
            full, held = pairs.loc[key + ("full",)], pairs.loc[key + ("full-heldout",)]
            if full.ci_low <= 0 <= full.ci_high:
                lines.append(f"held out ÷ thesis's full batch, {_name(dataset)}, {a} − {b}: – "
                             "(the thesis's regime shows no difference)")
                continue
            ratios.append(held.mean_difference / full.mean_difference)
            lines.append(f"held out ÷ thesis's full batch, {_name(dataset)}, {a} − {b}: "
                         f"{held.mean_difference:+.4f} ÷ {full.mean_difference:+.4f} = {ratios[-1]:.2f}")
        if ratios:
            lines.append(f"held out ÷ thesis's full batch, {_name(dataset)}, range over those pairs: "
                         f"{min(ratios):.2f}–{max(ratios):.2f}")
    return lines


def same_seeds(held: pd.DataFrame, metrics: pd.DataFrame) -> list[str]:
    """The seeds a held-out study shares with the main study (same settings, so the same runs
    but for the machine's rounding): how many (seed, network, estimator) accuracies agree."""
    keys = [k for k in ("dataset", "regime", "arch", "seed", "member", "estimator") if k in held and k in metrics]
    both = held.merge(metrics, on=keys, suffixes=("_held", "_main"))
    if both.empty:
        return []
    difference = (both.accuracy_held - both.accuracy_main).abs()
    seeds = ", ".join(str(s) for s in sorted(both.seed.unique()))
    by_row = difference.groupby(both.estimator).max().sort_values()
    return [f"held-out study against the main study, the same seeds ({seeds}): {int((difference == 0).sum())} of "
            f"{len(both)} accuracies equal, largest |difference| {by_row.iloc[-1]:.4f} ({by_row.index[-1]}); "
            f"largest among the other rows {by_row.iloc[-2]:.4f} ({by_row.index[-2]})"]


def heldout_at_more_seeds(held: pd.DataFrame, metrics: pd.DataFrame) -> list[str]:
    """Each page pair's held-out mean difference over the held-out study's seeds ÷ the thesis's
    full batch of the main study, labelled with the held-out seed count."""
    datasets = set(held.dataset)
    combined = pd.concat([metrics[(metrics.regime == "full") & metrics.dataset.isin(datasets)], held])
    n = held.seed.nunique()
    return [line.replace("held out ÷", f"held out ({n} seeds) ÷", 1) for line in heldout_over_thesis_regime(combined)]


def _thesis_static(paper: pd.DataFrame, dataset: str, regime: str) -> pd.Series:
    """The thesis's static rows of one data set and regime, accuracy by β."""
    rows = paper[(paper.dataset == paper_names().get(dataset, dataset)) & (paper.regime == regime)
                 & paper.variant.map(_is_static)]
    return rows.set_index(rows.variant.str.removeprefix("static-").astype(float)).accuracy.sort_index()


def thesis_against_ours(metrics: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """How far the thesis's single runs lie from ours: beyond our prediction interval's edge, and
    its static rows against our means."""
    lines, below, total = [], 0, 0
    for dataset in metrics.dataset.unique():
        for regime in ("mini", "full"):
            runs = _bn_runs(metrics, dataset, regime)
            if runs.empty:
                continue
            stats = runs.groupby("estimator").accuracy.agg(["mean", "std", "count"])
            theirs = paper[(paper.dataset == paper_names().get(dataset, dataset)) & (paper.regime == regime)]
            beyond = []
            for _, row in theirs.iterrows():
                if row.variant not in stats.index:
                    continue
                s = stats.loc[row.variant]
                low, high = (float(v) for v in prediction_interval(s["mean"], s["std"], s["count"], CONFIDENCE))
                if not low <= row.accuracy <= high:  # the table's verdict, and how far beyond the edge
                    beyond.append(low - row.accuracy if row.accuracy < low else row.accuracy - high)
            label = f"{_name(dataset)}, {regime_label(regime)}"
            if beyond:
                lines.append(f"thesis outside our 95 % PI, {label}: {len(beyond)} rows, "
                             f"{min(beyond):.3f}–{max(beyond):.3f} beyond the edge")
            static = _thesis_static(paper, dataset, regime)
            ours = stats["mean"][stats.index.map(_is_static)]
            ours.index = ours.index.str.removeprefix("static-").astype(float)
            gaps = (ours.reindex(static.index) - static).dropna()
            below, total = below + int((gaps > 0).sum()), total + len(gaps)
            if (gaps > 0).any():
                lower = gaps[gaps > 0]
                lines.append(f"thesis's static rows against our means, {label}: {len(lower)} of {len(gaps)} below, "
                             f"by {lower.min():.3f}–{lower.max():.3f}; thesis range {static.min():.3f}–{static.max():.3f}")
    lines.append(f"thesis's static rows below our mean, every data set and regime: {below} of {total}")
    return lines


def thesis_largest_fall(metrics: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """The thesis's largest fall between neighbouring β (full batch) against the largest fall in
    any one of our runs and against one β's seed-to-seed std (median over β)."""
    lines = []
    for dataset in metrics.dataset.unique():
        static = _thesis_static(paper, dataset, "full")
        runs = _bn_runs(metrics, dataset, "full")
        runs = _with_beta(runs[_static(runs.estimator)])
        if static.empty or runs.empty:
            continue
        falls = -static.diff()
        where = falls.idxmax()
        ours = runs.sort_values("beta").groupby("seed").accuracy.agg(lambda acc: (-acc.diff()).max()).max()
        seed_std = runs.groupby("beta").accuracy.std().median()
        lines.append(f"thesis's largest fall between neighbouring β, {_name(dataset)}, full batch: {falls.max():.3f} "
                     f"(β {static.index[static.index.get_loc(where) - 1]:g} → {where:g}); "
                     f"÷ our largest fall within one run ({ours:.4f}): {falls.max() / ours:.0f}×; "
                     f"÷ one β's seed std (median over β, {seed_std:.4f}): {falls.max() / seed_std:.1f}×")
    return lines


ASSEMBLIES = 10_000  # seeded draws of one seed per β (without replacement): separate networks


def _assembled_falls(accuracy: np.ndarray, draws: int = ASSEMBLIES, seed: int = 0) -> np.ndarray:
    """``accuracy[seed, β]`` (β ascending): the largest fall between neighbouring β of rows whose
    every β comes from a different seed, drawn ``draws`` times."""
    rng = np.random.default_rng(seed)
    columns = np.arange(accuracy.shape[1])
    rows = np.stack([rng.permutation(accuracy.shape[0])[:accuracy.shape[1]] for _ in range(draws)])
    assembled = accuracy[rows, columns]
    return (assembled[:, :-1] - assembled[:, 1:]).max(axis=1)


def separate_networks(metrics: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """What "a separate network per β" could give, from the bank's runs (a separate run with the
    bank's seed has the bank's weights and static-β row exactly, tests/test_train.py): a separate
    network per β is a different seed per β. So (a) each thesis static row would be a draw from
    our seed distribution of that β, below its median with probability 1/2 — a one-sided sign test
    over every data set and regime; (b) rows assembled with each β's accuracy from a different seed
    (drawn) show how large a fall between neighbouring β different networks give."""
    from scipy.stats import binomtest

    lines, below, total = [], 0, 0
    for dataset in metrics.dataset.unique():
        for regime in ("mini", "full"):
            runs = _bn_runs(metrics, dataset, regime)
            runs = _with_beta(runs[_static(runs.estimator)])
            static = _thesis_static(paper, dataset, regime)
            if runs.empty or static.empty:
                continue
            medians = runs.groupby("beta").accuracy.median().reindex(static.index).dropna()
            below, total = below + int((static[medians.index] < medians).sum()), total + len(medians)
            if regime != "full":
                continue
            table = runs.pivot_table(index="seed", columns="beta", values="accuracy").dropna().to_numpy()
            thesis = (-static.diff()).max()
            falls = _assembled_falls(table)
            lines.append(f"separate networks emulated ({len(falls):,} assemblies, β's row from a different seed "
                         f"each of {len(table)}), {_name(dataset)}, full batch: largest fall between neighbouring β "
                         f"median {np.median(falls):.4f}, 99th percentile {np.quantile(falls, 0.99):.4f}, "
                         f"max {falls.max():.4f}; as large as the thesis's {thesis:.3f} in "
                         f"{int((falls >= thesis).sum())} of {len(falls):,}")
    if not total:  # no data set the thesis has static rows for (digits)
        return lines
    p = binomtest(below, total, 0.5, alternative="greater").pvalue
    lines.append(f"thesis's static rows below our seed median, every data set and regime: {below} of {total}; "
                 f"one-sided sign test against 1/2 (a separate network per row): p = {p:.1e}")
    return lines


def _largest_falls(table: pd.DataFrame) -> pd.Series:
    """``table[seed, β]`` (β ascending): each seed's largest fall between neighbouring β; 0 for a
    seed whose rows never fall (not the smallest rise, which would print as a negative fall)."""
    return (-table.diff(axis=1)).max(axis=1).clip(lower=0) + 0.0  # + 0.0: no "-0.0000" for a tie


def named_parts(studies) -> str:
    """Published studies as a reader names them, a study's consecutive parts as one range:
    ``separate_full_s1``, ``_s2``, ``_s3`` -> "`separate_full_s1`–`_s3`"."""
    runs: list[list[str]] = []  # runs of consecutive parts, each a list of study names
    for study in studies:
        part, last = PART_NAME.fullmatch(study), PART_NAME.fullmatch(runs[-1][-1]) if runs else None
        if part and last and part["study"] == last["study"] and int(part["seed"]) == int(last["seed"]) + 1:
            runs[-1].append(study)
        else:
            runs.append([study])
    return ", ".join(f"`{run[0]}`" if len(run) == 1 else f"`{run[0]}`–`_s{PART_NAME.fullmatch(run[-1])['seed']}`"
                     for run in runs)


def read_separate(studies: list[str]) -> pd.DataFrame:
    """The thesis's protocol from one or more published studies (``comparisons/separate.csv``),
    read as one by ``dmbn.readback.read_parts`` (a ``study`` column; every part must have the file;
    a replicate that two parts both hold is refused)."""
    return read_parts([HERE / "results" / study for study in studies], "comparisons/separate.csv", every=True)


def separate_protocol(side: pd.DataFrame, paper: pd.DataFrame) -> list[str]:
    """The thesis's protocol run (``comparisons/separate.csv``: one network per β beside the bank
    run of the replicate's seed; ``side.study`` names the study each row comes from): the largest
    fall between neighbouring β per replicate, paired with the bank's; the seed spread per β; how
    often a replicate falls as far as the thesis; the thesis's static rows against each
    protocol's median; separate − bank averaged over β."""
    lines = []
    for (dataset, regime), rows in side.groupby(["dataset", "regime"], sort=False):
        studies = named_parts(rows.study.unique())
        where = f"{studies}, {_name(dataset)}, {regime_label(regime).split(' (')[0].lower()}"
        separate = rows.pivot_table(index="seed", columns="beta", values="separate").sort_index(axis=1)
        bank = rows.pivot_table(index="seed", columns="beta", values="bank").reindex_like(separate)
        n = len(separate)
        ours, theirs = _largest_falls(separate), _largest_falls(bank)
        low, high = t_interval((ours - theirs).to_numpy(), CONFIDENCE)
        lines.append(f"{where}, {n} replicate{'s' * (n != 1)}: largest fall between neighbouring β per replicate, one network "
                     f"per β median {ours.median():.4f} (max {ours.max():.4f}), the bank's one network median "
                     f"{theirs.median():.4f} (max {theirs.max():.4f}); separate − bank "
                     f"{(ours - theirs).mean():+.4f} [{low:+.4f}, {high:+.4f}]")
        lines.append(f"{where}: one β's std over replicates, median over β: one network per β "
                     f"{separate.std().median():.4f}, the bank {bank.std().median():.4f}")
        per_replicate = (separate - bank).mean(axis=1).to_numpy()
        loss_low, loss_high = t_interval(per_replicate, CONFIDENCE)
        lines.append(f"{where}: one network per β − the bank's static rows, mean over β, paired by replicate: "
                     f"{per_replicate.mean():+.4f} [{loss_low:+.4f}, {loss_high:+.4f}]")
        static = _thesis_static(paper, dataset, regime)
        if static.empty:
            continue
        thesis = (-static.diff()).max()
        lines.append(f"{where}: replicates falling as far as the thesis's {thesis:.3f} between neighbouring β: "
                     f"one network per β {int((ours >= thesis).sum())} of {n}, the bank {int((theirs >= thesis).sum())} of {n}")
        # non-monotonic the way the thesis is: falls larger than any the bank's rows make (what β
        # alone does within one network), counted per replicate and in the thesis's rows; ours
        # rounded to the thesis's 3 decimals first, so that a fall it could not print is not counted
        bank_max = theirs.max()
        beyond = _falls_beyond(separate.round(THESIS_DECIMALS), bank_max)
        theirs_beyond = int(_falls_beyond(static.to_frame().T, bank_max).iloc[0])
        lines.append(f"{where}: falls between neighbouring β larger than the bank's largest in any replicate "
                     f"({bank_max:.4f}), rows rounded to the thesis's {THESIS_DECIMALS} decimals: one network per β median {beyond.median():g} of {len(static) - 1} "
                     f"steps per replicate (range {beyond.min()}–{beyond.max()}), the thesis's rows {theirs_beyond} of {len(static) - 1}; "
                     f"replicates with as many as the thesis: {int((beyond >= theirs_beyond).sum())} of {n}")
        shared = static.index.intersection(separate.columns)
        below_separate = int((static[shared] < separate[shared].median()).sum())
        below_bank = int((static[shared] < bank[shared].median()).sum())
        lines.append(f"{where}: thesis's static rows below the median of one network per β: {below_separate} of "
                     f"{len(shared)}; below the bank's median: {below_bank} of {len(shared)}")
        # what the protocol would have to cost on average to explain the thesis's rows: their mean
        # distance from the bank's means, against the interval of one network per β − the bank
        shortfall = (static[shared] - bank[shared].mean()).mean()
        place = "below" if shortfall < loss_low else "above" if shortfall > loss_high else "inside"
        lines.append(f"{where}: thesis's static rows − the bank's mean, mean over β: {shortfall:+.4f}, {place} the "
                     f"interval of one network per β − the bank ([{loss_low:+.4f}, {loss_high:+.4f}])")
    return lines


def separate_beside_bank(side: pd.DataFrame, paper: pd.DataFrame) -> str:
    """The thesis's protocol per β, side by side with the bank's rows: the thesis's single run,
    one network per β and the bank (mean ± std over replicates, n), and one network per β − the
    bank, paired by replicate (95 % CI) — the seed spread of each β, not a median over them."""
    intervals = separate_intervals(side, CONFIDENCE).set_index(["dataset", "regime", "comparison"])
    parts = []
    for (dataset, regime), rows in side.groupby(["dataset", "regime"], sort=False):
        thesis = _thesis_static(paper, dataset, regime)
        table = []
        for beta, at in rows.groupby("beta"):
            d = intervals.loc[(dataset, regime, _per_beta(beta))]
            table.append({"β": f"{beta:g}", "thesis": f"{thesis[beta]:.3f}" if beta in thesis.index else "–",
                          "one network per β": f"{_mean_std(at.separate)} ({len(at)})",
                          "bank": f"{_mean_std(at.bank)} ({len(at)})",
                          "one network per β − bank": f"{d.mean_difference:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}]"})
        parts.append(f"**{paper_names().get(dataset, dataset)} — {regime_label(regime)}**\n\n"
                     + pd.DataFrame(table).to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts)


THESIS_DECIMALS = 3  # the thesis prints accuracies to 0.001


def _falls_beyond(rows: pd.DataFrame, threshold: float) -> pd.Series:
    """``rows[replicate, β]`` (β ascending): how many neighbouring-β steps fall by more than
    ``threshold``."""
    return ((-rows.diff(axis=1)) > threshold).sum(axis=1)


def _per_beta(beta: float) -> str:
    return f"one network per β − bank, β = {beta:g}"


def separate_intervals(side: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Every interval the thesis's-protocol section shows, as ``paired_comparisons`` rows: one
    network per β − the bank at each β, their mean over β, and the largest fall's difference."""
    rows = []
    for (dataset, regime), at in side.groupby(["dataset", "regime"], sort=False):
        separate = at.pivot_table(index="seed", columns="beta", values="separate").sort_index(axis=1)
        bank = at.pivot_table(index="seed", columns="beta", values="bank").reindex_like(separate)
        differences = {_per_beta(beta): (separate[beta] - bank[beta]).to_numpy() for beta in separate.columns}
        differences["one network per β − bank, mean over β"] = (separate - bank).mean(axis=1).to_numpy()
        differences["largest fall, one network per β − bank"] = (_largest_falls(separate) - _largest_falls(bank)).to_numpy()
        for comparison, values in differences.items():
            low, high = t_interval(values, confidence)
            rows.append({"dataset": dataset, "regime": regime, "comparison": comparison, "metric": "accuracy",
                         "mean_difference": values.mean(), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def page_intervals(metrics: pd.DataFrame, confidence: float, rounding: pd.DataFrame | None = None,
                   held: pd.DataFrame | None = None, separate: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every interval of a difference the page shows, at ``confidence``: the page's pairs
    (accuracy and F1), BN − BN-BFN, rounding (at 95 % as its study computed them), the held-out
    study's pairs and the thesis's protocol. ``study`` names which table each comes from."""
    def pairs(frame: pd.DataFrame) -> pd.DataFrame:
        rows = paired_comparisons(frame, confidence, PAGE_PAIRS)
        return rows[rows.metric.isin(["accuracy", "f1"])]

    parts = [pairs(metrics).assign(study="main"), network_pairs(metrics, confidence).assign(study="main")]
    if rounding is not None:
        shown = rounding[(rounding.metric == "accuracy") & rounding.estimator.isin(NOISE_ESTIMATORS)]
        parts.append(shown[["ci_low", "ci_high"]].assign(study="rounding", metric="rounding"))
    if held is not None:
        parts.append(pairs(held).assign(study="heldout"))
    if separate is not None:
        parts.append(separate_intervals(separate, confidence).assign(study="separate"))
    return pd.concat(parts, ignore_index=True)


def multiplicity(metrics: pd.DataFrame, paper: pd.DataFrame, rounding: pd.DataFrame | None,
                 held: pd.DataFrame | None = None, separate: pd.DataFrame | None = None) -> list[str]:
    """How many intervals the page reports, how many exclude zero, and how many would by chance."""
    rows = page_intervals(metrics, CONFIDENCE, rounding, held, separate)
    total = len(rows)
    excluding = sum(interval_sign(lo, hi) != 0 for lo, hi in zip(rows.ci_low, rows.ci_high))
    shown = ["paired: accuracy and F1", "rounding" if rounding is not None else "",
             "held out at more seeds" if held is not None else "", "the thesis's protocol" if separate is not None else ""]
    summary = with_variants(metrics).groupby(["dataset", "regime", "variant"]).accuracy.agg(["mean", "std", "count"])
    named = paper.assign(dataset=paper.dataset.map({v: k for k, v in paper_names().items()}))
    named = named.set_index(["dataset", "regime", "variant"]).accuracy
    both = summary.join(named.rename("thesis"), how="inner")
    low, high = prediction_interval(both["mean"], both["std"], both["count"], CONFIDENCE)
    outside = int(((both.thesis < low) | (both.thesis > high)).sum())
    return [f"intervals of a difference on this page ({'; '.join(filter(None, shown))}): {total}, "
            f"{excluding} of {total} exclude zero; at 95 % with no difference anywhere, "
            f"about 1 in 20, i.e. {total / 20:.1f} of {total}, would by chance",
            f"thesis numbers set against our 95 % prediction interval: {len(both)}, {outside} of {len(both)} outside; "
            f"about {len(both) / 20:.1f} would be by chance if the thesis's runs were drawn like ours"]


def marks(metrics: pd.DataFrame, rounding: pd.DataFrame | None, held: pd.DataFrame | None = None,
          separate: pd.DataFrame | None = None) -> list[str]:
    """Every accuracy interval of a difference that excludes zero, under the page's one rule: it
    is *repeated* when the same comparison of the same table in the same regime excludes zero in
    the same direction on the other data set (the held-out study at more seeds and the main study
    count as one table: the first has one data set), *survives adjustment* when it still excludes zero
    with every interval of the page adjusted together (Bonferroni), else *isolated* (quoted, never
    read as an effect). Rounding's intervals measure noise, not an effect, and get no label."""
    total = len(page_intervals(metrics, CONFIDENCE, rounding, held, separate))
    rows, adjusted = (page_intervals(metrics, level, None, held, separate)
                      for level in (CONFIDENCE, 1 - (1 - CONFIDENCE) / total))
    rows = rows.assign(sign=[interval_sign(lo, hi) for lo, hi in zip(rows.ci_low, rows.ci_high)],
                       adjusted=[interval_sign(lo, hi) for lo, hi in zip(adjusted.ci_low, adjusted.ci_high)])
    rows = rows[rows.metric == "accuracy"]
    lines = []
    for _, r in rows[rows.sign != 0].iterrows():
        # the held-out study (one data set, more seeds) and the main study repeat each other
        tables = {"main", "heldout"} if r.study in ("main", "heldout") else {r.study}
        others = rows[rows.study.isin(tables) & (rows.comparison == r.comparison) & (rows.regime == r.regime)
                      & (rows.dataset != r.dataset)]
        verdict = mark_verdict(r.sign, others.sign, r.adjusted)
        mark = "▲" if r.sign > 0 else "▼"
        table = {"main": "", "heldout": "held out at more seeds, ", "separate": "the thesis's protocol, "}[r.study]
        lines.append(f"mark, {table}{_name(r.dataset)}, {regime_label(r.regime)}, {r.comparison.replace(' - ', ' − ')}: "
                     f"{r.mean_difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] {mark} {verdict}")
    return lines


def _published_cards() -> dict[str, pd.DataFrame]:
    return {folder.name: pd.read_csv(folder / "run_cards.csv", parse_dates=["started", "finished"])
            for folder in sorted((HERE / "results").iterdir()) if (folder / "run_cards.csv").exists()}


def shared_machine(studies: list[str]) -> list[str]:
    """For each given study, the runs of every other published study that ran at the same time:
    how many of its runs overlapped, and for how long both studies were in progress. A study
    that ran wholly before or after the given studies is left out: it could overlap none of their
    runs, and a page should not change each time a later study is published."""
    cards = _published_cards()
    given = [cards[s] for s in studies if s in cards]
    if not given:
        return []
    # the given studies' span together: a study outside it could overlap none of their runs
    span_start, span_end = min(c.started.min() for c in given), max(c.finished.max() for c in given)
    lines = []
    for name in studies:
        ours = cards.get(name)
        for other, theirs in cards.items():
            if ours is None or other in studies:
                continue
            if theirs.started.min() >= span_end or theirs.finished.max() <= span_start:
                continue
            overlapping = sum(((theirs.started < r.finished) & (theirs.finished > r.started)).any()
                              for _, r in ours.iterrows())
            both = (min(ours.finished.max(), theirs.finished.max()) - max(ours.started.min(), theirs.started.min()))
            minutes = max(both.total_seconds(), 0) / 60
            line = f"`{name}` runs that overlapped a run of `{other}`: {overlapping} of {len(ours)}"
            lines.append(line + (f"; both studies in progress for {minutes:.0f} min" if overlapping else ""))
    if len(studies) > 1 and all(s in cards for s in studies):
        together = pd.concat([cards[s] for s in studies])
        span = (together.finished.max() - together.started.min()).total_seconds() / 3600
        lines.append(f"{' and '.join(f'`{s}`' for s in studies)} together: {span:.1f} h from the first start "
                     f"to the last finish ({together.started.min():%H:%M} on {together.started.min():%d %b} "
                     f"to {together.finished.max():%H:%M} on {together.finished.max():%d %b}, UTC)")
    return lines


def quoted_numbers(study: Path, metrics: pd.DataFrame, paper: pd.DataFrame, rounding: pd.DataFrame | None,
                   studies: list[str], held: pd.DataFrame | None = None,
                   separate: pd.DataFrame | None = None) -> str:
    """The section "Numbers quoted in the findings": every line labelled with what it counts."""
    lines = estimator_spread(metrics) + like_for_like_networks(metrics) + per_seed_accuracy(metrics)
    lines += static_means_by_beta(metrics) + heldout_over_thesis_regime(metrics)
    if (study / "summaries").exists():
        lines += beta_star_shares(pd.read_csv(study / "summaries" / "beta_star.csv"))
        lines += esm_counts(pd.read_csv(study / "summaries" / "esm_last_epoch.csv"))
    lines += thesis_against_ours(metrics, paper) + thesis_largest_fall(metrics, paper) + separate_networks(metrics, paper)
    lines += multiplicity(metrics, paper, rounding, held, separate) + marks(metrics, rounding, held, separate)
    lines += shared_machine(studies)
    if held is not None:
        lines += same_seeds(held, metrics) + heldout_at_more_seeds(held, metrics)
    return "\n".join(f"* {line}" for line in lines)  # the separate protocol's lines are in its own section


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a folder under docs/results/")
    parser.add_argument("--rounding", help="the published study whose comparisons/rounding.csv measures rounding noise")
    parser.add_argument("--heldout", help="a published study of the held-out full batch at more seeds")
    parser.add_argument("--separate", nargs="+", default=[],
                        help="published studies of the thesis's protocol (comparisons/separate.csv), read as one")
    args = parser.parse_args(argv)
    separate = read_separate(args.separate) if args.separate else None  # refused before anything prints
    metrics = pd.read_csv(HERE / "results" / args.study / "metrics.csv")
    print("### The thesis's tables beside this study\n")
    print(tables(metrics, pd.read_csv(PAPER)))
    print("\n### Paired comparisons over seeds\n")
    print(paired(metrics))
    print("\n### Static rows within one run, against the seed spread\n")
    print(static_rows_within_runs(metrics))
    study = HERE / "results" / args.study
    if (study / "summaries").exists():
        print("\n### What DMBN (and each variant) chose: β* over every seed, layer and epoch\n")
        print(beta_star(pd.read_csv(study / "summaries" / "beta_star.csv")))
        print("\n### DMBN's ESM_μ against every static β and PreciseBN, last epoch\n")
        print(dmbn_esm_against_static(pd.read_csv(study / "summaries" / "esm_last_epoch.csv")))
    if args.rounding:
        print("\n### Noise: seed to seed, and rounding alone\n")
        print(noise(pd.read_csv(HERE / "results" / args.rounding / "comparisons" / "rounding.csv")))
    held = pd.read_csv(HERE / "results" / args.heldout / "metrics.csv") if args.heldout else None
    if held is not None:
        print(f"\n### Held-out full batch at {held.seed.nunique()} seeds: study `{args.heldout}`\n")
        print(paired(held))
    for name in filter(None, (args.study, args.rounding, args.heldout, *args.separate)):
        if (HERE / "results" / name / "run_cards.csv").exists():
            print(f"\n### Compute: study `{name}`\n")
            print(compute(pd.read_csv(HERE / "results" / name / "run_cards.csv")))
    rounding = pd.read_csv(HERE / "results" / args.rounding / "comparisons" / "rounding.csv") if args.rounding else None
    if separate is not None:
        named = named_parts(args.separate)
        print(f"\n### The thesis's protocol, run: one network per β, {'study' if len(args.separate) == 1 else 'studies'} {named}\n")
        print(separate_beside_bank(separate, pd.read_csv(PAPER)) + "\n")
        print("\n".join(f"* {line}" for line in separate_protocol(separate, pd.read_csv(PAPER))))
    print("\n### Numbers quoted in the findings\n")
    print(quoted_numbers(study, metrics, pd.read_csv(PAPER), rounding, list(filter(None, (args.study, args.rounding))),
                         held, separate))


if __name__ == "__main__":
    main()
