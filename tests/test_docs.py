"""The published reproduction agrees with the committed files it describes."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dmbn.readback import ReadbackError

from conftest import ROOT, generator_commands

RESULTS = ROOT / "docs" / "results"
PUBLISHED = RESULTS / "mlp"
ROUNDING = "mlp_threads"


def generate(*args: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "docs" / "reproduction_tables.py"), *args],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.skipif(not PUBLISHED.exists(), reason="no published mlp study")
def test_reproduction_page_shows_the_published_tables():
    """The page's tables block is what the command in its marker prints now, and that command
    reads the reproduction study with its rounding, held-out and separate-protocol studies."""
    page = (ROOT / "docs" / "REPRODUCTION.md").read_text()
    (command,) = generator_commands("REPRODUCTION.md")
    assert command[:6] == ["reproduction_tables.py", PUBLISHED.name, "--rounding", ROUNDING, "--heldout", "heldout_seeds"]
    assert command[6] == "--separate" and all(study.startswith("separate_") for study in command[7:])
    assert generate(*command[1:]).strip() in page


@pytest.mark.skipif(not PUBLISHED.exists(), reason="no published mlp study")
def test_thesis_numbers_are_set_against_our_prediction_interval():
    """Each row's interval and verdict, recomputed by hand from metrics.csv and the thesis's CSV."""
    metrics = pd.read_csv(PUBLISHED / "metrics.csv")
    paper = pd.read_csv(ROOT / "workflow" / "resources" / "paper_tables.csv")
    out = generate(PUBLISHED.name)
    verdicts = []
    for dataset, regime, variant in (("fashion-mnist", "full", "static-0.1"), ("fashion-mnist", "full", "static-0.7"),
                                     ("fashion-mnist", "mini", "dmbn"), ("mnist", "full", "static-0.1"),
                                     ("mnist", "full", "dmbn")):
        acc = metrics[(metrics.dataset == dataset) & (metrics.regime == regime) & (metrics.arch == "mlp")
                      & (metrics.estimator == variant)].accuracy.to_numpy()
        n, mean, sd = len(acc), acc.mean(), acc.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd * np.sqrt(1 + 1 / n)
        thesis = paper[(paper.dataset == {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}[dataset]) & (paper.regime == regime)
                       & (paper.variant == variant)].accuracy.item()
        verdict = "yes" if mean - half <= thesis <= mean + half else "**no**"
        row = next(line for line in out.splitlines()
                   if line.startswith(f"| {variant} ") and f"[{mean - half:.3f}, {mean + half:.3f}]" in line)
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == str(n) and cells[4] == f"{thesis:.3f}" and cells[5] == verdict
        verdicts.append(verdict)
    # full batch: the thesis's FashionMNIST 0.802 and 0.769 and MNIST 0.983 fall outside; its DMBN rows inside
    assert verdicts == ["**no**", "**no**", "yes", "**no**", "yes"]


def test_rounding_noise_section_reads_the_rounding_comparison(tmp_path, monkeypatch):
    """A study published with a rounding comparison gets the noise table, its numbers as given."""
    study, rounding = RESULTS / "quickstart", pd.DataFrame([{
        "dataset": "digits", "regime": "full", "arch": "mlp", "estimator": "static-0.1",
        "metric": "accuracy", "seeds": 3, "mean_difference": -0.0123, "ci_low": -0.03, "ci_high": 0.0054,
        "mean_abs_difference": 0.015, "max_abs_difference": 0.0311, "seed_std": 0.0072, "seed_n": 10}])
    folder = RESULTS / "_test_rounding" / "comparisons"
    folder.mkdir(parents=True)
    try:
        rounding.to_csv(folder / "rounding.csv", index=False)
        out = generate("quickstart", "--rounding", "_test_rounding")
    finally:
        (folder / "rounding.csv").unlink()
        folder.rmdir()
        folder.parent.rmdir()
    noise = out.split("### Noise: seed to seed, and rounding alone")[1]
    assert "0.0072 (10)" in noise and "-0.0123 [-0.0300, +0.0054] (3)" in noise and "0.0311" in noise
    assert study.exists()


def test_readme_links_the_reproduction():
    assert "docs/REPRODUCTION.md" in (ROOT / "README.md").read_text()


def _row(section: str, *cells: str) -> list[str]:
    """The cells of the one markdown row of ``section`` that starts with ``cells``."""
    for line in section.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if parts[:len(cells)] == list(cells):
            return parts
    raise AssertionError(f"no row {cells} in\n{section}")


def _section(out: str, title: str) -> str:
    return out.split(title)[1].split("\n### ")[0]


def test_page_statistics_from_summaries_and_cards_match_a_hand_count():
    """Static range, β* shares, DMBN-below-static counts and job time, recounted with plain
    Python from the committed quickstart files."""
    import csv
    out = generate("quickstart")
    folder = RESULTS / "quickstart"
    full = "Full batch (thesis: train = ESM set = test set)"

    acc = {}
    for r in csv.DictReader(open(folder / "metrics.csv")):
        if r["regime"] == "full" and r["arch"] == "mlp" and r["estimator"].startswith("static-"):
            acc.setdefault(r["seed"], {})[float(r["estimator"][7:])] = float(r["accuracy"])
    ranges = [max(v.values()) - min(v.values()) for v in acc.values()]
    falls = [max(0.0, *(v[a] - v[b] for a, b in zip(sorted(v), sorted(v)[1:]))) for v in acc.values()]
    row = _row(_section(out, "Static rows within one run"), "digits", full, "mlp")
    assert row[3:5] == [str(len(acc)), f"{sum(ranges) / len(ranges):.4f} ({max(ranges):.4f})"]
    assert row[5] == f"{max(falls):.4f}"

    betas = [float(v) for r in csv.DictReader(open(folder / "summaries" / "beta_star.csv"))
             if r["regime"] == "full-heldout" and r["arch"] == "mlp" for k, v in r.items() if k[0] == "e" and v]
    row = _row(_section(out, "What DMBN (and each variant) chose"), "digits", "Full batch, held out", "mlp", "dmbn")
    assert row[4] == str(len(betas))
    assert row[6:8] == [f"{sum(b <= 0.2 for b in betas) / len(betas):.2f}", f"{sum(b >= 0.8 for b in betas) / len(betas):.2f}"]

    esm = {}
    for r in csv.DictReader(open(folder / "summaries" / "esm_last_epoch.csv")):
        if r["regime"] == "mini" and r["arch"] == "mlp-bnbfn":
            for k, v in r.items():
                if k[0] == "l" and k[1:].isdigit() and v:
                    esm.setdefault((r["seed"], k), {})[r["estimator"]] = float(v)
    below = sum(c["dmbn"] < min(v for e, v in c.items() if e.startswith("static-")) for c in esm.values())
    below_precise = sum(c["dmbn"] < c["precise"] for c in esm.values())
    row = _row(_section(out, "DMBN's ESM_μ against"), "digits", "Mini-batch", "mlp-bnbfn")
    assert row[3:] == [str(len(esm)), str(below), str(below_precise)]

    seconds = [float(r["wall_seconds"]) for r in csv.DictReader(open(folder / "run_cards.csv"))]
    assert f"{len(seconds)} runs, {sum(seconds) / 3600:.2f} h of job time" in _section(out, "Compute: study `quickstart`")


def test_estimator_tables_pair_each_estimator_with_the_default_ema_by_seed():
    """The sweep page's cells, recomputed by hand (numpy + scipy) from a made-up metrics frame."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    rng = np.random.default_rng(3)
    rows = [{"dataset": "d", "regime": regime, "arch": "mlp", "seed": seed, "estimator": estimator,
             "accuracy": rng.uniform(0.5, 0.9), "sensitivity": 0.5, "specificity": 0.5, "f1": 0.5}
            for regime in ("full-heldout", "mini-b100", "mini-b8") for seed in (1, 2, 3)
            for estimator in ("static-0.1", "dmbn", "precise")]
    metrics = pd.DataFrame(rows)
    # a sure win: precise at B = 8 is static-0.1 + 0.1 (+ noise of 1e-3) in every seed
    b8 = metrics.regime == "mini-b8"
    base = metrics[b8 & (metrics.estimator == "static-0.1")].set_index("seed").accuracy
    for seed, noise in zip((1, 2, 3), (0.0, 1e-3, -1e-3)):
        metrics.loc[b8 & (metrics.estimator == "precise") & (metrics.seed == seed), "accuracy"] = base[seed] + 0.1 + noise

    paired = estimator_tables.paired_table(metrics)
    header = [c.strip() for c in paired.splitlines()[0].strip("|").split("|")]
    assert header == ["minus static-0.1", "B = 8", "B = 100", "full"]
    for variant, regime in (("dmbn", "mini-b100"), ("precise", "mini-b8"), ("precise", "full-heldout")):
        a = metrics[(metrics.regime == regime) & (metrics.estimator == variant)].sort_values("seed").accuracy.to_numpy()
        b = metrics[(metrics.regime == regime) & (metrics.estimator == "static-0.1")].sort_values("seed").accuracy.to_numpy()
        d = a - b
        half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
        mark = "▲" if d.mean() - half > 0 else "▼" if d.mean() + half < 0 else ""
        cell = f"{d.mean():+.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]{mark}"
        column = header.index({"mini-b100": "B = 100", "mini-b8": "B = 8", "full-heldout": "full"}[regime])
        assert _row(paired, variant)[column] == cell
    assert _row(paired, "precise")[1].endswith("▲")
    # of the middle batch sizes (32, 100, 1000) only B = 100 is in this study: the line names it alone
    assert estimator_tables.half_widths(metrics)[0].startswith(
        "half-width of the intervals against static-0.1, B = 100, every row but cma: ")

    accuracy = estimator_tables.accuracy_table(metrics)
    values = metrics[(metrics.regime == "full-heldout") & (metrics.estimator == "dmbn")].accuracy
    assert _row(accuracy, "dmbn")[3] == f"{values.mean():.3f} ± {values.std(ddof=1):.3f} (3)"
    assert [r.split("|")[1].strip() for r in accuracy.splitlines()[2:]] == ["static-0.1", "dmbn", "precise"]


