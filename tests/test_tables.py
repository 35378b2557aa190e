"""The tables a reader sees, against independent computations: numpy/pandas for the cells, scipy's
t interval for the paired comparisons, the thesis's own rows, and a LaTeX parse for the bold."""

from __future__ import annotations

import functools
import io
from decimal import ROUND_HALF_EVEN, Decimal
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from dmbn.config import report_settings, study_batch_sizes
from dmbn.names import METRICS, REGIMES, regime_label
from dmbn.study_tables import TableFiles, write_paired, write_thesis_comparison, write_thesis_table
from dmbn.tables import (batch_axis, batch_axis_latex, batch_axis_wide, html, label, long_metrics,
                         paired_cell, paired_comparisons, paired_display, prediction_interval, styled,
                         separate_against_bank, summary, thesis_comparison, thesis_covers, thesis_styler, thesis_table, to_latex,
                         with_batch_size, with_variants)

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "workflow/resources/paper_tables.csv"
PUBLISHED = ROOT / "docs/results"
GOLDEN_STUDIES = ("quickstart", "mlp", "mlp_threads", "batch_sweep")
BATCH_AXIS = "_batch_sizes"  # the `batch_table` rule's tables: <dataset>_batch_sizes.csv
VARIANTS = ["static-0.1", "static-0.5", "static-0.9", "dmbn", "bn-bfn", "precise", "cma", "recalibrated"]
COLUMNS = ["Accuracy", "Sensitivity", "Specificity", "F1"]  # the LaTeX headers, in METRICS order


# -- hand-made inputs ----------------------------------------------------------------------------

def summary_rows(seed: int = 0, regimes=("mini", "full"), variants=VARIANTS, dataset="digits") -> pd.DataFrame:
    """A summary frame (as ``summary`` writes it) of distinct random means, rows in shuffled order."""
    rng = np.random.default_rng(seed)
    rows = []
    for regime in regimes:
        for variant in variants:
            row = {"dataset": dataset, "regime": regime, "variant": variant}
            for metric in METRICS:
                row[f"{metric}_mean"] = rng.uniform(0.1, 0.99)
                row[f"{metric}_std"] = rng.uniform(0.001, 0.05)
            row["seeds"] = int(rng.integers(2, 11))  # the n column shows each row's own
            rows.append(row)
    return pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)


def metrics_frame(values: dict[tuple[str, str, str], list[float]], dataset: str = "digits") -> pd.DataFrame:
    """Long metrics from ``{(regime, arch, estimator): per-seed accuracy}``; the other metrics are
    the accuracy shifted by a metric-specific offset so that each metric is distinct."""
    rows = []
    for (regime, arch, estimator), per_seed in values.items():
        for seed, value in enumerate(per_seed, start=1):
            if value is None:
                continue
            rows.append({"dataset": dataset, "regime": regime, "arch": arch, "seed": seed,
                         "estimator": estimator,
                         **{m: value + 0.01 * i for i, m in enumerate(METRICS)}})
    return pd.DataFrame(rows)


# -- parsing the LaTeX table ---------------------------------------------------------------------

def parse_latex(latex: str) -> pd.DataFrame:
    """Body of a thesis table as (regime label, variant label, column, text, bold)."""
    body = latex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    cells, regime = [], None
    for line in body.splitlines():
        if not line.strip() or line.startswith("\\cline"):
            continue
        parts = [p.strip() for p in line.rstrip().removesuffix("\\\\").split(" & ")]
        first = re.fullmatch(r"\\multirow\[t\]\{\d+\}\{\*\}\{(.*)\}", parts[0])
        regime = first.group(1) if first else (parts[0] or regime)
        for column, text in zip(COLUMNS + ["n"], parts[2:], strict=True):
            bold = re.fullmatch(r"\\textbf\{(.*)\}", text)
            cells.append({"regime": regime, "variant": parts[1], "column": column,
                          "text": bold.group(1) if bold else text, "bold": bool(bold)})
    return pd.DataFrame(cells)


# -- thesis_table: the bold, the order, the cells ------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_best_mean_per_regime_and_metric_is_bold_and_only_it(seed):
    rows = summary_rows(seed)
    _, latex = thesis_table(rows, decimals=3)
    cells = parse_latex(latex)
    assert len(cells) == len(rows) * (len(METRICS) + 1)
    for regime, block in rows.groupby("regime"):
        for metric, column in zip(METRICS, COLUMNS):
            # the largest mean rounded to the table's 3 places (Decimal: the exact binary value)
            printed = block[f"{metric}_mean"].map(
                lambda m: Decimal(m).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN))
            best = block.loc[printed == printed.max(), "variant"]
            shown = cells[(cells.regime == regime_label(regime)) & (cells.column == column)]
            assert sorted(shown[shown.bold].variant) == sorted(label(v) for v in best), (regime, metric)


