"""Markdown tables for docs/REPRODUCTION.md, generated from published studies' files
(docs/results/<study>/), so that the page and the committed files cannot disagree.

    python docs/reproduction_tables.py mlp --rounding mlp_threads > /tmp/tables.md

Sections: per data set and regime, the thesis's (single-run) numbers beside our mean ± std over
n seeds and our 95 % prediction interval for one run; paired comparisons over seeds (95 % t
interval); the static rows within one run against their seed spread; DMBN's β* and its ESM_μ
against every static β (from the published summaries); the noise measured two ways (seed to
seed, and rounding: same seed, other thread count); what the study cost (its run cards).
Intervals come from ``dmbn.tables``; the rest are counts and quantiles of committed files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from dmbn.names import DEFAULT_ESTIMATOR, REGIMES, estimator_kind, is_estimator_name, regime_label  # noqa: E402
from dmbn.runs import with_choosing_kind  # noqa: E402
from dmbn.tables import (PAIRS, paired_comparisons, prediction_interval, variant_order,  # noqa: E402
                         with_variants)

CONFIDENCE = 0.95
PAPER = ROOT / "workflow" / "resources" / "paper_tables.csv"
# The page's claims beyond the workflow's own pairs: does β's size matter, and does PreciseBN
# beat the default EMA.
PAGE_PAIRS = PAIRS + (("static-0.9", DEFAULT_ESTIMATOR), ("precise", DEFAULT_ESTIMATOR))
NOISE_ESTIMATORS = (DEFAULT_ESTIMATOR, "static-0.9", "dmbn", "precise")


def paper_names() -> dict[str, str]:
    """Our data set name -> the thesis's (config.yaml's ``paper_name``)."""
    datasets = yaml.safe_load((ROOT / "config.yaml").read_text())["datasets"]
    return {name: spec.get("paper_name", name) for name, spec in datasets.items()}


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
    layers = [c for c in esm.columns if c.startswith("l") and c[1:].isdigit()]
    long = esm.melt(id_vars=GROUP + ["seed", "estimator"], value_vars=layers, var_name="layer",
                    value_name="esm_mu").dropna()
    cells = long.pivot_table(index=GROUP + ["seed", "layer"], columns="estimator", values="esm_mu")
    static = [c for c in cells.columns if _is_static(c)]
    below_static = cells["dmbn"] < cells[static].min(axis=1)
    below_precise = cells["dmbn"] < cells["precise"]
    counts = pd.DataFrame({"cells": 1, "below every static β": below_static,
                           "below PreciseBN": below_precise}).groupby(GROUP, sort=False).sum()
    return _labelled(counts.reset_index()).to_markdown(index=False)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="a folder under docs/results/")
    parser.add_argument("--rounding", help="the published study whose comparisons/rounding.csv measures rounding noise")
    args = parser.parse_args(argv)
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
    for name in filter(None, (args.study, args.rounding)):
        if (HERE / "results" / name / "run_cards.csv").exists():
            print(f"\n### Compute: study `{name}`\n")
            print(compute(pd.read_csv(HERE / "results" / name / "run_cards.csv")))


if __name__ == "__main__":
    main()