def test_estimator_tables_print_one_seed_as_its_value_with_no_spread_and_no_interval():
    """A study published one seed at a time (small_batch_s1): each cell is that seed's number;
    no "± nan", no "[nan, nan]", no interval counted, and the difference keeps its sign."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    accuracy = {"static-0.1": 0.634, "precise": 0.860}
    metrics = pd.DataFrame([{"dataset": "d", "regime": "mini-b8", "arch": "mlp", "seed": 1, "estimator": estimator,
                             "accuracy": value, "sensitivity": 0.5, "specificity": 0.5, "f1": 0.5}
                            for estimator, value in accuracy.items()])
    assert _row(estimator_tables.accuracy_table(metrics), "precise")[1] == "0.860 (1)"
    assert _row(estimator_tables.paired_table(metrics), "precise")[1] == "+0.2260"  # 0.860 − 0.634 by hand
    assert estimator_tables.multiplicity(metrics) == ["intervals on this page: none (one seed per cell)"]
    assert estimator_tables.marks(metrics) == [] and estimator_tables.half_widths(metrics) == []
    training = pd.DataFrame({"dataset": "d", "arch": "mlp", "epoch": 40, "train_loss": 0.4, "regime": "mini-b8",
                             "seed": [1], "train_accuracy": [0.856]})
    assert _row(estimator_tables.training_table(training), "mlp, train accuracy")[1] == "0.856 (1)"
    assert _row(estimator_tables.training_table(training), "mlp, train loss")[1] == "0.400 (1)"


def test_estimator_tables_show_each_batch_sizes_last_epoch_train_accuracy():
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    training = pd.DataFrame({"dataset": "d", "arch": "mlp", "epoch": 20,
                             "train_loss": [0.3, 0.2, 0.1, 1.0, 0.9, 0.8],
                             "regime": ["mini-b8"] * 3 + ["full-heldout"] * 3, "seed": [1, 2, 3] * 2,
                             "train_accuracy": [0.91, 0.95, 0.99, 0.5, 0.6, 0.85]})
    # the separate protocol: two members per seed share one trajectory, so each seed counts once
    training = pd.concat([training.assign(member="static-0.1"), training.assign(member="static-0.9")])
    table = estimator_tables.training_table(training)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header[1:] == ["B = 8", "full"]
    # B = 8: mean 0.95, std 0.04; full: mean 0.65, sample std sqrt(((.15)^2 + (.05)^2 + (.2)^2) / 2) = 0.1803
    assert _row(table, "mlp, train accuracy")[1:] == ["0.950 ± 0.040, 0.910–0.990 (3)",
                                                      "0.650 ± 0.180, 0.500–0.850 (3)"]
    # the loss: means 0.2 and 0.9, sample std 0.1 each
    assert _row(table, "mlp, train loss")[1:] == ["0.200 ± 0.100, 0.100–0.300 (3)", "0.900 ± 0.100, 0.800–1.000 (3)"]
    assert "ESM-set accuracy" not in table  # no curves published (batch_sweep): no criterion row

    # with curves: the last epoch's ESM-set accuracy with recalibrated statistics, the earlier epoch ignored
    curves = pd.DataFrame({"dataset": "d", "arch": "mlp", "regime": "mini-b8", "member": "bank",
                           "seed": [1, 1, 2, 2, 3, 3], "epoch": [1, 2] * 3,
                           "esm_accuracy_recalibrated": [0.1, 0.80, 0.1, 0.84, 0.1, 0.88]})
    row = _row(estimator_tables.training_table(training, curves), "mlp, ESM-set accuracy, recalibrated")
    assert row[1:] == ["0.840 ± 0.040, 0.800–0.880 (3)", "–"]  # full batch has no curves here


def test_estimator_tables_answer_the_reviewers_questions_by_seed():
    """Only the question pairs the study has, in the page's order, each a − b by seed."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    accuracy = {"dmbn": [0.80, 0.70, 0.60], "dmbn-causal": [0.815, 0.72, 0.625],
                "test-batch": [0.5, 0.5, 0.5], "precise": [0.4, 0.45, 0.3]}
    metrics = pd.DataFrame([{"dataset": "d", "regime": "mini-b16", "arch": "mlp", "seed": seed,
                             "estimator": estimator, "accuracy": values[seed - 1], "sensitivity": 0.5,
                             "specificity": 0.5, "f1": 0.5}
                            for estimator, values in accuracy.items() for seed in (1, 2, 3)])
    table = estimator_tables.questions_table(metrics)
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:]] == [
        "dmbn-causal − dmbn", "dmbn − precise", "test-batch − precise"]
    # dmbn-causal − dmbn: 0.015, 0.02, 0.025 -> mean 0.02, sd 0.005, t(0.975, 2) = 4.3027
    half = stats.t.ppf(0.975, 2) * 0.005 / np.sqrt(3)
    assert _row(table, "dmbn-causal − dmbn")[1] == f"+0.0200 [{0.02 - half:+.4f}, {0.02 + half:+.4f}]▲"
    assert estimator_tables.questions_table(metrics[metrics.estimator == "dmbn"]) is None


