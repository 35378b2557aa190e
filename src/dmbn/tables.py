"""From per-run metrics to the study's tables: the thesis's layout, the thesis beside us, and
paired comparisons on the same weights and seeds."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler

from .names import (BATCH_FREE_ARCHS, BN_BFN, BN_BFN_RANK, DEFAULT_ESTIMATOR, FULL_BATCH_REGIMES, METRICS,
                    estimator_label, estimator_rank, is_estimator_name, regime_label, regime_rank)

PAIRS = (("dmbn", DEFAULT_ESTIMATOR), ("dmbn", BN_BFN), ("dmbn", "precise"),
         ("dmbn-causal", DEFAULT_ESTIMATOR))


def long_metrics(runs: pd.DataFrame) -> pd.DataFrame:
    """``dataset, regime, arch, seed, estimator, <metrics>``. Under the separate-runs protocol a
    static estimator's row comes from its own run (member ``static-β``), not from the bank."""
    separate = runs[runs.member != "bank"]
    own = set(zip(separate.dataset, separate.regime, separate.arch, separate.seed, separate.member))
    keep = [m != "bank" or (d, r, a, s, e) not in own
            for d, r, a, s, m, e in zip(runs.dataset, runs.regime, runs.arch, runs.seed, runs.member,
                                        runs.estimator)]
    out = runs[keep].drop(columns="member")
    return out[["dataset", "regime", "arch", "seed", "estimator", *METRICS]].reset_index(drop=True)


