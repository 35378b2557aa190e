"""From per-run metrics to the study's tables: the thesis's layout, the thesis beside us, and
paired comparisons on the same weights and seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .names import BATCH_FREE_ARCHS, DEFAULT_ESTIMATOR, METRICS, REGIMES, regime_label

EXTRA_VARIANTS = ("precise", "cma", "recalibrated")
LABELS = {"dmbn": "DMBN", "bn-bfn": "BN-BFN", "precise": "PreciseBN", "cma": "Cumulative average",
          "recalibrated": "Recalibrated (ESM = 0)"}
PAIRS = (("dmbn", DEFAULT_ESTIMATOR), ("dmbn", "bn-bfn"), ("dmbn", "precise"))


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


def variant_order(estimators) -> list[str]:
    statics = sorted((e for e in estimators if e.startswith("static-")),
                     key=lambda e: float(e.removeprefix("static-")))
    return statics + ["dmbn", "bn-bfn", *EXTRA_VARIANTS]


def label(variant: str) -> str:
    if variant.startswith("static-"):
        beta = variant.removeprefix("static-")
        return f"Static BN ($\\beta = {beta}$)" + (" (default)" if variant == DEFAULT_ESTIMATOR else "")
    return LABELS.get(variant, variant)


def with_variants(metrics: pd.DataFrame) -> pd.DataFrame:
    """The thesis's rows: every estimator of the BN network, and BN-BFN (the batch-free twin with
    the default estimator). The twin's other estimators are not thesis rows and are dropped."""
    batch_free = metrics.arch.isin(list(BATCH_FREE_ARCHS))
    bn = metrics[~batch_free].assign(variant=lambda f: f.estimator)
    bfn = metrics[batch_free & (metrics.estimator == DEFAULT_ESTIMATOR)].assign(variant="bn-bfn")
    return pd.concat([bn, bfn], ignore_index=True)


def summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of every metric per (dataset, regime, variant)."""
    grouped = with_variants(metrics).groupby(["dataset", "regime", "variant"])[list(METRICS)]
    out = grouped.agg(["mean", "std"])
    out.columns = [f"{metric}_{stat}" for metric, stat in out.columns]
    out["seeds"] = grouped.size()
    return out.reset_index()


def thesis_table(summary_rows: pd.DataFrame, decimals: int) -> tuple[pd.DataFrame, str]:
    """One data set's table: regime blocks (full batch first, as the thesis), variant rows, the four
    metrics as mean ± std; best mean per regime and metric in bold. Returns (CSV frame, LaTeX)."""
    order = variant_order(summary_rows.variant)
    rows = summary_rows.assign(
        regime_order=summary_rows.regime.map({r: i for i, r in enumerate(REGIMES)}),
        variant_order=summary_rows.variant.map({v: i for i, v in enumerate(order)}),
    ).sort_values(["regime_order", "variant_order"])
    cells = {}
    for metric in METRICS:
        best = rows.groupby("regime")[f"{metric}_mean"].transform("max")
        cells[metric] = [
            _cell(m, s, decimals, bold=np.isclose(m, b))
            for m, s, b in zip(rows[f"{metric}_mean"], rows[f"{metric}_std"], best)
        ]
    latex_frame = pd.DataFrame(
        {"Regime": rows.regime.map(regime_label).values, "Variant": rows.variant.map(label).values,
         **{m.capitalize() if m != "f1" else "F1": cells[m] for m in METRICS}})
    latex = latex_frame.set_index(["Regime", "Variant"]).to_latex(
        escape=False, multirow=True, column_format="ll" + "c" * len(METRICS))
    csv = rows.drop(columns=["regime_order", "variant_order"]).round(decimals + 3)
    return csv.reset_index(drop=True), latex


def _cell(mean: float, std: float, decimals: int, bold: bool) -> str:
    text = f"{mean:.{decimals}f}" + ("" if np.isnan(std) else f" $\\pm$ {std:.{decimals}f}")
    return f"\\textbf{{{text}}}" if bold else text


def thesis_comparison(summary_rows: pd.DataFrame, paper: pd.DataFrame,
                      paper_names: dict[str, str]) -> pd.DataFrame:
    """The thesis's published numbers beside our means, with the difference (ours − thesis)."""
    ours = summary_rows.assign(paper_dataset=summary_rows.dataset.map(paper_names))
    merged = ours.merge(paper, left_on=["paper_dataset", "regime", "variant"],
                        right_on=["dataset", "regime", "variant"], suffixes=("", "_thesis"))
    rows = []
    for metric in METRICS:
        rows.append(pd.DataFrame({
            "dataset": merged.dataset, "regime": merged.regime, "variant": merged.variant,
            "metric": metric, "thesis": merged[metric], "ours": merged[f"{metric}_mean"],
            "ours_std": merged[f"{metric}_std"], "seeds": merged.seeds,
            "difference": merged[f"{metric}_mean"] - merged[metric]}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def paired_comparisons(metrics: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """For each pair (a, b) of ``PAIRS``: a − b per seed (same seed, and for estimators of one
    network the same weights), its mean and a t-based confidence interval over seeds."""
    wide = with_variants(metrics).pivot_table(index=["dataset", "regime", "seed"], columns="variant",
                                              values=list(METRICS))
    rows = []
    for a, b in PAIRS:
        for metric in METRICS:
            if (metric, a) not in wide.columns or (metric, b) not in wide.columns:
                continue
            diff = (wide[(metric, a)] - wide[(metric, b)]).dropna()
            for (dataset, regime), d in diff.groupby(level=["dataset", "regime"]):
                low, high = _t_interval(d.to_numpy(), confidence)
                rows.append({"dataset": dataset, "regime": regime, "comparison": f"{a} - {b}",
                             "metric": metric, "seeds": len(d), "mean_difference": d.mean(),
                             "ci_low": low, "ci_high": high, "confidence": confidence})
    return pd.DataFrame(rows)


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats  # a second of start-up: only where intervals are computed

    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * stats.sem(values)
    if np.isnan(half):  # identical values: a zero-width interval
        half = 0.0
    return float(values.mean() - half), float(values.mean() + half)


def to_latex(frame: pd.DataFrame, decimals: int) -> str:
    """A plain booktabs LaTeX table of ``frame``."""
    return frame.to_latex(index=False, float_format=f"%.{decimals}f", escape=True)