def test_estimator_tables_show_beta_star_and_esm_at_each_batch_size():
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    keys = {"dataset": "d", "arch": "mlp", "member": "bank"}
    beta_star = pd.DataFrame([
        {**keys, "regime": "mini-b8", "seed": 1, "estimator": "dmbn", "layer": 1, "e1": 0.9, "e2": 0.1},
        {**keys, "regime": "mini-b8", "seed": 1, "estimator": "dmbn", "layer": 2, "e1": 0.9, "e2": 0.3},
        {**keys, "regime": "mini-b8", "seed": 2, "estimator": "dmbn", "layer": 1, "e1": 0.2, "e2": None},
        {**keys, "regime": "mini-b8", "seed": 2, "estimator": "dmbn", "layer": 2, "e1": 0.5, "e2": None},
        {**keys, "regime": "full-heldout", "seed": 1, "estimator": "dmbn-sigma", "layer": 1, "e1": 0.1, "e2": 0.7},
    ])
    table = estimator_tables.beta_star_table(beta_star)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header[1:] == ["B = 8", "full"]
    # B = 8, last epochs (seed 2 stopped after epoch 1): 0.1, 0.3, 0.2, 0.5 -> median 0.25
    assert _row(table, "dmbn")[1:] == ["0.25 (0.10–0.50; 4)", "–"]
    assert _row(table, "dmbn-sigma")[1:] == ["–", "0.70 (0.70–0.70; 1)"]

    esm = pd.DataFrame([{**keys, "regime": "mini-b8", "seed": seed, "epoch": 2, "estimator": "static-0.1",
                         "l1": l1, "l2": l2} for seed, l1, l2 in ((1, 0.2, 0.4), (2, 0.5, 0.7))])
    # per seed the mean of the layers: 0.3, 0.6 -> 0.45 ± 0.3 / sqrt 2
    assert _row(estimator_tables.esm_table(esm), "static-0.1")[1] == "0.450 ± 0.212 (2)"