def test_equal_best_means_are_both_bold():
    rows = summary_rows(3, regimes=("mini",))
    top = rows.accuracy_mean.max()
    rows.loc[rows.variant.isin(["dmbn", "cma"]), "accuracy_mean"] = top + 0.01
    cells = parse_latex(thesis_table(rows, decimals=3)[1])
    bold = cells[(cells.column == "Accuracy") & cells.bold].variant
    assert sorted(bold) == sorted([label("dmbn"), label("cma")])


@pytest.mark.parametrize("decimals, expected", [
    (3, ["bn-bfn", "precise", "recalibrated"]),  # 0.9941, 0.9938, 0.9944 all print 0.994: a tie
    (4, ["recalibrated"]),                       # 0.9941 < 0.9944 at four places
])
def test_means_that_print_equal_are_all_bold_or_none(decimals, expected):
    """The quickstart's full-batch block: BN-BFN bold at 0.994 ± 0.004 beside PreciseBN and
    Recalibrated at the same printed 0.994 ± 0.004, unbolded. Printed equal means a tie."""
    rows = summary_rows(8, regimes=("full",))
    rows["accuracy_mean"] = 0.90
    rows.loc[rows.variant == "bn-bfn", "accuracy_mean"] = 0.99412
    rows.loc[rows.variant == "precise", "accuracy_mean"] = 0.99381
    rows.loc[rows.variant == "recalibrated", "accuracy_mean"] = 0.99438
    rows.loc[rows.variant == "dmbn", "accuracy_mean"] = 0.99349  # prints 0.993: below the tie
    cells = parse_latex(thesis_table(rows, decimals=decimals)[1])
    bold = cells[(cells.column == "Accuracy") & cells.bold].variant
    assert sorted(bold) == sorted(label(v) for v in expected)


def test_a_metric_that_prints_the_same_for_every_row_has_no_bold():
    """The quickstart's full-batch specificity: 0.999 on all fourteen rows is no winner."""
    rows = summary_rows(9, regimes=("full", "mini"))
    rows.loc[rows.regime == "full", "specificity_mean"] = 0.9991 + 0.0003 * np.arange((rows.regime == "full").sum()) / 10
    cells = parse_latex(thesis_table(rows, decimals=3)[1])
    full = cells[(cells.column == "Specificity") & (cells.regime == regime_label("full"))]
    assert set(full.text.str.split(" ").str[0]) == {"0.999"} and not full.bold.any()
    mini = cells[(cells.column == "Specificity") & (cells.regime == regime_label("mini"))]
    assert mini.bold.sum() == 1  # the other block keeps its winner


def test_html_of_the_same_table_is_the_same_file_every_time():
    rows = summary_rows(10)
    frame = pd.DataFrame({"a": [1.0, 2.0]})
    assert html(thesis_styler(rows, 3), 3, "c") == html(thesis_styler(rows, 3), 3, "c")
    assert html(styled(frame), 3, "c") == html(styled(frame), 3, "c")


def test_table_rows_follow_the_regime_registry_and_the_thesis_variant_order():
    rows = summary_rows(4, regimes=("mini", "full-heldout", "full"))
    csv, latex = thesis_table(rows, decimals=3)
    regimes = [r for r in REGIMES if r in set(rows.regime)]  # the registry's order
    variants = ["static-0.1", "static-0.5", "static-0.9", "dmbn", "bn-bfn", "precise", "cma", "recalibrated"]
    expected = [(r, v) for r in regimes for v in variants]
    assert list(zip(csv.regime, csv.variant)) == expected
    cells = parse_latex(latex)
    shown = cells[cells.column == "Accuracy"]
    assert list(zip(shown.regime, shown.variant)) == [(regime_label(r), label(v)) for r, v in expected]


def test_static_betas_are_ordered_by_value_not_by_text():
    # "static-1e-05" sorts after "static-0.5" as text, before it as a number
    rows = summary_rows(5, regimes=("mini",), variants=["static-0.5", "static-1e-05", "static-0.25", "dmbn"])
    csv, _ = thesis_table(rows, decimals=3)
    assert csv.variant.tolist() == ["static-1e-05", "static-0.25", "static-0.5", "dmbn"]