def separate_against_bank(runs: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Under a protocol with one training per static β (``dmbn.names.PROTOCOLS``): each member's
    ``metric`` beside the bank run's static-β row of the same seed, ``dataset, regime, arch, seed,
    beta, separate, bank``. Under ``separate`` the two are equal (one trajectory); under
    ``independent`` they are two networks."""
    members = runs[runs.member != "bank"]
    own = members[members.estimator == members.member]
    bank = runs[runs.member == "bank"].drop(columns="member")
    keys = ["dataset", "regime", "arch", "seed", "estimator"]
    both = own[[*keys, metric]].merge(bank[[*keys, metric]], on=keys, how="left", suffixes=("_separate", "_bank"),
                                      validate="one_to_one")
    both.insert(4, "beta", both.pop("estimator").str.removeprefix("static-").astype(float))
    both = both.rename(columns={f"{metric}_separate": "separate", f"{metric}_bank": "bank"})
    return both.sort_values(["dataset", "regime", "arch", "seed", "beta"]).reset_index(drop=True)


def variant_order(estimators) -> list[str]:
    """The estimators and BN-BFN in table order: the registry's ranks (``dmbn.names.ESTIMATORS``),
    β within a kind; BN-BFN after the DMBNs, as in the thesis."""
    return sorted(set(estimators) | {BN_BFN}, key=lambda v: (BN_BFN_RANK, 0.0) if v == BN_BFN
                  else estimator_rank(v))


def present_order(variants) -> list[str]:
    """The variants present, in the tables' order; any the registry does not name follow, sorted."""
    present = set(variants)
    known = {v for v in present if v == BN_BFN or is_estimator_name(v)}
    return [v for v in variant_order(known) if v in present] + sorted(present - known)



def label(variant: str, latex: bool = True) -> str:
    """A variant's name for readers: LaTeX (tables, matplotlib's mathtext) or plain text (HTML)."""
    if variant == BN_BFN:
        return "BN-BFN"
    try:
        name = estimator_label(variant, latex)
    except KeyError:  # not an estimator of this dmbn: its name as it is
        return variant
    return name + (" (default)" if variant == DEFAULT_ESTIMATOR else "")


def with_variants(metrics: pd.DataFrame) -> pd.DataFrame:
    """The thesis's rows: every estimator of the BN network, and BN-BFN (the batch-free twin with
    the default estimator). The twin's other estimators are not thesis rows and are dropped."""
    batch_free = metrics.arch.isin(list(BATCH_FREE_ARCHS))
    bn = metrics[~batch_free].assign(variant=lambda f: f.estimator)
    bfn = metrics[batch_free & (metrics.estimator == DEFAULT_ESTIMATOR)].assign(variant=BN_BFN)
    return pd.concat([bn, bfn], ignore_index=True)


def summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every metric per (dataset, regime, variant)."""
    grouped = with_variants(metrics).groupby(["dataset", "regime", "variant"])[list(METRICS)]
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["seeds"] = grouped.size()
    return out.reset_index()


def _thesis_order(summary_rows: pd.DataFrame) -> pd.DataFrame:
    """Regime blocks in ``regime_rank`` order (full batch first, as the thesis), variants within."""
    order = present_order(summary_rows.variant)
    regimes = sorted(set(summary_rows.regime), key=regime_rank)
    keys = pd.DataFrame({"regime": summary_rows.regime.map({r: i for i, r in enumerate(regimes)}),
                         "variant": summary_rows.variant.map({v: i for i, v in enumerate(order)})})
    return summary_rows.loc[keys.sort_values(["regime", "variant"]).index]


# A fixed id for the one table of each page: pandas draws a random one when none is given, and the
# same numbers would then give a different HTML file on every run.
TABLE_ID = "dmbn"


def thesis_styler(summary_rows: pd.DataFrame, decimals: int) -> Styler:
    """One data set's table as one Styler for both exports: regime blocks, variant rows, the four
    metrics as (mean, std) cells and the number of seeds n. Bold (``\\textbf`` in LaTeX, class
    ``best`` in HTML) marks the best mean per regime and metric *as printed*: means equal at
    ``decimals`` are a tie, and every one of them is bold, so bold never separates two cells a
    reader sees as equal; where all of a block print equal, none is bold. Render it with ``latex``
    or ``html`` at the same ``decimals``."""
    rows = _thesis_order(summary_rows)
    index = pd.MultiIndex.from_arrays([rows.regime.map(regime_label), rows.variant],
                                      names=["Regime", "Variant"])
    cells = pd.DataFrame({metric_header(m): list(zip(rows[f"{m}_mean"], rows[f"{m}_std"]))
                          for m in METRICS} | {SEEDS_HEADER: rows.seeds.astype(int).to_numpy()}, index=index)
    best = pd.DataFrame({metric_header(m): best_as_printed(rows[f"{m}_mean"], rows.regime, decimals)
                         for m in METRICS} | {SEEDS_HEADER: False}, index=index)
    styler = Styler(cells, uuid=TABLE_ID, cell_ids=False)
    styler.apply(lambda _: best.map(lambda b: "textbf: --rwrap;" if b else ""), axis=None)
    styler.set_td_classes(best.map(lambda b: "best" if b else ""))
    return styler


def best_as_printed(means: pd.Series, groups: pd.Series, decimals: int) -> np.ndarray:
    """Per group, the means whose printed value (``decimals`` places, as ``_cell`` prints them)
    is the group's largest: all of a tie, none of the rest; none at all where every row of the
    group prints the same (no winner to show)."""
    printed = means.map(lambda m: float(f"{m:.{decimals}f}"))
    best = printed == printed.groupby(groups).transform("max")
    return (best & ~best.groupby(groups).transform("all")).to_numpy()


def styled(frame: pd.DataFrame) -> Styler:
    """A plain table (comparisons, run cards) as a Styler, rendered with ``latex`` or ``html``."""
    return Styler(frame, uuid=TABLE_ID, cell_ids=False).hide(axis="index")


SEEDS_HEADER = "n"  # the thesis table's last column: seeds behind each mean ± std


def metric_header(metric: str) -> str:
    return "F1" if metric == "f1" else metric.capitalize()


def latex(styler: Styler, decimals: int) -> str:
    """Booktabs LaTeX of a ``thesis_styler`` or ``styled`` table."""
    thesis = isinstance(styler.index, pd.MultiIndex)
    styler.format(partial(_cell, decimals=decimals, pm=" $\\pm$ "), escape=None if thesis else "latex")
    if not thesis:
        styler.format_index(escape="latex", axis="columns")
        return styler.to_latex(hrules=True)
    styler.format_index(label, level="Variant")
    return styler.to_latex(hrules=True, multirow_align="t", clines="skip-last;data",
                           column_format="ll" + "c" * styler.data.shape[1])


def html(styler: Styler, decimals: int, caption: str) -> str:
    """An HTML ``<table>`` with a visible ``caption`` of a ``thesis_styler`` or ``styled`` table."""
    styler.format(partial(_cell, decimals=decimals, pm=" ± "), escape="html")
    if isinstance(styler.index, pd.MultiIndex):
        styler.format_index(partial(label, latex=False), level="Variant", escape="html")
    styler.set_table_styles([{"selector": "td.best", "props": "font-weight: bold;"}])
    return styler.to_html(caption=caption)


def _cell(value, decimals: int, pm: str) -> str:
    """(mean, std) as ``mean ± std`` (no std: one seed); a float to ``decimals``."""
    if isinstance(value, tuple):
        mean, std = value
        return f"{mean:.{decimals}f}" + ("" if np.isnan(std) else f"{pm}{std:.{decimals}f}")
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.{decimals}f}"
    return str(value)


def thesis_table(summary_rows: pd.DataFrame, decimals: int) -> tuple[pd.DataFrame, str]:
    """One data set's table: its CSV frame and its LaTeX (``thesis_styler``, best value bold)."""
    csv = _thesis_order(summary_rows).round(decimals + 3)
    return csv.reset_index(drop=True), latex(thesis_styler(summary_rows, decimals), decimals)


def thesis_comparison(summary_rows: pd.DataFrame, paper: pd.DataFrame,
                      paper_names: dict[str, str], confidence: float) -> pd.DataFrame:
    """The thesis's published numbers beside our means, with the difference (ours − thesis) and
    our prediction interval for one run (the thesis's numbers are single runs)."""
    ours = summary_rows.assign(paper_dataset=summary_rows.dataset.map(paper_names))
    merged = ours.merge(paper, left_on=["paper_dataset", "regime", "variant"],
                        right_on=["dataset", "regime", "variant"], suffixes=("", "_thesis"))
    rows = []
    for metric in METRICS:
        low, high = prediction_interval(merged[f"{metric}_mean"], merged[f"{metric}_std"], merged.seeds, confidence)
        rows.append(pd.DataFrame({
            "dataset": merged.dataset, "regime": merged.regime, "variant": merged.variant,
            "metric": metric, "thesis": merged[metric], "ours": merged[f"{metric}_mean"],
            "ours_std": merged[f"{metric}_std"], "seeds": merged.seeds,
            "difference": merged[f"{metric}_mean"] - merged[metric],
            "pi_low": low, "pi_high": high, "thesis_in_pi": (low <= merged[metric]) & (merged[metric] <= high)}))
    return pd.concat(rows, ignore_index=True)


def thesis_covers(paper: pd.DataFrame, paper_names: dict[str, str], regimes) -> bool:
    """Whether the thesis reports numbers for any of these data sets (``paper_names``: data set ->
    its name in the thesis) in any of these regimes, so that a comparison with it has rows."""
    reported = set(zip(paper.dataset, paper.regime))
    return any((name, regime) in reported for name in paper_names.values() for regime in regimes)


def thesis_gaps(metrics: pd.DataFrame, paper: pd.DataFrame, paper_names: dict[str, str]) -> list[str]:
    """A sentence for each data set, and each regime of a data set, of ours that the thesis has no
    numbers for (its comparison has no rows there)."""
    notes = []
    for dataset in metrics.dataset.unique():
        theirs = paper[paper.dataset == paper_names.get(dataset, dataset)]
        if theirs.empty:
            notes.append(f"The thesis reports no results for the data set {dataset}, so there is "
                         f"nothing to compare it with.")
            continue
        for regime in metrics[metrics.dataset == dataset].regime.unique():
            if regime not in set(theirs.regime):
                notes.append(f"The thesis reports no {regime_label(regime)} results for {dataset}.")
    return notes


PAIRED_COLUMNS = ("dataset", "regime", "comparison", "metric", "seeds", "mean_difference", "ci_low", "ci_high",
                  "confidence")


def paired_comparisons(metrics: pd.DataFrame, confidence: float,
                       pairs: tuple[tuple[str, str], ...] = PAIRS) -> pd.DataFrame:
    """For each pair (a, b) of ``pairs``: a − b per seed (same seed, and for estimators of one
    network the same weights), its mean and a t-based confidence interval over seeds. A study
    whose estimators hold no pair (an lr sweep of the default EMA and PreciseBN) gets the columns
    and no rows."""
    wide = with_variants(metrics).pivot_table(index=["dataset", "regime", "seed"], columns="variant",
                                              values=list(METRICS))
    rows = []
    for a, b in pairs:
        for metric in METRICS:
            if (metric, a) not in wide.columns or (metric, b) not in wide.columns:
                continue
            diff = (wide[(metric, a)] - wide[(metric, b)]).dropna()
            for (dataset, regime), d in diff.groupby(level=["dataset", "regime"]):
                low, high = t_interval(d.to_numpy(), confidence)
                rows.append({"dataset": dataset, "regime": regime, "comparison": f"{a} - {b}",
                             "metric": metric, "seeds": len(d), "mean_difference": d.mean(),
                             "ci_low": low, "ci_high": high, "confidence": confidence})
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def signed(value: float, decimals: int) -> str:
    """``value`` with its sign, ``+0.0039``; a value that prints as zero is unsigned (no "-0.000")."""
    text = f"{value:+.{decimals}f}"
    return text[1:] if float(text) == 0 else text


def paired_cell(mean: float, low: float, high: float, decimals: int) -> str:
    """A paired difference and its interval, ``+0.0039 [+0.0016, +0.0063]``; the mean alone where
    there is no interval (one seed)."""
    if np.isnan(low) or np.isnan(high):
        return signed(mean, decimals)
    return f"{signed(mean, decimals)} [{signed(low, decimals)}, {signed(high, decimals)}]"


def paired_display(paired: pd.DataFrame, decimals: int) -> pd.DataFrame:
    """``paired_comparisons`` as a reader sees it: labelled rows, n, and one cell per comparison
    "mean [CI]" at ``decimals`` places (the CSV keeps the raw columns)."""
    levels = sorted(set(paired.confidence)) if len(paired) else []
    header = (f"Mean difference [{levels[0]:.0%} CI]" if len(levels) == 1
              else "Mean difference [CI]")  # one level per study: config report.confidence

    def comparison(pair: str) -> str:
        a, b = pair.split(" - ")
        return f"{label(a, latex=False)} − {label(b, latex=False)}"

    return pd.DataFrame({
        "Data set": paired.dataset, "Regime": paired.regime.map(regime_label),
        "Comparison": paired.comparison.map(comparison), "Metric": paired.metric.map(metric_header),
        "n": paired.seeds.astype(int),
        header: [paired_cell(m, lo, hi, decimals)
                 for m, lo, hi in zip(paired.mean_difference, paired.ci_low, paired.ci_high)]})


def t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` with n − 1 degrees of freedom (NaN for n < 2)."""
    from scipy import stats  # a second of start-up: only where intervals are computed

    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    return float(values.mean() - half), float(values.mean() + half)


def interval_sign(low: float, high: float) -> int:
    """+1 / −1 where an interval lies above / below zero, 0 where it holds zero (or is NaN)."""
    return 1 if low > 0 else -1 if high < 0 else 0


def mark_verdict(sign: int, neighbour_signs, adjusted_sign: int) -> str:
    """The published pages' one rule for an interval that excludes zero (``sign`` ±1): *repeated*
    when a neighbouring cell of the same comparison (the page says which: the next batch size,
    the other data set) excludes zero the same way, *survives adjustment* when it still does with
    every interval of the page adjusted together (Bonferroni; ``adjusted_sign``), else *isolated*:
    quoted, never read as an effect."""
    if sign in set(neighbour_signs):
        return "repeated"
    return "survives adjustment" if adjusted_sign == sign else "isolated"


def prediction_interval(mean, std, n, confidence: float):
    """Student-t interval for *one more* run drawn like the n runs with this mean and std:
    mean ± t·std·√(1 + 1/n), n − 1 degrees of freedom (NaN for n < 2); elementwise on arrays.
    A single published run (the thesis's) outside it is unlikely to be a run like ours."""
    from scipy import stats

    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore"):
        half = stats.t.ppf(0.5 + confidence / 2, n - 1) * np.asarray(std) * np.sqrt(1 + 1 / n)
    half = np.where(n >= 2, half, np.nan)
    return np.asarray(mean) - half, np.asarray(mean) + half


def with_batch_size(frame: pd.DataFrame, sizes: dict[str, int | None]) -> pd.DataFrame:
    """``frame`` with a ``batch_size`` column from its ``regime`` (``sizes``: regime -> batch size,
    ``dmbn.config.regime_batch_size``; full batch is the number of training samples)."""
    missing = sorted(set(frame.regime) - set(sizes))
    if missing:
        raise ValueError(f"no batch size for the regimes {missing} (known: {sorted(sizes)})")
    return frame.assign(batch_size=frame.regime.map(sizes).astype(float))


def batch_axis(metrics: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per (dataset, variant, regime) of ``metrics`` (with ``batch_size``): every metric's mean over
    seeds and its Student-t interval (``t_interval``), in the order of the axis: variants in the
    tables' order, batch sizes ascending, full batch last."""
    rows = []
    for (dataset, variant, regime), runs in with_variants(metrics).groupby(["dataset", "variant", "regime"]):
        row = {"dataset": dataset, "variant": variant, "regime": regime,
               "batch_size": runs.batch_size.iloc[0], "full_batch": regime in FULL_BATCH_REGIMES,
               "seeds": len(runs)}
        for metric in METRICS:
            values = runs[metric].to_numpy()
            low, high = t_interval(values, confidence)
            row.update({f"{metric}_mean": values.mean(), f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        rows.append(row)
    out = pd.DataFrame(rows)
    order = {v: i for i, v in enumerate(present_order(out.variant))}
    keys = pd.DataFrame({"variant": out.variant.map(order), "full": out.full_batch,
                         "size": out.batch_size.fillna(np.inf)})
    out = out.loc[keys.sort_values(["variant", "full", "size"], kind="stable").index]
    return out.assign(confidence=confidence).reset_index(drop=True)


def axis_label(regime: str, batch_size: float) -> str:
    """A point of the batch-size axis for readers: ``8``, or ``full`` with its size if known."""
    if regime not in FULL_BATCH_REGIMES:
        return f"{batch_size:g}"
    return "full" if np.isnan(batch_size) else f"full ({batch_size:g})"


def batch_axis_wide(axis: pd.DataFrame, metric: str = "accuracy", latex: bool = True) -> pd.DataFrame:
    """One data set's ``batch_axis`` rows for reading: a row per variant (its label, the index), a
    column per batch size in the axis's order, cells (mean, half-width of the interval), rendered
    ``mean ± half-width`` by ``batch_axis_latex`` and ``html``."""
    columns = [axis_label(r, b) for r, b in zip(axis.regime, axis.batch_size)]
    points = axis.assign(column=columns).drop_duplicates("column").assign(
        size=lambda f: f.batch_size.fillna(np.inf)).sort_values(["full_batch", "size"], kind="stable")
    cells = axis.assign(column=columns, cell=list(zip(
        axis[f"{metric}_mean"], (axis[f"{metric}_ci_high"] - axis[f"{metric}_ci_low"]) / 2)))
    wide = cells.pivot(index="variant", columns="column", values="cell")
    wide = wide.loc[present_order(wide.index), list(points.column)]
    wide.index = pd.Index([label(v, latex=latex) for v in wide.index], name="Variant")
    wide.columns.name = None
    return wide


def batch_axis_latex(wide: pd.DataFrame, decimals: int) -> str:
    """Booktabs LaTeX of ``batch_axis_wide(..., latex=True)``: variant labels as written (LaTeX)."""
    styler = Styler(wide.rename_axis(None), uuid=TABLE_ID, cell_ids=False)
    styler.format(partial(_cell, decimals=decimals, pm=" $\\pm$ "))
    styler.format_index(escape="latex", axis="columns")
    return styler.to_latex(hrules=True, column_format="l" + "c" * wide.shape[1])


def to_latex(frame: pd.DataFrame, decimals: int) -> str:
    """A plain booktabs LaTeX table of ``frame``."""
    return latex(styled(frame), decimals)