def test_estimator_tables_keep_each_architecture_apart(tmp_path, monkeypatch, capsys):
    """Two BN architectures in one study get their own tables (none of their runs pooled); the
    BN-BFN twin of one is its `bn-bfn` row, paired with its static-0.1 by seed."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    rows = [{"dataset": "d", "regime": "mini-b8", "arch": arch, "seed": seed, "estimator": estimator,
             "accuracy": accuracy + seed / 100, "sensitivity": 0.5, "specificity": 0.5, "f1": 0.5}
            for arch, accuracy in (("mlp", 0.9), ("resnet50", 0.5), ("mlp-bnbfn", 0.7)) for seed in (1, 2)
            for estimator in ("static-0.1", "dmbn")]
    (tmp_path / "results" / "study").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "results" / "study" / "metrics.csv", index=False)
    monkeypatch.setattr(estimator_tables, "HERE", tmp_path)
    estimator_tables.main(["study"])
    out = capsys.readouterr().out
    mlp, resnet = out.split("### d, resnet50: test accuracy")
    assert "### d, mlp: test accuracy" in mlp
    # mlp: 0.91, 0.92 (std of two values d apart: d / sqrt 2); resnet50: 0.51, 0.52
    assert _row(mlp, "dmbn")[1] == f"0.915 ± {0.01 / np.sqrt(2):.3f} (2)"
    assert _row(resnet, "dmbn")[1] == f"0.515 ± {0.01 / np.sqrt(2):.3f} (2)"
    assert _row(mlp, "bn-bfn")[1] == f"0.715 ± {0.01 / np.sqrt(2):.3f} (2)"
    assert "bn-bfn" not in resnet
    # the twin minus the BN net, same seed: exactly -0.2 both times, so the interval is a point
    paired_mlp = mlp.split("minus the default EMA")[1]
    assert _row(paired_mlp, "bn-bfn")[1] == "-0.2000 [-0.2000, -0.2000]▼"


def test_estimator_tables_read_a_study_published_in_parts_as_one(tmp_path, monkeypatch, capsys):
    """Two published parts (seed 1 in one study, seed 2 in another, as a study too long for one
    session is published) give the tables of both seeds together, by hand; a part that holds a
    run another already holds is refused, naming the file and the run."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    def part(name: str, seed: int) -> None:
        rows = [{"dataset": "d", "regime": "mini-b8", "arch": "mlp", "seed": seed, "estimator": estimator,
                 "accuracy": 0.9 + seed / 100 + shift, "sensitivity": 0.5, "specificity": 0.5, "f1": 0.5}
                for estimator, shift in (("static-0.1", 0.0), ("dmbn", 0.01 * seed))]
        (tmp_path / "results" / name).mkdir(parents=True)
        pd.DataFrame(rows).to_csv(tmp_path / "results" / name / "metrics.csv", index=False)

    part("s1", 1), part("s2", 2), part("s2_again", 2)
    monkeypatch.setattr(estimator_tables, "HERE", tmp_path)
    estimator_tables.main(["s1", "s2"])
    out = capsys.readouterr().out
    # dmbn: 0.92 (seed 1), 0.94 (seed 2); static-0.1: 0.91, 0.92; dmbn − static-0.1: 0.01, 0.02
    assert _row(out, "dmbn")[1] == f"0.930 ± {0.02 / np.sqrt(2):.3f} (2)"
    half = stats.t.ppf(0.975, 1) * stats.sem([0.01, 0.02])
    assert _row(out.split("minus the default EMA")[1], "dmbn")[1].startswith(f"+{0.015:.4f} [{0.015 - half:+.4f}, ")
    with pytest.raises(ReadbackError, match=r"metrics.csv: the run d mini-b8 mlp seed 2 is in more than one part "
                                            r"\(s2, s2_again\)"):
        estimator_tables.main(["s1", "s2", "s2_again"])


@pytest.mark.skipif(not (RESULTS / "batch_sweep").exists(), reason="batch_sweep not published yet")
def test_estimators_page_shows_the_published_sweep_and_small_batch_tables():
    """Each generated block of the page is what the command in its marker prints now: the sweep's
    tables, then the small-batch study's parts read as one."""
    commands = generator_commands("ESTIMATORS.md")
    assert commands[0] == ["estimator_tables.py", "batch_sweep"]
    assert [study.rsplit("_s", 1)[0] for study in commands[1][1:]] == ["small_batch"] * (len(commands[1]) - 1)
    page = (ROOT / "docs" / "ESTIMATORS.md").read_text()
    for script, *args in commands:
        out = subprocess.run([sys.executable, str(ROOT / "docs" / script), *args],
                             capture_output=True, text=True, check=True).stdout
        assert out.strip() in page, args


HELDOUT = RESULTS / "heldout_seeds"


@pytest.mark.skipif(not (PUBLISHED.exists() and HELDOUT.exists()), reason="no published heldout_seeds study")
def test_heldout_section_recomputes_from_the_heldout_study():
    """The held-out study's pairs over its seeds (scipy's t interval by hand), its agreement with
    the main study on the seeds both ran (a loop over seeds), and the ratio to the thesis's regime."""
    held, main = pd.read_csv(HELDOUT / "metrics.csv"), pd.read_csv(PUBLISHED / "metrics.csv")
    out = generate(PUBLISHED.name, "--heldout", HELDOUT.name)
    section = out.split("### Held-out full batch at")[1].split("###")[0]

    def accuracy(frame, regime, estimator):
        rows = frame[(frame.dataset == "fashion-mnist") & (frame.regime == regime) & (frame.arch == "mlp")
                     & (frame.estimator == estimator)]
        return rows.set_index("seed").accuracy.sort_index()

    d = (accuracy(held, "full-heldout", "dmbn") - accuracy(held, "full-heldout", "static-0.1")).to_numpy()
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    row = next(line for line in section.splitlines() if "dmbn - static-0.1" in line and "| accuracy |" in line)
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    assert cells[4:] == [str(len(d)), f"{d.mean():+.4f}", f"[{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]"]
    shared = sorted(set(held.seed) & set(main[main.regime == "full-heldout"].seed))
    pairs = equal = 0
    for seed in shared:
        for (arch, estimator), rows in held[held.seed == seed].groupby(["arch", "estimator"]):
            other = main[(main.dataset == "fashion-mnist") & (main.regime == "full-heldout") & (main.seed == seed)
                         & (main.arch == arch) & (main.estimator == estimator)]
            pairs += 1
            equal += int(other.accuracy.item() == rows.accuracy.item())
    assert f"{equal} of {pairs} accuracies equal" in out
    ours = d.mean() / (accuracy(main, "full", "dmbn") - accuracy(main, "full", "static-0.1")).mean()
    assert f"held out ({len(d)} seeds) ÷ thesis's full batch, FashionMNIST, dmbn − static-0.1:" in out
    assert f"= {ours:.2f}" in out.split(f"held out ({len(d)} seeds) ÷ thesis's full batch, FashionMNIST, dmbn − static-0.1:")[1].splitlines()[0]