@pytest.mark.parametrize("decimals", [1, 2, 4])
def test_cells_show_mean_and_std_at_the_configured_decimals(decimals):
    rows = summary_rows(6, regimes=("full",))
    rows.loc[rows.variant == "cma", "accuracy_std"] = np.nan  # one seed: no spread to show
    csv, latex = thesis_table(rows, decimals=decimals)
    cells = parse_latex(latex).set_index(["variant", "column"]).text
    for _, row in rows.iterrows():
        for metric, column in zip(METRICS, COLUMNS):
            mean, std = row[f"{metric}_mean"], row[f"{metric}_std"]
            expected = f"{round(mean, decimals):.{decimals}f}"
            if not np.isnan(std):
                expected += f" $\\pm$ {round(std, decimals):.{decimals}f}"
            assert cells[(label(row.variant), column)] == expected
        assert cells[(label(row.variant), "n")] == str(row.seeds)  # the seeds behind the cell
    # the CSV keeps three more decimals than the table shows
    merged = csv.merge(rows, on=["dataset", "regime", "variant"], suffixes=("", "_in"))
    for metric in METRICS:
        np.testing.assert_allclose(merged[f"{metric}_mean"], merged[f"{metric}_mean_in"].round(decimals + 3),
                                   rtol=0, atol=1e-12)
        assert (merged[f"{metric}_mean"] != merged[f"{metric}_mean_in"]).any()  # rounded, not copied


def test_csv_twin_has_the_summary_columns_and_no_index_column():
    rows = summary_rows(7)
    csv, _ = thesis_table(rows, decimals=3)
    assert list(csv.columns) == list(rows.columns)
    assert csv.index.equals(pd.RangeIndex(len(rows)))


def test_latex_table_is_booktabs_with_labels_and_column_headers():
    _, latex = thesis_table(summary_rows(7), decimals=3)
    assert latex.startswith("\\begin{tabular}{llccccc}\n\\toprule\n")
    for regime in ("full", "mini"):  # one multirow block of eight variants per regime
        assert f"\\multirow[t]{{8}}{{*}}{{{regime_label(regime)}}} & Static BN ($\\beta = 0.1$) (default) &" in latex
    rows = parse_latex(latex)
    assert rows[rows.column == "Accuracy"].variant.tolist()[:8] == [
        "Static BN ($\\beta = 0.1$) (default)", "Static BN ($\\beta = 0.5$)", "Static BN ($\\beta = 0.9$)",
        "DMBN", "BN-BFN", "PreciseBN", "Cumulative average", "Recalibrated (ESM = 0)"]
    assert " & ".join(COLUMNS + ["n"]) in latex
    assert "Static BN ($\\beta = 0.1$) (default)" in latex and "Static BN ($\\beta = 0.5$) &" in latex
    assert latex.rstrip().endswith("\\bottomrule\n\\end{tabular}")


def test_a_variant_without_a_label_is_shown_by_its_name():
    assert label("static-0.3") == "Static BN ($\\beta = 0.3$)"
    assert label("my-estimator") == "my-estimator"


def test_thesis_rows_are_every_bn_estimator_and_the_twin_with_the_default_estimator():
    metrics = metrics_frame({("mini", "mlp", "static-0.1"): [0.1], ("mini", "mlp", "cma"): [0.2],
                             ("mini", "mlp-bnbfn", "static-0.1"): [0.3], ("mini", "mlp-bnbfn", "cma"): [0.4],
                             ("mini", "resnet50-xbnblock-p2", "static-0.1"): [0.5]})
    out = with_variants(metrics)
    assert sorted(zip(out.arch, out.variant, out.accuracy)) == [
        ("mlp", "cma", 0.2), ("mlp", "static-0.1", 0.1), ("mlp-bnbfn", "bn-bfn", 0.3),
        ("resnet50-xbnblock-p2", "bn-bfn", 0.5)]
    assert out.index.equals(pd.RangeIndex(len(out)))


# -- summary: mean, std and n per cell ---------------------------------------------------------------

