"""Markdown tables for docs/REPRODUCTION.md, generated from published studies' files
(docs/results/<study>/), so that the page and the committed files cannot disagree.

    python docs/reproduction_tables.py mlp --rounding mlp_threads > /tmp/tables.md

Sections: per data set and regime, the thesis's (single-run) numbers beside our mean ± std over
n seeds and our 95 % prediction interval for one run; paired comparisons over seeds (95 % t
interval); the noise measured two ways (seed to seed, and rounding: same seed, other thread
count). Every statistic comes from ``dmbn.tables`` / the study's own comparison files.
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

from dmbn.names import DEFAULT_ESTIMATOR, REGIMES, regime_label  # noqa: E402
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
    if args.rounding:
        print("\n### Noise: seed to seed, and rounding alone\n")
        print(noise(pd.read_csv(HERE / "results" / args.rounding / "comparisons" / "rounding.csv")))


if __name__ == "__main__":
    main()