def test_assembled_rows_take_every_beta_from_a_different_seed():
    """Two βs, three seeds: every assembled row's fall is a[i, β1] − a[j, β2] for seeds i ≠ j, and
    enough draws see all six."""
    sys.path.insert(0, str(ROOT / "docs"))
    from reproduction_tables import _assembled_falls

    a = np.array([[0.90, 0.10], [0.80, 0.20], [0.70, 0.40]])
    falls = _assembled_falls(a, draws=600)
    expected = {round(a[i, 0] - a[j, 1], 10) for i in range(3) for j in range(3) if i != j}
    assert {round(f, 10) for f in falls} == expected


@pytest.mark.skipif(not PUBLISHED.exists(), reason="no published mlp study")
def test_sign_test_of_the_thesis_static_rows_against_our_seed_medians():
    """Counted with a loop over the thesis's CSV and metrics.csv; the p value from scipy."""
    metrics = pd.read_csv(PUBLISHED / "metrics.csv")
    paper = pd.read_csv(ROOT / "workflow" / "resources" / "paper_tables.csv")
    names = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
    below = total = 0
    for _, row in paper[paper.variant.str.fullmatch(r"static-0\.\d") & paper.dataset.isin(names.values())].iterrows():
        dataset = next(k for k, v in names.items() if v == row.dataset)
        ours = metrics[(metrics.dataset == dataset) & (metrics.regime == row.regime) & (metrics.arch == "mlp")
                       & (metrics.estimator == row.variant)].accuracy
        if len(ours):
            total += 1
            below += int(row.accuracy < ours.median())
    p = stats.binomtest(below, total, 0.5, alternative="greater").pvalue
    assert f"below our seed median, every data set and regime: {below} of {total}; " in generate(PUBLISHED.name)
    assert f"p = {p:.1e}" in generate(PUBLISHED.name)


def test_the_batch_mean_spread_is_split_into_the_first_layer_and_the_rest_per_batch_size():
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    spread = pd.DataFrame({"dataset": "d", "arch": "mlp", "member": "bank",
                           "regime": ["mini-b16"] * 4 + ["mini-b100"] * 2, "seed": [1, 1, 1, 2, 1, 1],
                           "layer": [1, 2, 3, 1, 1, 2], "ratio": [0.95, 0.01, 0.03, 0.99, 1.02, 0.02]})
    lines = estimator_tables.batch_mean_spread(spread)
    # B = 16 first (batch sizes ascending); medians by hand: layer 1 of (0.95, 0.99) = 0.97,
    # layers after it (0.01, 0.03) = 0.02
    assert lines == ["B = 16: variance of PreciseBN's batch means ÷ (pooled variance / B): "
                     "layer 1 0.970 (0.950–0.990; 2), layers 2 and after 0.020 (0.010–0.030; 2)",
                     "B = 100: variance of PreciseBN's batch means ÷ (pooled variance / B): "
                     "layer 1 1.020 (1.020–1.020; 1), layers 2 and after 0.020 (0.020–0.020; 1)"]
    assert estimator_tables.batch_mean_spread(None) == [] and estimator_tables.batch_mean_spread(spread[:0]) == []