def test_summary_is_mean_std_and_count_over_seeds_per_cell():
    rng = np.random.default_rng(8)
    values = {}
    for regime in ("mini", "full"):
        values[(regime, "mlp", "static-0.1")] = list(rng.uniform(0, 1, 4))
        values[(regime, "mlp", "dmbn")] = list(rng.uniform(0, 1, 4))
        values[(regime, "mlp-bnbfn", "static-0.1")] = list(rng.uniform(0, 1, 3))  # the BN-BFN row
        values[(regime, "mlp-bnbfn", "dmbn")] = list(rng.uniform(0, 1, 3))  # no thesis row
    values[("mini", "mlp", "precise")] = [0.5]  # one seed: std undefined
    metrics = metrics_frame(values)
    out = summary(metrics).set_index(["regime", "variant"])
    assert sorted(out.index) == sorted([(r, v) for r in ("mini", "full") for v in ("static-0.1", "dmbn", "bn-bfn")]
                                       + [("mini", "precise")])
    for (regime, arch, estimator), per_seed in values.items():
        if arch == "mlp-bnbfn" and estimator != "static-0.1":
            continue
        variant = "bn-bfn" if arch == "mlp-bnbfn" else estimator
        for i, metric in enumerate(METRICS):
            x = np.asarray(per_seed) + 0.01 * i
            assert out.loc[(regime, variant), f"{metric}_mean"] == pytest.approx(np.mean(x))
            if len(x) > 1:
                assert out.loc[(regime, variant), f"{metric}_std"] == pytest.approx(np.std(x, ddof=1))
            else:
                assert np.isnan(out.loc[(regime, variant), f"{metric}_std"])
        assert out.loc[(regime, variant), "seeds"] == len(per_seed)


# -- paired comparisons --------------------------------------------------------------------------------

def t_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    return stats.t.interval(confidence, len(d) - 1, loc=d.mean(), scale=d.std(ddof=1) / np.sqrt(len(d)))


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_paired_interval_is_students_t_on_the_per_seed_differences(confidence):
    dmbn = [0.80, 0.75, 0.91, 0.60, 0.70]
    default = [0.70, 0.74, 0.85, 0.40, 0.71]  # differences 0.10, 0.01, 0.06, 0.20, -0.01
    twin = [0.90, 0.70, 0.95, 0.55, None]     # seed 5 missing: that seed drops out of the pair
    precise = [0.80, 0.75, 0.91, 0.60, 0.70]  # identical: a zero-width interval at 0
    metrics = metrics_frame({("mini", "mlp", "dmbn"): dmbn, ("mini", "mlp", "static-0.1"): default,
                             ("mini", "mlp", "precise"): precise, ("mini", "mlp-bnbfn", "static-0.1"): twin})
    metrics = metrics.sample(frac=1, random_state=0)  # pairing is by seed, not by row order
    out = paired_comparisons(metrics, confidence).set_index(["comparison", "metric"])
    assert sorted(set(out.index)) == sorted((c, m) for c in ("dmbn - static-0.1", "dmbn - bn-bfn", "dmbn - precise")
                                            for m in METRICS)
    for comparison, a, b in (("dmbn - static-0.1", dmbn, default), ("dmbn - bn-bfn", dmbn, twin)):
        pairs = [(x, y) for x, y in zip(a, b) if y is not None]
        d = np.array([x - y for x, y in pairs])
        low, high = t_interval(d, confidence)
        for metric in METRICS:  # a shift common to a and b leaves the differences unchanged
            row = out.loc[(comparison, metric)]
            assert row.seeds == len(d) and row.confidence == confidence
            assert row.mean_difference == pytest.approx(d.mean(), abs=1e-12)
            assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-12)
    same = out.loc[("dmbn - precise", "accuracy")]
    assert (same.mean_difference, same.ci_low, same.ci_high) == (0.0, 0.0, 0.0)


def test_paired_interval_of_two_seeds_has_one_degree_of_freedom():
    metrics = metrics_frame({("full", "mlp", "dmbn"): [0.9, 0.8], ("full", "mlp", "static-0.1"): [0.7, 0.75]})
    row = paired_comparisons(metrics, 0.95).iloc[0]
    assert (row.ci_low, row.ci_high) == pytest.approx(t_interval(np.array([0.2, 0.05]), 0.95), abs=1e-12)


def test_paired_interval_of_one_seed_is_undefined():
    metrics = metrics_frame({("full", "mlp", "dmbn"): [0.9], ("full", "mlp", "static-0.1"): [0.7]})
    row = paired_comparisons(metrics, 0.95).iloc[0]
    assert row.seeds == 1 and row.mean_difference == pytest.approx(0.2)
    assert np.isnan(row.ci_low) and np.isnan(row.ci_high)


