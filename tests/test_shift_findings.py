"""docs/shift_findings.py, the generator of docs/SHIFT.md's numbers (issue #29), against direct
computations on small score tables: paired questions from per-seed means, the stream differences,
and whether the row closest to the shifted statistics wins."""

from __future__ import annotations

import itertools
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dmbn.readback import ReadbackError

from conftest import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import shift_findings  # noqa: E402

SEEDS, SETS = (1, 2, 3), list(itertools.product(["fog", "blur"], [1, 5]))
ROWS = [("source", "static-0.1", "any"), ("source", "dmbn", "any"), ("test-time", "test-batch", "iid"),
        ("test-time", "test-batch", "dirichlet"), ("test-time", "target-recalibrated", "any")]


@pytest.fixture
def scores() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([dict(dataset="d", regime="mini-b16", arch="mlp", seed=seed, corruption=c, severity=s,
                              stream=stream, family=family, row=row, accuracy=rng.uniform(0.3, 0.9))
                         for seed in SEEDS for c, s in SETS for family, row, stream in ROWS])


def _accuracy(scores, seed, row, stream, severity=None) -> float:
    cells = scores[(scores.seed == seed) & (scores.row == row) & (scores.stream == stream)]
    if severity is not None:
        cells = cells[cells.severity == severity]
    return cells.accuracy.sum() / len(cells)


def _formatted(differences: list[float]) -> str:
    values = np.array(differences)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    return f"{values.mean():+.4f} [{low:+.4f}, {high:+.4f}]"


def test_each_question_is_a_paired_difference_of_per_seed_means_over_the_sets(scores):
    table = shift_findings.questions_table(scores)
    line = next(li for li in table.splitlines() if "test-batch@iid − static-0.1" in li)
    every = [_accuracy(scores, s, "test-batch", "iid") - _accuracy(scores, s, "static-0.1", "any") for s in SEEDS]
    worst = [_accuracy(scores, s, "test-batch", "iid", 5) - _accuracy(scores, s, "static-0.1", "any", 5)
             for s in SEEDS]
    assert _formatted(every) in line and _formatted(worst) in line, line
    oracle = next(li for li in table.splitlines() if "target-recalibrated − test-batch@iid" in li)
    expected = [_accuracy(scores, s, "target-recalibrated", "any") - _accuracy(scores, s, "test-batch", "iid")
                for s in SEEDS]
    assert _formatted(expected) in oracle
    # a question whose rows the study lacks is left out, not printed empty
    assert "static-biased-0.1" not in table and "precise" not in table


def test_the_stream_table_pairs_each_order_with_iid_by_seed(scores):
    text = shift_findings.streams_table(scores)
    line = next(li for li in text.splitlines() if "Test batch" in li)
    expected = [_accuracy(scores, s, "test-batch", "dirichlet") - _accuracy(scores, s, "test-batch", "iid")
                for s in SEEDS]
    assert _formatted(expected) in line, line
    assert f"{np.mean([_accuracy(scores, s, 'test-batch', 'iid') for s in SEEDS]):.4f}" in line