def test_the_separating_rows_are_counted_seed_by_seed_per_batch_size():
    """In how many seeds each separating row beats its partner (issue #27), counted by hand; a
    pair the study lacks prints nothing, a seed without both rows is not counted."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    accuracy = {("mini-b16", "static-0.1"): [0.80, 0.70, 0.79], ("mini-b16", "static-biased-0.1"): [0.85, 0.87, 0.78],
                ("mini-b100", "static-0.1"): [0.86, 0.85, None], ("mini-b100", "static-biased-0.1"): [0.87, 0.84, 0.9]}
    metrics = pd.DataFrame([{"dataset": "d", "regime": regime, "arch": "mlp", "seed": seed,
                             "estimator": estimator, "accuracy": values[seed - 1]}
                            for (regime, estimator), values in accuracy.items() for seed in (1, 2, 3)
                            if values[seed - 1] is not None])
    # B = 16: 0.85 > 0.80, 0.87 > 0.70, 0.78 < 0.79 -> 2 of 3; B = 100: seed 3 lacks static-0.1 -> 1 of 2;
    # every network: 3 of 5, P(X ≥ 3 | 5, 1/2) = (10 + 5 + 1) / 32 = 0.5
    assert estimator_tables.seeds_above(metrics) == [
        "seeds in which static-biased-0.1 is above static-0.1: B = 16: 2 of 3, B = 100: 1 of 2; "
        "every network (seed × batch size): 3 of 5, one-sided sign test p = 0.5"]


def test_the_overlap_lines_name_only_studies_that_ran_within_the_pages_studies_span(monkeypatch):
    """A study published later, whose runs all came after the page's studies, adds no line (it
    made REPRODUCTION.md stale once); one that ran inside their span is listed, 0 overlaps too."""
    sys.path.insert(0, str(ROOT / "docs"))
    import reproduction_tables

    def cards(*spans):
        return pd.DataFrame({"started": pd.to_datetime([a for a, _ in spans]),
                             "finished": pd.to_datetime([b for _, b in spans])})

    published = {"a": cards(("2026-01-01 10:00", "2026-01-01 11:00"), ("2026-01-01 12:00", "2026-01-01 13:00")),
                 "b": cards(("2026-01-01 12:30", "2026-01-01 14:00")),
                 "inside": cards(("2026-01-01 11:10", "2026-01-01 11:50")),  # in a gap: 0 overlaps, listed
                 "later": cards(("2026-01-02 09:00", "2026-01-02 10:00"))}
    monkeypatch.setattr(reproduction_tables, "_published_cards", lambda: published)
    lines = reproduction_tables.shared_machine(["a", "b"])
    assert "`a` runs that overlapped a run of `inside`: 0 of 2" in lines
    assert "`b` runs that overlapped a run of `inside`: 0 of 1" in lines
    assert not any("later" in line for line in lines)


def test_the_separate_protocol_lines_recompute_by_hand():
    """Two replicates, three βs, one network per β beside the bank; every number by hand."""
    sys.path.insert(0, str(ROOT / "docs"))
    from reproduction_tables import separate_protocol

    separate = {1: [0.90, 0.70, 0.85], 2: [0.80, 0.82, 0.60]}  # falls: 1 → 0.20, 2 → 0.22
    bank = {1: [0.90, 0.89, 0.88], 2: [0.80, 0.79, 0.79]}      # falls: 1 → 0.01, 2 → 0.01
    side = pd.DataFrame([{"dataset": "fashion-mnist", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                          "separate": separate[seed][i], "bank": bank[seed][i]}
                         for seed in (1, 2) for i, beta in enumerate((0.1, 0.2, 0.3))])
    paper = pd.DataFrame({"dataset": "FashionMNIST", "regime": "full", "variant": ["static-0.1", "static-0.2", "static-0.3"],
                          "accuracy": [0.86, 0.70, 0.80]})  # thesis's largest fall 0.16
    lines = separate_protocol(side.assign(study="sep"), paper)
    half = stats.t.ppf(0.975, 1) * stats.sem([0.19, 0.21])  # separate − bank falls: 0.19, 0.21
    assert ("`sep`, FashionMNIST, full batch, 2 replicates: largest fall between neighbouring β per replicate, "
            "one network per β median 0.2100 (max 0.2200), the bank's one network median 0.0100 (max 0.0100); "
            f"separate − bank +0.2000 [{0.2 - half:+.4f}, {0.2 + half:+.4f}]") == lines[0]
    stds = [np.std([0.90, 0.80], ddof=1), np.std([0.70, 0.82], ddof=1), np.std([0.85, 0.60], ddof=1)]
    bank_stds = [np.std([0.90, 0.80], ddof=1), np.std([0.89, 0.79], ddof=1), np.std([0.88, 0.79], ddof=1)]
    assert lines[1].endswith(f"one network per β {np.median(stds):.4f}, the bank {np.median(bank_stds):.4f}")
    differences = [np.mean([0.0, -0.19, -0.03]), np.mean([0.0, 0.03, -0.19])]
    assert f"paired by replicate: {np.mean(differences):+.4f} [" in lines[2]
    assert lines[3].endswith("the thesis's 0.160 between neighbouring β: one network per β 2 of 2, the bank 0 of 2")
    # falls beyond the bank's largest (0.01): seed 1 0.90 → 0.70, seed 2 0.82 → 0.60; thesis 0.86 → 0.70
    assert lines[4].endswith("(0.0100), rows rounded to the thesis's 3 decimals: one network per β median 1 of 2 "
                             "steps per replicate (range 1–1), the thesis's rows 1 of 2; replicates with as many as the thesis: 2 of 2")
    # medians: separate 0.85, 0.76, 0.725; bank 0.85, 0.84, 0.835; thesis 0.86, 0.70, 0.80
    assert lines[5].endswith("below the median of one network per β: 1 of 3; below the bank's median: 2 of 3")
    # thesis − the bank's means: 0.86 − 0.85, 0.70 − 0.84, 0.80 − 0.835, averaged
    shortfall = np.mean([0.86 - 0.85, 0.70 - 0.84, 0.80 - 0.835])
    low, high = np.mean(differences) + np.array([-1, 1]) * stats.t.ppf(0.975, 1) * stats.sem(differences)
    assert lines[6].startswith(f"`sep`, FashionMNIST, full batch: thesis's static rows − the bank's mean, mean over β: {shortfall:+.4f}, ")
    assert low < shortfall < high  # by hand: -0.055 inside [-0.190, +0.064]
    assert lines[6].endswith(f"inside the interval of one network per β − the bank ([{low:+.4f}, {high:+.4f}])")


def test_a_thesis_far_below_what_the_protocol_costs_is_placed_below_its_interval():
    """One network per β within ±0.001 of the bank, the thesis 0.05 below the bank's means: the
    protocol's cost cannot explain it."""
    sys.path.insert(0, str(ROOT / "docs"))
    from reproduction_tables import separate_protocol

    bank = {1: [0.85, 0.86, 0.87], 2: [0.84, 0.85, 0.86], 3: [0.86, 0.87, 0.88]}
    offset = {1: 0.001, 2: -0.001, 3: 0.0}
    side = pd.DataFrame([{"dataset": "mnist", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                          "separate": bank[seed][i] + offset[seed], "bank": bank[seed][i]}
                         for seed in (1, 2, 3) for i, beta in enumerate((0.1, 0.2, 0.3))])
    paper = pd.DataFrame({"dataset": "MNIST", "regime": "full", "variant": ["static-0.1", "static-0.2", "static-0.3"],
                          "accuracy": [0.80, 0.81, 0.82]})  # the bank's means 0.85, 0.86, 0.87: 0.05 below each
    line = separate_protocol(side.assign(study="sep"), paper)[-1]
    half = stats.t.ppf(0.975, 2) * stats.sem([0.001, -0.001, 0.0])
    assert line == ("`sep`, MNIST, full batch: thesis's static rows − the bank's mean, mean over β: -0.0500, below the "
                    f"interval of one network per β − the bank ([{-half:+.4f}, {half:+.4f}])")