def test_paired_comparisons_take_the_pairs_asked_for():
    metrics = metrics_frame({("full", "mlp", "static-0.9"): [0.9, 0.8, 0.7], ("full", "mlp", "static-0.1"): [0.5, 0.5, 0.6],
                             ("full", "mlp", "dmbn"): [0.9, 0.8, 0.7]})
    out = paired_comparisons(metrics, 0.95, (("static-0.9", "static-0.1"),))
    assert set(out.comparison) == {"static-0.9 - static-0.1"}
    assert out[out.metric == "accuracy"].mean_difference.item() == pytest.approx((0.4 + 0.3 + 0.1) / 3)


def test_paired_display_is_mean_and_interval_in_one_signed_cell_with_n():
    # dmbn − static-0.1 per seed: +0.0040, +0.0010, +0.0070 -> mean +0.0040, s = 0.0030,
    # t(0.975, 2) = 4.302652729911275, half = t * 0.003 / sqrt 3 = 0.0074524...
    metrics = metrics_frame({("mini", "mlp", "dmbn"): [0.904, 0.801, 0.707],
                             ("mini", "mlp", "static-0.1"): [0.900, 0.800, 0.700]})
    shown = paired_display(paired_comparisons(metrics, 0.95, (("dmbn", "static-0.1"),)), 4)
    row = shown[shown.Metric == "Accuracy"].iloc[0]
    assert list(shown.columns) == ["Data set", "Regime", "Comparison", "Metric", "n",
                                   "Mean difference [95% CI]"]
    assert (row["Data set"], row.Regime, row.n) == ("digits", regime_label("mini"), 3)
    assert row.Comparison == f"{label('dmbn', latex=False)} − {label('static-0.1', latex=False)}"
    assert row["Mean difference [95% CI]"] == "+0.0040 [-0.0035, +0.0115]"


@pytest.mark.parametrize("mean, low, high, decimals, text", [
    (0.0039, 0.0016, 0.0063, 4, "+0.0039 [+0.0016, +0.0063]"),  # the example
    (-0.00004, -0.0002, 0.0001, 3, "0.000 [-0.000, +0.000]".replace("-0.000", "0.000").replace("+0.000", "0.000")),
    (-0.0123, -0.02, -0.0046, 3, "-0.012 [-0.020, -0.005]"),
    (0.2, np.nan, np.nan, 4, "+0.2000"),  # one seed: no interval to show
])
def test_paired_cells_by_hand(mean, low, high, decimals, text):
    assert paired_cell(mean, low, high, decimals) == text


def test_prediction_interval_for_one_run_by_hand():
    # 1, 2, 3: mean 2, s = 1, t(0.975, 2 dof) = 4.302652729911275, half = t * s * sqrt(1 + 1/3)
    half = 4.302652729911275 * (4 / 3) ** 0.5
    assert prediction_interval(2.0, 1.0, 3, 0.95) == pytest.approx((2 - half, 2 + half), abs=1e-9)
    assert all(np.isnan(prediction_interval(0.5, np.nan, 1, 0.95)))


def test_pairs_are_formed_per_regime_and_dataset():
    metrics = pd.concat([
        metrics_frame({("mini", "mlp", "dmbn"): [0.5, 0.7, 0.9], ("mini", "mlp", "static-0.1"): [0.4, 0.4, 0.4],
                       ("full", "mlp", "dmbn"): [0.5, 0.5, 0.5], ("full", "mlp", "static-0.1"): [0.6, 0.7, 0.8]}),
        metrics_frame({("mini", "mlp", "dmbn"): [0.1, 0.2, 0.3], ("mini", "mlp", "static-0.1"): [0.3, 0.3, 0.3]},
                      dataset="mnist")])
    out = paired_comparisons(metrics, 0.95)
    out = out[out.metric == "accuracy"].set_index(["dataset", "regime"]).mean_difference
    assert out.to_dict() == pytest.approx({("digits", "mini"): 0.3, ("digits", "full"): -0.2,
                                           ("mnist", "mini"): -0.1})


# -- the thesis beside us ------------------------------------------------------------------------------

