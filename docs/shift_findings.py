"""Tables and numbers for docs/SHIFT.md's findings, generated from a published shift study
(docs/results/<study>/: ``shift/scores.csv``, ``shift/esm_mu_by_layer.csv``, ``summaries/``), so that the
page and the files cannot disagree.

    python docs/shift_findings.py shift > /tmp/shift.md

Per data set and regime (batch size): how well the networks trained (last-epoch train loss and
accuracy beside the reference study's at the same batch size); every row's error relative to the
default EMA (mCE-style, ``dmbn.shift_tables.relative_error``); the reviewer's paired questions —
each a difference of accuracy a − b, per seed the mean over every corruption and severity (and
at severity 5 alone), then the mean and Student-t interval over seeds; the test-batch rows on
each non-i.i.d. stream against the i.i.d. one; and whether the trained estimator closest to the
shifted set's statistics (smallest ESM_μ there) is the most accurate one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from dmbn.names import ANY_STREAM, DEFAULT_ESTIMATOR, SHIFT_SOURCE, regime_label, regime_rank  # noqa: E402
from dmbn.readback import read_parts  # noqa: E402
from dmbn.shift_tables import REFERENCE_STREAM, relative_error, shown, stream_table  # noqa: E402
from dmbn.tables import interval_sign, mark_verdict, t_interval  # noqa: E402

CONFIDENCE = 0.95
WORST = 5  # the highest severity, reported on its own as well
ORACLE = "target-recalibrated"
# The questions, each a − b in accuracy. A row is "name" (a source row, or the oracle) or
# "name@stream" (a test-time rule on that test order). They ask: do test batches beat the
# trained statistics under shift, which test-time rule is best, how far is each from the oracle,
# does the variance convention (biased EMA, the mean of batch variances) matter under shift, and
# do the estimators that win on i.i.d. data (DMBN, PreciseBN) win under shift.
QUESTIONS = (("test-batch@iid", DEFAULT_ESTIMATOR), ("source-target-mix@iid", DEFAULT_ESTIMATOR),
             ("robust-ema@iid", DEFAULT_ESTIMATOR), ("decaying-momentum@iid", DEFAULT_ESTIMATOR),
             ("source-target-mix@iid", "test-batch@iid"), (ORACLE, "test-batch@iid"),
             # on a non-i.i.d. stream, is a test-time rule still better than not adapting at all?
             ("test-batch@dirichlet", DEFAULT_ESTIMATOR), ("robust-ema@dirichlet", DEFAULT_ESTIMATOR),
             ("decaying-momentum@dirichlet", DEFAULT_ESTIMATOR), ("test-batch@class-sorted", DEFAULT_ESTIMATOR),
             ("static-biased-0.1", DEFAULT_ESTIMATOR), ("precise-mean-biased", "precise-mean-unbiased"),
             ("precise", DEFAULT_ESTIMATOR), ("dmbn", DEFAULT_ESTIMATOR), ("static-0.9", DEFAULT_ESTIMATOR))
# what each question is asked on: the shifted sets, the worst severity alone, the clean test set
# (source rows only: the run's own metrics.csv, all 10,000 test images) and the shift's change
# of the difference, (a − b) on all sets minus (a − b) on the clean test set
SETS = ("all sets", f"severity {WORST}", "clean test set", "all sets − clean")


def markdown(frame: pd.DataFrame, decimals: int = 4) -> str:
    """A table as markdown, every float at ``decimals`` and every string as written (tabulate
    would read "+0.0150" as a number and drop its sign)."""
    floats = frame.select_dtypes("float").columns
    text = frame.astype({c: object for c in floats})
    for column in floats:
        text[column] = [f"{v:.{decimals}f}" for v in frame[column]]
    return text.to_markdown(index=False, disable_numparse=True)


def row_key(frame: pd.DataFrame) -> pd.Series:
    """``name`` for rows that do not depend on the test order, ``name@stream`` for the others."""
    return frame.row.where(frame.stream == ANY_STREAM, frame.row + "@" + frame.stream)


def per_seed_accuracy(scores: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (dataset, regime, arch, seed) and row key, the mean over the sets given."""
    keyed = scores.assign(key=row_key(scores))
    return keyed.groupby(["dataset", "regime", "arch", "seed", "key"]).accuracy.mean().unstack("key")