def test_a_fall_the_thesis_could_not_print_is_not_counted():
    """Falls are counted on rows rounded to the thesis's 3 decimals: 0.8504 → 0.8501 falls by
    0.0003, more than the bank's 0.0001, but both print as 0.850."""
    sys.path.insert(0, str(ROOT / "docs"))
    from reproduction_tables import separate_protocol

    separate = {1: [0.8504, 0.8501, 0.8600], 2: [0.8504, 0.8400, 0.8600]}  # seed 2: a fall of 0.0104, printed 0.010
    bank = {1: [0.8500, 0.8499, 0.8600], 2: [0.8500, 0.8500, 0.8600]}      # largest fall 0.0001
    side = pd.DataFrame([{"dataset": "fashion-mnist", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                          "separate": separate[seed][i], "bank": bank[seed][i]}
                         for seed in (1, 2) for i, beta in enumerate((0.1, 0.2, 0.3))])
    paper = pd.DataFrame({"dataset": "FashionMNIST", "regime": "full", "variant": ["static-0.1", "static-0.2", "static-0.3"],
                          "accuracy": [0.86, 0.85, 0.84]})  # two falls
    line = [entry for entry in separate_protocol(side.assign(study="sep"), paper) if "rounded" in entry][0]
    assert line.endswith("one network per β median 0.5 of 2 steps per replicate (range 0–1), the thesis's rows 2 of 2; "
                         "replicates with as many as the thesis: 0 of 2")


def test_the_separate_protocol_table_sets_each_beta_beside_the_bank_and_the_thesis():
    """One row per β: the thesis's run, mean ± std (n) of each protocol, and the paired interval,
    recomputed with numpy and scipy."""
    sys.path.insert(0, str(ROOT / "docs"))
    from reproduction_tables import separate_beside_bank

    separate = {1: [0.90, 0.70], 2: [0.80, 0.82], 3: [0.85, 0.75]}
    bank = {1: [0.88, 0.89], 2: [0.81, 0.80], 3: [0.84, 0.86]}
    side = pd.DataFrame([{"dataset": "fashion-mnist", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                          "separate": separate[seed][i], "bank": bank[seed][i]}
                         for seed in (1, 2, 3) for i, beta in enumerate((0.1, 0.2))])
    paper = pd.DataFrame({"dataset": "FashionMNIST", "regime": "full", "variant": ["static-0.1"], "accuracy": [0.802]})
    table = separate_beside_bank(side, paper)
    assert table.startswith("**FashionMNIST — ")
    a, b = np.array([0.70, 0.82, 0.75]), np.array([0.89, 0.80, 0.86])
    d = a - b
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert _row(table, "0.2") == ["0.2", "–", f"{a.mean():.3f} ± {a.std(ddof=1):.3f} (3)",
                                  f"{b.mean():.3f} ± {b.std(ddof=1):.3f} (3)",
                                  f"{d.mean():+.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}]"]
    assert _row(table, "0.1")[1] == "0.802"


def test_the_separate_protocol_section_reads_the_published_comparison():
    """A study published with comparisons/separate.csv: read through its schema, printed in its
    own section and among the numbers the findings may quote."""
    side = pd.DataFrame([{"dataset": "digits", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                          "separate": 0.9 - 0.1 * seed * beta, "bank": 0.9 - 0.01 * beta}
                         for seed in (1, 2) for beta in (0.1, 0.2)])
    folder = RESULTS / "_test_separate" / "comparisons"
    folder.mkdir(parents=True)
    try:
        side.to_csv(folder / "separate.csv", index=False)
        out = generate("quickstart", "--separate", "_test_separate")
        side.assign(separate=1.5).to_csv(folder / "separate.csv", index=False)  # an accuracy above 1
        refused = subprocess.run([sys.executable, str(ROOT / "docs" / "reproduction_tables.py"), "quickstart",
                                  "--separate", "_test_separate"], capture_output=True, text=True)
    finally:
        (folder / "separate.csv").unlink()
        folder.rmdir()
        folder.parent.rmdir()
    section = out.split("### The thesis's protocol, run: one network per β, study `_test_separate`")[1]
    section, quoted = section.split("### Numbers quoted in the findings")
    # largest falls by hand: seed 1 → 0.01, seed 2 → 0.02 (one network per β); the bank 0.001 each
    line = ("`_test_separate`, digits, full batch, 2 replicates: largest fall between neighbouring β per "
            "replicate, one network per β median 0.0150 (max 0.0200), the bank's one network median 0.0010 (max 0.0010)")
    assert line in section and line not in quoted  # printed once, in its own section
    assert _row(section, "0.1")[1] == "–"  # the thesis has no digits rows
    assert refused.returncode != 0 and "separate.csv breaks its schema" in refused.stderr


def test_a_protocol_run_published_in_parts_reads_as_one_and_a_replicate_held_twice_is_refused():
    """`--separate` with two studies (a seed each, as a protocol run too long for one session is
    published): the section is the one of both seeds together, labelled with both studies; a
    third part holding seed 2 again is refused before anything is printed, naming the seed."""
    def seed_rows(seed: int) -> pd.DataFrame:
        return pd.DataFrame([{"dataset": "digits", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                              "separate": 0.9 - 0.1 * seed * beta, "bank": 0.9 - 0.01 * beta} for beta in (0.1, 0.2)])

    parts = {"_test_sep_s1": seed_rows(1), "_test_sep_s2": seed_rows(2), "_test_sep_again": seed_rows(2)}
    for study, rows in parts.items():
        (RESULTS / study / "comparisons").mkdir(parents=True)
        rows.to_csv(RESULTS / study / "comparisons" / "separate.csv", index=False)
    try:
        out = generate("quickstart", "--separate", "_test_sep_s1", "_test_sep_s2")
        refused = subprocess.run([sys.executable, str(ROOT / "docs" / "reproduction_tables.py"), "quickstart",
                                  "--separate", "_test_sep_s1", "_test_sep_s2", "_test_sep_again"],
                                 capture_output=True, text=True)
    finally:
        for study in parts:
            shutil.rmtree(RESULTS / study)
    # the same numbers by hand as the one-study test: falls 0.01 and 0.02, the bank's 0.001 each
    assert "### The thesis's protocol, run: one network per β, studies `_test_sep_s1`–`_s2`" in out
    assert ("`_test_sep_s1`–`_s2`, digits, full batch, 2 replicates: largest fall between neighbouring β "
            "per replicate, one network per β median 0.0150 (max 0.0200), the bank's one network median 0.0010") in out
    assert refused.returncode != 0 and refused.stdout == ""
    assert "digits full mlp seed 2 is in more than one part (_test_sep_again, _test_sep_s2)" in refused.stderr