def test_thesis_comparison_on_the_thesis_rows_gives_every_difference_with_its_sign():
    paper = pd.read_csv(PAPER)
    thesis = paper[paper.dataset == "MNIST"]
    assert set(thesis.regime) == {"full", "mini"}  # the data set this test relies on
    rng = np.random.default_rng(9)
    offsets = {}
    rows = []
    for _, row in thesis.iterrows():
        ours = {"dataset": "mnist", "regime": row.regime, "variant": row.variant, "seeds": 3}
        for metric in METRICS:
            offset = rng.choice([-1, 1]) * rng.uniform(0.001, 0.2)
            offsets[(row.regime, row.variant, metric)] = offset
            ours[f"{metric}_mean"] = row[metric] + offset
            ours[f"{metric}_std"] = rng.uniform(0, 0.1)
        ours["seeds"] = int(rng.integers(2, 6))
        rows.append(ours)
    rows.append({**rows[0], "variant": "precise"})  # no thesis number: no comparison row
    rows.append({**rows[0], "dataset": "digits"})   # a data set the thesis lacks
    out = thesis_comparison(pd.DataFrame(rows), paper, {"mnist": "MNIST", "digits": "digits"}, 0.9)
    assert len(out) == len(offsets) and set(out.dataset) == {"mnist"}
    assert out.index.equals(pd.RangeIndex(len(out)))
    ours = pd.DataFrame(rows[:-2]).set_index(["regime", "variant"])
    signs, inside = [], []
    for _, row in out.iterrows():
        assert row.ours_std == ours.loc[(row.regime, row.variant), f"{row.metric}_std"]
        assert row.seeds == ours.loc[(row.regime, row.variant), "seeds"]
        offset = offsets[(row.regime, row.variant, row.metric)]
        published = thesis[(thesis.regime == row.regime) & (thesis.variant == row.variant)][row.metric].item()
        assert row.thesis == published
        assert row.ours == pytest.approx(published + offset)
        assert row.difference == pytest.approx(offset, abs=1e-12)
        # one more run like ours: mean ± t(0.95, n − 1)·std·√(1 + 1/n), scipy's t by hand
        std, n = row.ours_std, row.seeds
        half = stats.t.ppf(0.95, n - 1) * std * np.sqrt(1 + 1 / n)
        assert (row.pi_low, row.pi_high) == pytest.approx((row.ours - half, row.ours + half), abs=1e-12)
        assert row.thesis_in_pi == (abs(offset) <= half)
        inside.append(row.thesis_in_pi)
        signs.append(np.sign(row.difference) == np.sign(offset))
    assert all(signs) and {-1, 1} <= {int(np.sign(o)) for o in offsets.values()}
    assert set(inside) == {True, False}  # both verdicts occur


# -- long metrics: the separate-runs protocol ---------------------------------------------------------

def test_a_separate_run_replaces_only_its_own_banks_row():
    def run(seed, member, estimator, accuracy, regime="mini", arch="mlp"):
        return {"dataset": "digits", "regime": regime, "arch": arch, "seed": seed, "member": member,
                "estimator": estimator, **{m: accuracy for m in METRICS}}

    runs = pd.DataFrame([
        run(1, "bank", "static-0.1", 0.10), run(1, "bank", "static-0.3", 0.30), run(1, "bank", "dmbn", 0.50),
        run(1, "static-0.1", "static-0.1", 0.11),  # seed 1's own β = 0.1 run
        run(2, "bank", "static-0.1", 0.20),        # seed 2 has no separate run
        run(1, "bank", "static-0.1", 0.40, regime="full"),  # another regime: kept
        run(1, "bank", "static-0.1", 0.60, arch="mlp-bnbfn"),  # another network: kept
    ])
    out = long_metrics(runs)
    assert list(out.columns) == ["dataset", "regime", "arch", "seed", "estimator", *METRICS]
    got = sorted((r.regime, r.arch, r.seed, r.estimator, r.accuracy) for r in out.itertuples())
    assert got == sorted([("mini", "mlp", 1, "static-0.1", 0.11), ("mini", "mlp", 1, "static-0.3", 0.30),
                          ("mini", "mlp", 1, "dmbn", 0.50), ("mini", "mlp", 2, "static-0.1", 0.20),
                          ("full", "mlp", 1, "static-0.1", 0.40), ("mini", "mlp-bnbfn", 1, "static-0.1", 0.60)])