def _interval(values: np.ndarray) -> str:
    low, high = t_interval(values, CONFIDENCE)
    return f"{values.mean():+.4f} [{low:+.4f}, {high:+.4f}]"


def _sign(values: np.ndarray, confidence: float) -> int:
    """The sign of the Student-t interval of ``values`` (``interval_sign``)."""
    return interval_sign(*t_interval(values, confidence))


def question_cells(scores: pd.DataFrame, clean: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per question, regime and set selection (``SETS``): the per-seed differences a − b,
    each seed's accuracy the mean over the sets selected. ``clean``: the study's metrics.csv,
    for the questions whose rows are both trained estimators."""
    selections = {SETS[0]: per_seed_accuracy(scores), SETS[1]: per_seed_accuracy(scores[scores.severity == WORST])}
    if clean is not None:
        selections[SETS[2]] = clean.pivot_table(index=["dataset", "regime", "arch", "seed"], columns="estimator",
                                                values="accuracy")
    rows = []
    for (dataset, regime, arch), group in selections[SETS[0]].groupby(level=["dataset", "regime", "arch"]):
        for a, b in QUESTIONS:
            if a not in group or b not in group:
                continue  # a question whose rows the study lacks is left out, not printed empty
            differences = {}
            for sets, accuracy in selections.items():
                if a in accuracy and b in accuracy:
                    seeds = accuracy.loc[group.index]
                    differences[sets] = (seeds[a] - seeds[b]).to_numpy()
            if SETS[2] in differences:
                differences[SETS[3]] = differences[SETS[0]] - differences[SETS[2]]
            rows += [{"dataset": dataset, "regime": regime, "arch": arch, "comparison": f"{a} − {b}",
                      "sets": sets, "differences": d} for sets, d in differences.items()]
    return pd.DataFrame(rows)


def marks(cells: pd.DataFrame) -> list[str]:
    """Each cell's verdict under the pages' one rule (``mark_verdict``): its neighbours are the
    same question at the neighbouring batch sizes, the adjustment is over every cell given;
    '' where zero is inside."""
    adjusted_confidence = 1 - (1 - CONFIDENCE) / len(cells)
    signs = [_sign(d, CONFIDENCE) for d in cells.differences]
    cells = cells.assign(sign=signs, rank=[regime_rank(r) for r in cells.regime])
    verdicts = []
    for i, cell in cells.iterrows():
        if cell.sign == 0:
            verdicts.append("")
            continue
        same = cells[(cells.dataset == cell.dataset) & (cells.arch == cell.arch)
                     & (cells.comparison == cell.comparison) & (cells.sets == cell.sets)].sort_values("rank")
        at = list(same.index).index(i)
        neighbours = same.iloc[max(at - 1, 0):at + 2].drop(index=i)
        verdicts.append(mark_verdict(cell.sign, neighbours.sign, _sign(cell.differences, adjusted_confidence)))
    return verdicts


def _question_frame(cells: pd.DataFrame, selections: tuple[str, ...]) -> pd.DataFrame:
    """One line per question and regime with an interval and its mark per selection; only the
    questions asked on every selection given."""
    rows = []
    for (dataset, regime, arch, comparison), group in cells.groupby(["dataset", "regime", "arch", "comparison"],
                                                                    sort=False):
        if not set(selections) <= set(group.sets):
            continue
        row = {"data set": dataset, "regime": regime_label(regime), "network": arch, "comparison": comparison,
               "seeds": len(group.differences.iloc[0]), "_rank": regime_rank(regime)}
        for sets in selections:
            cell = group[group.sets == sets].iloc[0]
            row[sets], row[f"mark ({sets})"] = cell.interval, cell.mark
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["data set", "_rank"], kind="stable").drop(columns="_rank")


def questions_table(scores: pd.DataFrame, clean: pd.DataFrame | None = None) -> str:
    """Each question's paired difference, over every set and at severity ``WORST`` alone; with
    ``clean``, a second table setting the trained estimators' questions on the shifted sets
    beside the clean test set. Each interval with its mark (``marks``, over the intervals of
    both tables together), and below them how many intervals exclude zero."""
    cells = question_cells(scores, clean)
    cells = cells.assign(interval=[_interval(d) for d in cells.differences], mark=marks(cells))
    text = markdown(_question_frame(cells, SETS[:2]))
    if clean is not None:
        text += ("\n\nThe trained estimators' questions on the shifted sets and on the clean test set (a − b "
                 "on all 10,000 test images, from the study's metrics.csv), and the shift's change of the "
                 "difference:\n\n" + markdown(_question_frame(cells, (SETS[0], *SETS[2:]))))
    excluding = int((cells.mark != "").sum())
    t_quantiles = ", ".join(f"t = {stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1):.2f} for n = {n}"
                            for n in sorted({len(d) for d in cells.differences}))
    return (text + f"\n\nIntervals in these tables: {len(cells)}; {excluding} of {len(cells)} exclude zero, "
            f"of which {int((cells.mark == 'repeated').sum())} repeated, "
            f"{int((cells.mark == 'survives adjustment').sum())} survive adjustment alone and "
            f"{int((cells.mark == 'isolated').sum())} isolated; with no difference anywhere about 1 in 20 "
            f"({len(cells) / 20:.1f} of {len(cells)}) would exclude zero by chance. Student-t quantile: {t_quantiles}.")


def relative_table(scores: pd.DataFrame) -> str:
    """mCE-style error relative to the default EMA, per data set (``relative_error``)."""
    parts = []
    for dataset, group in scores.groupby("dataset"):
        table = shown(relative_error(group, CONFIDENCE), 3)
        parts.append(f"**{dataset}**\n\n" + markdown(table, 3))
    return "\n\n".join(parts)


def streams_table(scores: pd.DataFrame) -> str:
    parts = []
    for dataset, group in scores.groupby("dataset"):
        table = shown(stream_table(group, CONFIDENCE), 4)
        parts.append(f"**{dataset}**\n\n" + markdown(table))
    return "\n\n".join(parts)


def layer_mean_esm(esm: pd.DataFrame) -> pd.DataFrame:
    """Each source row's ESM_μ on each shifted set, the mean over BN layers (``esm``: the
    published ``esm_mu_by_layer.csv``, a column ``l<k>`` per layer)."""
    layers = [c for c in esm.columns if c.startswith("l") and c[1:].isdigit()]
    return esm.drop(columns=layers).assign(esm_mu=esm[layers].mean(axis=1))


def closest_agreement(scores: pd.DataFrame, esm: pd.DataFrame) -> pd.DataFrame:
    """Per set (run, corruption, severity): the Spearman correlation between the source rows'
    layer-mean ESM_μ and their accuracy, and whether the row with the smallest ESM_μ has the
    highest accuracy (ties for the highest count as a win). A negative correlation: closer wins."""
    from scipy import stats

    cells = ["dataset", "regime", "arch", "seed", "corruption", "severity"]
    source = scores[scores.family == SHIFT_SOURCE].rename(columns={"row": "estimator"})
    joined = source.merge(layer_mean_esm(esm), on=[*cells, "estimator"])  # rows with an ESM only
    rows = []
    for key, cell in joined.groupby(cells):
        rho = stats.spearmanr(cell.esm_mu, cell.accuracy).statistic
        closest = cell.accuracy.iloc[int(np.argmin(cell.esm_mu.to_numpy()))]
        rows.append({**dict(zip(cells, key)), "rows": len(cell), "rho": rho,
                     "closest_wins": bool(closest == cell.accuracy.max()),
                     "chance": (cell.accuracy == cell.accuracy.max()).sum() / len(cell)})
    return pd.DataFrame(rows)


def closest_table(scores: pd.DataFrame, esm: pd.DataFrame) -> str:
    """Per regime: the median Spearman ρ over sets, how many sets have ρ < 0, how often the
    closest row wins, and how often a row drawn at random would (its expected rate)."""
    cells = closest_agreement(scores, esm)
    rows = []
    for (dataset, regime, arch), group in cells.groupby(["dataset", "regime", "arch"]):
        rows.append({"data set": dataset, "regime": regime_label(regime), "network": arch,
                     "sets": len(group), "rows per set": int(group.rows.median()),
                     "median ρ": f"{group.rho.median():+.2f}",
                     "ρ < 0": f"{int((group.rho < 0).sum())} of {len(group)}",
                     "closest is most accurate": f"{int(group.closest_wins.sum())} of {len(group)}",
                     "at random (expected)": f"{group.chance.sum():.1f} of {len(group)}",
                     "_rank": regime_rank(regime)})
    frame = pd.DataFrame(rows).sort_values(["data set", "_rank"], kind="stable").drop(columns="_rank")
    return markdown(frame)


def training_table(training: pd.DataFrame, reference: pd.DataFrame | None, reference_name: str) -> str:
    """Last-epoch train loss and accuracy (train mode) per regime: mean ± std (n seeds), beside
    the reference study's at the same data set, regime and network, where it has them."""
    def cell(values: pd.Series) -> str:  # one seed has no spread: its value alone, as in the tables
        spread = f" ± {values.std():.4f}" if len(values) > 1 else ""
        return f"{values.mean():.4f}{spread} (n = {len(values)})"

    rows = []
    bank = training[training.member == "bank"]
    for (dataset, regime, arch), group in bank.groupby(["dataset", "regime", "arch"]):
        row = {"data set": dataset, "regime": regime_label(regime), "network": arch, "epoch": int(group.epoch.max()),
               "train loss": cell(group.train_loss), "train accuracy": cell(group.train_accuracy),
               "_rank": regime_rank(regime)}
        if reference is not None:
            ref = reference[(reference.member == "bank") & (reference.dataset == dataset)
                            & (reference.regime == regime) & (reference.arch == arch)]
            row[f"{reference_name} loss"] = cell(ref.train_loss) if len(ref) else "–"
            row[f"{reference_name} accuracy"] = cell(ref.train_accuracy) if len(ref) else "–"
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(["data set", "_rank"], kind="stable").drop(columns="_rank")
    return markdown(frame)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", help="a published shift study under docs/results/; several "
                        "(the parts of one study, a seed each) are read as one")
    parser.add_argument("--reference", default="batch_sweep",
                        help="a published study whose runs at the same batch sizes show how far training should get")
    parser.add_argument("--published", type=Path, default=HERE / "results",
                        help="where the published studies are (default: docs/results)")
    args = parser.parse_args(argv)
    roots = [args.published / study for study in args.studies]
    scores, esm, training, metrics = (read_parts(roots, name, every=True).drop(columns="study") for name in
                                      ("shift/scores.csv", "shift/esm_mu_by_layer.csv",
                                       "summaries/training_last_epoch.csv", "metrics.csv"))
    reference_file = args.published / args.reference / "summaries" / "training_last_epoch.csv"
    reference = pd.read_csv(reference_file) if reference_file.is_file() else None
    sets = scores.groupby(["corruption", "severity"]).ngroups
    print(f"### {' + '.join(args.studies)}: {scores.groupby(['dataset', 'regime', 'arch', 'seed']).ngroups} runs, "
          f"{scores.corruption.nunique()} corruptions × {scores.severity.nunique()} severities = {sets} shifted sets; "
          f"intervals: Student-t {CONFIDENCE:.0%} over seeds, unadjusted for the number of comparisons\n")
    print("#### Training (last epoch)\n")
    print(training_table(training, reference, args.reference) + "\n")
    print(f"#### Error relative to {DEFAULT_ESTIMATOR} (mCE-style; test-time rows on the {REFERENCE_STREAM} stream)\n")
    print(relative_table(scores) + "\n")
    print("#### Paired questions (accuracy a − b)\n")
    print(questions_table(scores, metrics) + "\n")
    print("#### Test-time rows on each stream\n")
    print(streams_table(scores) + "\n")
    print("#### Is the estimator closest to the shifted statistics the most accurate?\n")
    print(closest_table(scores, esm))


if __name__ == "__main__":
    main()