def test_a_replicate_whose_rows_never_fall_has_a_largest_fall_of_zero():
    """By hand: rows 0.5, 0.4, 0.45 fall by 0.1 at most; rows that only rise or tie fall by 0, not
    by minus their smallest rise (which printed as "-0.0000" for a tie)."""
    sys.path.insert(0, str(ROOT / "docs"))
    import reproduction_tables

    table = pd.DataFrame([[0.5, 0.4, 0.45], [0.1, 0.2, 0.3], [0.9990, 0.9990, 0.9990]], columns=[0.1, 0.2, 0.3])
    falls = reproduction_tables._largest_falls(table)
    assert list(falls) == pytest.approx([0.1, 0.0, 0.0])
    assert f"{falls.iloc[2]:.4f}" == "0.0000"


def test_consecutive_parts_of_a_study_are_named_as_one_range():
    sys.path.insert(0, str(ROOT / "docs"))
    import reproduction_tables

    named = reproduction_tables.named_parts
    assert named(["separate_full_s1", "separate_full_s2", "separate_full_s3"]) == "`separate_full_s1`–`_s3`"
    # a gap, another study and a name without a part each start a new range
    assert named(["a_s1", "a_s3", "a_s4", "b_s5", "mlp"]) == "`a_s1`, `a_s3`–`_s4`, `b_s5`, `mlp`"


def test_a_study_whose_every_run_shared_the_machine_says_so_instead_of_an_empty_median(monkeypatch):
    """Two runs of `ours`, each overlapping a run of `other` (times by hand): no unshared run, so no
    median to give; one run alone gives its own time."""
    sys.path.insert(0, str(ROOT / "docs"))
    import estimator_tables

    def cards(*spans):
        return pd.DataFrame([{"regime": "mini-b16", "seed": seed, "wall_seconds": (end - start) * 60.0,
                              "started": pd.Timestamp(2026, 12, 7, 10, start), "finished": pd.Timestamp(2026, 12, 7, 10, end)}
                             for seed, (start, end) in enumerate(spans, 1)])

    monkeypatch.setattr(estimator_tables, "_published_cards",
                        lambda: {"ours": cards((0, 20), (5, 25)), "other": cards((10, 30))})
    lines = estimator_tables.cost("ours")
    assert lines[-1] == "median run that shared the machine with no other study: none, every run shared it"
    monkeypatch.setattr(estimator_tables, "_published_cards",
                        lambda: {"ours": cards((0, 20), (35, 45)), "other": cards((10, 30))})
    assert estimator_tables.cost("ours")[-1].startswith("median run that shared the machine with no other study: "
                                                        "B = 16: 600 s")


def test_the_reproduction_pages_interval_count_takes_in_the_held_out_and_protocol_tables():
    """The multiplicity line counts every interval the page shows, and a held-out mark at more
    seeds is repeated by the main study's other data set (the rule's "other data set")."""
    sys.path.insert(0, str(ROOT / "docs"))
    from reproduction_tables import marks, page_intervals, separate_intervals

    def runs(dataset: str, gain: dict[int, float], seeds=(1, 2, 3)) -> list[dict]:
        rows = []
        for seed in seeds:
            for estimator in ("static-0.1", "dmbn", "static-0.9", "precise"):
                accuracy = 0.8 + 0.01 * seed + (gain[seed] if estimator == "dmbn" else 0.0)
                rows.append({"dataset": dataset, "regime": "full-heldout", "arch": "mlp", "seed": seed,
                             "estimator": estimator, "accuracy": accuracy, "sensitivity": 0.5, "specificity": 0.5,
                             "f1": accuracy})
        return rows

    metrics = pd.DataFrame(runs("mnist", {1: 0.010, 2: 0.011, 3: 0.012}) + runs("fashion-mnist", {1: 0.0, 2: 0.0, 3: 0.0}))
    held = pd.DataFrame(runs("fashion-mnist", {1: 0.020, 2: 0.021, 3: 0.019, 4: 0.020}, seeds=(1, 2, 3, 4)))
    side = pd.DataFrame([{"dataset": "fashion-mnist", "regime": "full", "arch": "mlp", "seed": seed, "beta": beta,
                          "separate": 0.8 + 0.01 * seed - 0.001 * beta, "bank": 0.8 + 0.01 * seed} for seed in (1, 2, 3)
                         for beta in (0.1, 0.2, 0.3)])
    # 3 βs + their mean + the largest fall: 5 intervals; the mean over β of −0.001 β is −0.0002 in every replicate
    protocol = separate_intervals(side, 0.95)
    assert len(protocol) == 5
    mean_row = protocol[protocol.comparison == "one network per β − bank, mean over β"].iloc[0]
    assert np.isclose(mean_row.mean_difference, -0.0002) and np.isclose(mean_row.ci_low, -0.0002)
    # the page's pairs give 4 comparisons × 2 metrics per data set: 16 + 8 held out + 5 protocol
    assert len(page_intervals(metrics, 0.95, None, held, side)) == 16 + 8 + 5
    lines = marks(metrics, None, held, side)
    held_line = [line for line in lines if line.startswith("mark, held out at more seeds, FashionMNIST")
                 and "dmbn − static-0.1" in line]
    assert len(held_line) == 1 and held_line[0].endswith("▲ repeated")
    # MNIST's mark is repeated by the held-out study too (the main study's FashionMNIST gain is zero: no interval)
    mnist = [line for line in lines if line.startswith("mark, MNIST") and "dmbn − static-0.1" in line]
    assert len(mnist) == 1 and mnist[0].endswith("▲ repeated")
    # without the held-out study nothing repeats MNIST's mark, and it is not strong enough to survive adjustment
    assert not [line for line in marks(metrics, None) if "dmbn − static-0.1" in line and line.endswith("repeated")]