def test_each_network_trained_for_one_beta_stands_beside_its_seeds_bank_row():
    def run(seed, member, estimator, accuracy, regime="mini"):
        return {"dataset": "digits", "regime": regime, "arch": "mlp", "seed": seed, "member": member,
                "estimator": estimator, **{m: accuracy for m in METRICS}}

    runs = pd.DataFrame([
        run(2, "bank", "static-0.3", 0.30), run(2, "bank", "static-0.1", 0.10), run(2, "bank", "dmbn", 0.50),
        run(2, "static-0.3", "static-0.3", 0.33), run(2, "static-0.1", "static-0.1", 0.11),
        run(1, "bank", "static-0.1", 0.20), run(1, "static-0.1", "static-0.1", 0.22),
        run(1, "bank", "static-0.1", 0.40, regime="full"), run(1, "static-0.1", "static-0.1", 0.44, regime="full"),
    ])
    out = separate_against_bank(runs)
    assert list(out.columns) == ["dataset", "regime", "arch", "seed", "beta", "separate", "bank"]
    assert [tuple(r) for r in out[["regime", "seed", "beta", "separate", "bank"]].itertuples(index=False)] == [
        ("full", 1, 0.1, 0.44, 0.40), ("mini", 1, 0.1, 0.22, 0.20),
        ("mini", 2, 0.1, 0.11, 0.10), ("mini", 2, 0.3, 0.33, 0.30)]


# -- plain LaTeX tables --------------------------------------------------------------------------------

def test_to_latex_formats_floats_and_escapes_names():
    frame = pd.DataFrame({"mean_difference": [0.123456, -1.5], "comparison": ["dmbn - static-0.1", "a_b"]})
    latex = to_latex(frame, decimals=2)
    assert "mean\\_difference" in latex and "a\\_b" in latex
    assert re.search(r"^0\.12 & dmbn - static-0\.1 \\\\$", latex, re.M)
    assert re.search(r"^-1\.50 & a\\_b \\\\$", latex, re.M)
    assert "\\toprule" in latex and "0.123" not in latex


# -- golden: the published tables regenerate from their metrics ----------------------------------------

@functools.cache
def _config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _report_settings() -> tuple[int, float, dict[str, str]]:
    config = _config()
    report = report_settings(config, "quickstart")
    names = {k: v.get("paper_name", k) for k, v in config["datasets"].items()}
    return report["decimals"], report["confidence"], names


def _same_batch_axis(path: Path, metrics: pd.DataFrame, study: str, confidence: float, decimals: int) -> None:
    """A study with `batch_sizes`: its table against batch size, rebuilt as the `batch_table` rule
    does, with the batch sizes the configuration gives today."""
    dataset = path.stem.removesuffix(BATCH_AXIS)
    sizes = study_batch_sizes(_config(), study, dataset)
    axis = batch_axis(with_batch_size(metrics[metrics.dataset == dataset], sizes), confidence)
    _same_csv(path, axis.round(decimals + 3))
    assert batch_axis_latex(batch_axis_wide(axis), decimals) == path.with_suffix(".tex").read_text()