def _cell(seed: int, esm: list[float], accuracy: list[float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = [f"static-0.{i + 1}" for i in range(len(esm))]
    key = dict(dataset="d", regime="mini-b16", arch="mlp", seed=seed, corruption="fog", severity=5)
    scores = pd.DataFrame([dict(key, stream="any", family="source", row=n, accuracy=a) for n, a in zip(names, accuracy)])
    # the published summary's shape: two BN layers whose mean is the given ESM_μ
    esm_rows = pd.DataFrame([dict(key, estimator=n, l1=m + 0.5, l2=m - 0.5) for n, m in zip(names, esm)])
    return scores, esm_rows


def test_the_closest_row_wins_where_esm_and_accuracy_are_inversely_ordered():
    parts = [_cell(1, [1, 2, 3], [0.9, 0.8, 0.7]),   # closest most accurate: ρ = −1, a win
             _cell(2, [1, 2, 3], [0.7, 0.8, 0.9]),   # closest least accurate: ρ = +1, no win
             _cell(3, [2, 1, 3], [0.8, 0.8, 0.1])]   # closest ties for the best: a win, chance 2/3
    scores = pd.concat([p[0] for p in parts])
    esm = pd.concat([p[1] for p in parts])
    cells = shift_findings.closest_agreement(scores, esm).set_index("seed")
    assert cells.rho.loc[1] == pytest.approx(-1) and cells.rho.loc[2] == pytest.approx(1)
    assert cells.rho.loc[3] == pytest.approx(stats.spearmanr([2, 1, 3], [0.8, 0.8, 0.1]).statistic)
    assert list(cells.closest_wins) == [True, False, True]
    assert list(cells.chance) == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    line = shift_findings.closest_table(scores, esm).splitlines()[-1]
    assert "2 of 3" in line and "1.3 of 3" in line, line  # wins; expected wins at random 1/3+1/3+2/3


PUBLISHED = ROOT / "docs" / "results" / "shift"


@pytest.mark.skipif(not (PUBLISHED / "shift" / "scores.csv").exists(), reason="no published shift study")
def test_the_shift_page_shows_what_the_generator_prints_from_the_published_files():
    import subprocess

    printed = subprocess.run([sys.executable, str(ROOT / "docs" / "shift_findings.py"), "shift"],
                             capture_output=True, text=True, check=True).stdout
    assert printed.strip() in (ROOT / "docs" / "SHIFT.md").read_text()


@pytest.mark.skipif(not (PUBLISHED / "shift" / "scores.csv").exists(), reason="no published shift study")
def test_the_published_relative_error_recomputes_from_the_scores_by_hand():
    """One row's mCE-style error, per seed Σ_severity error / Σ_severity error(static-0.1) per
    corruption, averaged over corruptions and then seeds, computed with loops over the CSV."""
    scores = pd.read_csv(PUBLISHED / "shift" / "scores.csv")
    cells = scores[(scores.regime == "mini-b16") & (scores.stream.isin(["any", "iid"]))]
    per_seed = []
    for seed in sorted(cells.seed.unique()):
        ratios = []
        for corruption in sorted(cells.corruption.unique()):
            one = cells[(cells.seed == seed) & (cells.corruption == corruption)]
            row = one[(one.row == "test-batch") & (one.stream == "iid")]
            base = one[(one.row == "static-0.1") & (one.family == "source")]
            ratios.append(sum(1 - a for a in row.accuracy) / sum(1 - a for a in base.accuracy))
        per_seed.append(sum(ratios) / len(ratios))
    mean = sum(per_seed) / len(per_seed)
    low, high = stats.t.interval(0.95, len(per_seed) - 1, loc=mean, scale=stats.sem(per_seed))
    table = (PUBLISHED / "tables" / "fashion-mnist_shift_relative.csv")
    published = pd.read_csv(table)
    line = published[(published.regime == "mini-b16") & (published.row == "test-batch")].iloc[0]
    assert (line["mean"], line.ci_low, line.ci_high) == pytest.approx((mean, low, high))


def _designed_scores() -> pd.DataFrame:
    """Two batch sizes, 3 seeds; each row's accuracy a fixed offset from static-0.1's (0.5), so
    every question's per-seed differences are the offsets below, whatever the set."""
    offsets = {  # (regime, row, stream) -> per-seed offset from static-0.1
        ("mini-b100", "test-batch", "iid"): [0.101, 0.102, 0.103], ("mini-b16", "test-batch", "iid"): [0.101, 0.102, 0.103],
        ("mini-b100", "dmbn", "any"): [0.0501, 0.0502, 0.0503], ("mini-b16", "dmbn", "any"): [-0.01, 0.01, 0.0],
        ("mini-b100", "test-batch", "dirichlet"): [0.018, 0.020, 0.022],
        ("mini-b16", "test-batch", "dirichlet"): [-0.099, -0.100, -0.101],
    }
    rows = []
    for regime in ("mini-b100", "mini-b16"):
        for i, seed in enumerate(SEEDS):
            for corruption, severity in SETS:
                def add(family, row, stream, accuracy):
                    rows.append(dict(dataset="d", regime=regime, arch="mlp", seed=seed, corruption=corruption,
                                     severity=severity, stream=stream, family=family, row=row, accuracy=accuracy))
                add("source", "static-0.1", "any", 0.5)
                for (r, row, stream), offset in offsets.items():
                    if r == regime:
                        add("source" if stream == "any" else "test-time", row, stream, 0.5 + offset[i])
                # the oracle as test-batch@iid plus a difference whose interval holds zero
                add("test-time", "target-recalibrated", "any", 0.5 + offsets[(regime, "test-batch", "iid")][i]
                    + [0.01, -0.01, 0.0][i])
    return pd.DataFrame(rows)


def test_each_interval_is_marked_by_the_pages_one_rule():
    """repeated (same sign at the other batch size), survives adjustment (Bonferroni over the
    table's 16 intervals: 4 questions × 2 batch sizes × 2 set selections), isolated, or blank."""
    adjusted = 1 - 0.05 / 16

    def excludes_zero(offsets, confidence):
        values = np.array(offsets)
        low, high = stats.t.interval(confidence, 2, loc=values.mean(), scale=stats.sem(values))
        return low > 0 or high < 0

    # the design's premises, checked with scipy rather than assumed
    assert excludes_zero([0.018, 0.020, 0.022], 0.95) and not excludes_zero([0.018, 0.020, 0.022], adjusted)
    assert excludes_zero([0.0501, 0.0502, 0.0503], adjusted) and excludes_zero([-0.099, -0.100, -0.101], adjusted)
    table = shift_findings.questions_table(_designed_scores())

    def marks_of(regime, comparison):
        line = next(li for li in table.splitlines() if f"B = {regime} " in li and f" {comparison} " in li)
        cells = [c.strip() for c in line.strip("|").split("|")]
        return cells[6], cells[8]

    expected = {("100", "test-batch@iid − static-0.1"): "repeated", ("16", "test-batch@iid − static-0.1"): "repeated",
                ("100", "dmbn − static-0.1"): "survives adjustment", ("16", "dmbn − static-0.1"): "",
                ("100", "test-batch@dirichlet − static-0.1"): "isolated",
                ("16", "test-batch@dirichlet − static-0.1"): "survives adjustment",
                ("100", "target-recalibrated − test-batch@iid"): "", ("16", "target-recalibrated − test-batch@iid"): ""}
    for (regime, comparison), mark in expected.items():
        assert marks_of(regime, comparison) == (mark, mark), (regime, comparison, table)
    assert "Intervals in these tables: 16; 10 of 16 exclude zero, of which 4 repeated, 4 survive adjustment alone " \
           "and 2 isolated" in table


def test_splice_replaces_only_the_generated_block_with_the_command_it_names(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    import splice

    page = tmp_path / "page.md"
    page.write_text("# a page\n\nprose 0.5\n\n<!-- generated by: python -c \"print('| 1.25 |')\" -->\n\n"
                    "| 0.75 |\n\n<!-- end of generated -->\n\nafter\n")
    splice.splice(page)
    assert page.read_text() == ("# a page\n\nprose 0.5\n\n<!-- generated by: python -c \"print('| 1.25 |')\" -->\n\n"
                                "| 1.25 |\n\n<!-- end of generated -->\n\nafter\n")
    (tmp_path / "bare.md").write_text("no block\n")
    with pytest.raises(SystemExit, match="no '<!-- generated by"):
        splice.splice(tmp_path / "bare.md")


def test_the_trained_rows_questions_are_set_beside_the_clean_test_set_paired_by_seed(scores):
    rng = np.random.default_rng(1)
    clean = pd.DataFrame([dict(dataset="d", regime="mini-b16", arch="mlp", seed=seed, estimator=estimator,
                               accuracy=rng.uniform(0.6, 0.9)) for seed in SEEDS for estimator in ("static-0.1", "dmbn")])
    table = shift_findings.questions_table(scores, clean)
    beside = table.split("the shift's change of the difference:")[1]
    line = next(li for li in beside.splitlines() if "dmbn − static-0.1" in li)

    def clean_accuracy(seed, row):
        return clean[(clean.seed == seed) & (clean.estimator == row)].accuracy.item()

    shifted = [_accuracy(scores, s, "dmbn", "any") - _accuracy(scores, s, "static-0.1", "any") for s in SEEDS]
    on_clean = [clean_accuracy(s, "dmbn") - clean_accuracy(s, "static-0.1") for s in SEEDS]
    assert _formatted(on_clean) in line, line
    assert _formatted([a - b for a, b in zip(shifted, on_clean)]) in line, line
    # a question with a test-time row has no clean counterpart and stays out of the second table
    assert "test-batch@iid" not in beside.split("Intervals in these tables")[0]


def test_splice_fills_each_of_several_blocks_with_its_own_command(tmp_path):
    """SHIFT.md holds one block per scored study (the MLP's, the CNN's): each gets its own output."""
    sys.path.insert(0, str(ROOT / "docs"))
    import splice

    block = "<!-- generated by: python -c \"print('{}')\" -->\n\nold\n\n<!-- end of generated -->\n"
    page = tmp_path / "page.md"
    page.write_text("# p\n\n" + block.format("mlp 0.5") + "\nbetween\n\n" + block.format("cnn 0.25"))
    splice.splice(page)
    assert page.read_text() == ("# p\n\n" + block.format("mlp 0.5").replace("old", "mlp 0.5") + "\nbetween\n\n"
                                + block.format("cnn 0.25").replace("old", "cnn 0.25"))


@pytest.mark.skipif(not (PUBLISHED / "shift" / "scores.csv").exists(), reason="no published shift study")
def test_a_shift_study_published_in_parts_gives_the_wholes_tables(tmp_path, capsys):
    """The published shift study cut into one part per seed (with pandas, every file the generator
    reads) prints the whole study's tables, under a header naming the parts; a part that holds a
    seed another holds is refused."""
    files = ("shift/scores.csv", "shift/esm_mu_by_layer.csv", "summaries/training_last_epoch.csv", "metrics.csv")
    whole = {name: pd.read_csv(PUBLISHED / name) for name in files}
    seeds = sorted(whole["metrics.csv"].seed.unique())
    for seed in seeds:
        for name, frame in whole.items():
            (tmp_path / f"part{seed}" / name).parent.mkdir(parents=True, exist_ok=True)
            frame[frame.seed == seed].to_csv(tmp_path / f"part{seed}" / name, index=False)
    (tmp_path / "batch_sweep").symlink_to(PUBLISHED.parent / "batch_sweep")
    shift_findings.main(["shift", "--published", str(PUBLISHED.parent)])
    expected = capsys.readouterr().out
    parts = [f"part{seed}" for seed in seeds]
    shift_findings.main([*parts, "--published", str(tmp_path)])
    printed = capsys.readouterr().out
    header, rest = printed.split("\n", 1)
    assert header.startswith("### " + " + ".join(parts) + ": ")
    assert header.split(": ", 1)[1] == expected.split("\n", 1)[0].split(": ", 1)[1]
    assert rest == expected.split("\n", 1)[1]
    shutil.copytree(tmp_path / parts[0], tmp_path / "again")
    with pytest.raises(ReadbackError, match=f"is in more than one part \\(again, {parts[0]}\\)"):
        shift_findings.main([*parts, "again", "--published", str(tmp_path)])