def _same_csv(published: Path, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    buffer.seek(0)
    pd.testing.assert_frame_equal(pd.read_csv(buffer), pd.read_csv(published), check_exact=False,
                                  rtol=1e-9, atol=1e-12, obj=str(published))


@pytest.mark.parametrize("study", GOLDEN_STUDIES)
def test_published_tables_regenerate_from_their_metrics(study, tmp_path):
    """Every published table is what the workflow's `table`, `thesis_comparison` and `paired` rules
    (dmbn.study_tables) write from the published metrics.csv: the CSVs' numbers, the LaTeX and the
    HTML pages; a thesis comparison exactly where it has rows."""
    folder = PUBLISHED / study
    if not (folder / "metrics.csv").exists():
        pytest.skip(f"{folder} holds no published metrics.csv (make publish STUDY={study})")
    decimals, confidence, paper_names = _report_settings()
    metrics = pd.read_csv(folder / "metrics.csv")
    datasets = sorted(metrics.dataset.unique())
    thesis_tables = sorted(p for p in (folder / "tables").glob("*.csv") if not p.stem.endswith(BATCH_AXIS))
    assert [p.stem for p in thesis_tables] == datasets
    captions = ROOT / "workflow/report"

    def files(name: str, caption: str) -> TableFiles:
        return TableFiles(*(tmp_path / f"{name}.{ext}" for ext in ("csv", "tex", "html")), captions / caption)

    for path in thesis_tables:
        write_thesis_table(metrics, study, path.stem, decimals, files(path.stem, "table.rst"))
        _same_csv(path, pd.read_csv(tmp_path / f"{path.stem}.csv"))
        for ext in ("tex", "html"):
            assert (tmp_path / f"{path.stem}.{ext}").read_text() == path.with_suffix(f".{ext}").read_text(), path
    for path in sorted((folder / "tables").glob(f"*{BATCH_AXIS}.csv")):
        _same_batch_axis(path, metrics, study, confidence, decimals)
    paper = pd.read_csv(PAPER)
    names = {d: paper_names.get(d, d) for d in datasets}
    comparisons = ["paired"]
    rows = thesis_comparison(summary(metrics), paper, names, confidence)
    assert thesis_covers(paper, names, metrics.regime.unique()) == (not rows.empty)  # the workflow's test
    if not rows.empty:
        comparisons.append("thesis")
        write_thesis_comparison(metrics, paper, study, names, decimals, confidence,
                                files("thesis", "thesis_comparison.rst"))
    write_paired(metrics, study, decimals, confidence, files("paired", "paired.rst"))
    published = sorted(p.stem for p in (folder / "comparisons").glob("*.csv") if p.stem != "rounding")
    assert published == sorted(comparisons)  # a study the thesis has no numbers for has no comparison
    for name in comparisons:
        path = folder / "comparisons" / f"{name}.csv"
        _same_csv(path, pd.read_csv(tmp_path / f"{name}.csv"))
        for ext in ("tex", "html"):
            assert (tmp_path / f"{name}.{ext}").read_text() == path.with_suffix(f".{ext}").read_text(), name

@pytest.mark.parametrize("names, regimes, covered", [
    ({"digits": "digits"}, ["full", "mini"], False),            # the quickstart: no digits table
    ({"fashion-mnist": "FashionMNIST"}, ["mini-b8", "full-heldout"], False),  # batch_sweep's regimes
    ({"fashion-mnist": "FashionMNIST"}, ["mini-b8", "mini"], True),
    ({"digits": "MNIST"}, ["full"], True),                      # a paper_name is what counts
])
def test_the_thesis_covers_a_study_where_its_comparison_has_rows(names, regimes, covered):
    paper = pd.read_csv(PAPER)
    metrics = pd.concat([metrics_frame({(r, "mlp", "dmbn"): [0.9, 0.8], (r, "mlp", "static-0.1"): [0.9, 0.7]},
                                       dataset=d) for d in names for r in regimes])
    rows = thesis_comparison(summary(metrics), paper, names, 0.95)
    assert thesis_covers(paper, names, regimes) is covered
    assert rows.empty is (not covered)  # the comparison itself agrees


def test_the_pages_one_rule_for_marks():
    from dmbn.tables import interval_sign, mark_verdict

    assert [interval_sign(*i) for i in ((0.1, 0.3), (-0.3, -0.1), (-0.1, 0.1), (0.0, 0.2), (float("nan"),) * 2)] \
        == [1, -1, 0, 0, 0]
    assert mark_verdict(1, [0, 1], adjusted_sign=0) == "repeated"  # a neighbour the same way
    assert mark_verdict(1, [-1, 0], adjusted_sign=1) == "survives adjustment"  # the other way does not repeat
    assert mark_verdict(-1, [], adjusted_sign=0) == "isolated"
    assert mark_verdict(-1, [0], adjusted_sign=1) == "isolated"  # adjusted the other way: not surviving


def test_a_study_without_any_compared_pair_writes_an_empty_paired_table_that_says_why(tmp_path):
    """An lr sweep's rows (default EMA, PreciseBN, recalibrated: no DMBN, no BN-BFN) hold none of
    the compared pairs: the paired files are written, with the columns and no rows, and the page
    says which estimators the study has (it failed the `paired` rule with an AttributeError)."""
    from dmbn.tables import PAIRS

    metrics = metrics_frame({("mini-b8", "mlp", e): [0.8, 0.7] for e in ("static-0.1", "precise", "recalibrated")})
    assert not any({a, b} <= set(metrics.estimator) for a, b in PAIRS)  # the premise: nothing to pair
    files = TableFiles(*(tmp_path / f"paired.{ext}" for ext in ("csv", "tex", "html")),
                       ROOT / "workflow/report/paired.rst")
    write_paired(metrics, "sweep", 3, 0.95, files)
    written = pd.read_csv(files.csv)
    assert written.empty and list(written.columns) == ["dataset", "regime", "comparison", "metric", "seeds",
                                                      "mean_difference", "ci_low", "ci_high", "confidence"]
    page = files.page.read_text()
    assert "No comparison" in page and "its estimators: precise, recalibrated, static-0.1" in page
    assert files.tex.read_text().strip()
