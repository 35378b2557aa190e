"""docs/cnn_findings.py, the generator of docs/CNN.md's numbers (issue #25), against direct
computations on a small published study written here: the thesis's layout beside the CIFAR
numbers, the batch-free twin's ESM against its BN network's (Welch), and the MLP's small-batch
questions asked of each network."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import cnn_findings  # noqa: E402

SEEDS = (1, 2, 3)
REGIMES = ("mini-b16", "mini-b100")
BN, TWIN = "resnet50", "resnet50-xbnblock-p2"
ROWS = [f"static-0.{i}" for i in range(1, 10)] + ["dmbn", "precise", "static-biased-0.1"]


def metrics_frame(archs=(BN, TWIN), regimes=REGIMES, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame([dict(dataset="fashion-mnist", regime=regime, arch=arch, seed=s, estimator=row,
                              accuracy=rng.uniform(0.5, 0.9), sensitivity=0.5, specificity=0.9, f1=rng.uniform(0.5, 0.9))
                         for arch in archs for regime in regimes for s in SEEDS for row in ROWS])


def esm_frame() -> pd.DataFrame:
    """ResNet with 4 BN layers, its twin with 2 (the others NaN: not BN there)."""
    rng = np.random.default_rng(1)
    rows = []
    for arch, layers in ((BN, 4), (TWIN, 2)):
        for regime in REGIMES:
            for s in SEEDS:
                for row in ("static-0.1", "dmbn", "precise", "static-0.5"):
                    values = {f"l{k}": (rng.uniform(1, 30) if k <= layers else np.nan) for k in range(1, 5)}
                    rows.append(dict(dataset="fashion-mnist", regime=regime, arch=arch, seed=s, member="bank",
                                     epoch=3, estimator=row, **values))
    return pd.DataFrame(rows)


def test_the_thesis_layout_sets_our_b100_means_beside_both_cifar_columns():
    metrics = metrics_frame()
    paper = pd.read_csv(ROOT / "workflow/resources/paper_tables.csv")
    table = cnn_findings.thesis_layout(metrics, paper)
    dmbn = metrics[(metrics.regime == "mini-b100") & (metrics.arch == BN) & (metrics.estimator == "dmbn")].accuracy
    line = next(li for li in table.splitlines() if li.startswith("| dmbn "))
    assert f"{dmbn.mean():.3f} ± {dmbn.std():.3f} (3)" in line
    assert "| 0.887 " in line and "| 0.848 " in line  # Tables 5.3 and 5.4's DMBN, by hand from the thesis
    twin = metrics[(metrics.regime == "mini-b100") & (metrics.arch == TWIN) & (metrics.estimator == "static-0.1")]
    bfn = next(li for li in table.splitlines() if li.startswith("| bn-bfn "))
    assert f"{twin.accuracy.mean():.3f} ± {twin.accuracy.std():.3f} (3)" in bfn and "| 0.884 " in bfn
    assert "mini-b16" not in table and len([li for li in table.splitlines() if li.startswith("| static-")]) == 9


def test_the_twins_esm_is_each_networks_layer_mean_and_a_welch_interval():
    esm = esm_frame()
    table = cnn_findings.esm_by_network(esm)

    def layer_means(arch, regime):
        cells = esm[(esm.arch == arch) & (esm.regime == regime) & (esm.estimator == "static-0.1")]
        return cells[["l1", "l2", "l3", "l4"]].mean(axis=1, skipna=True).to_numpy()

    a, b = layer_means(TWIN, "mini-b16"), layer_means(BN, "mini-b16")
    result = stats.ttest_ind(a, b, equal_var=False)
    low, high = result.confidence_interval(0.95)
    line = next(li for li in table.splitlines() if "B = 16" in li and "static-0.1" in li)
    assert f"{a.mean() - b.mean():+.2f} [{low:+.2f}, {high:+.2f}]" in line, line
    assert f"{b.mean():.2f} ± {b.std(ddof=1):.2f} (3)" in line
    assert "static-0.5" not in table  # only the rows asked about
    # batch sizes ascending as on the other pages, B = 16 before B = 100
    assert table.index("B = 16") < table.index("B = 100")


def test_the_small_batch_questions_pair_each_network_on_its_own_beside_the_mlp():
    cnn, mlp = metrics_frame(), metrics_frame(archs=("mlp",), regimes=("mini-b16", "mini-b100", "mini-b8"), seed=2)
    table = cnn_findings.against_mlp(cnn, mlp)

    def expected(frame, arch, regime):
        cells = frame[(frame.arch == arch) & (frame.regime == regime)].set_index(["seed", "estimator"]).accuracy
        d = np.array([cells[(s, "precise")] - cells[(s, "static-0.1")] for s in SEEDS])
        low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        return f"{d.mean():+.4f} [{low:+.4f}, {high:+.4f}] (3)"

    for frame, arch in ((cnn, BN), (cnn, TWIN), (mlp, "mlp")):
        line = next(li for li in table.splitlines() if "precise − static-0.1" in li and f"| {arch} " in li)
        assert expected(frame, arch, "mini-b16") in line and expected(frame, arch, "mini-b100") in line, line
    assert "B = 8" not in table  # the MLP's other batch sizes stay out
    # a pair a study lacks is left out (no moment-0.1 here), not shown empty
    assert "moment-0.1" not in table


def test_the_page_generator_runs_on_a_published_folder(tmp_path):
    study = tmp_path / "cnn"
    (study / "summaries").mkdir(parents=True)
    metrics_frame().to_csv(study / "metrics.csv", index=False)
    esm_frame().to_csv(study / "summaries" / "esm_last_epoch.csv", index=False)
    spread = pd.DataFrame({"dataset": "fashion-mnist", "arch": BN, "regime": "mini-b16", "member": "bank", "seed": 1,
                           "layer": [1, 2], "batch_size": [12544, 784], "batches": 20, "pooled_var": 1.0,
                           "ratio": [110.0, 9.0]})  # every column of the published file, which is schema-checked
    spread.assign(var_of_batch_means=spread.ratio * spread.pooled_var / spread.batch_size).to_csv(
        study / "summaries" / "precise_spread.csv", index=False)
    (tmp_path / "mlp_sweep").mkdir()
    metrics_frame(archs=("mlp",)).to_csv(tmp_path / "mlp_sweep" / "metrics.csv", index=False)
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "cnn_findings.py"), "cnn", "--mlp", "mlp_sweep",
                          "--published", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    for heading in ("minus the default EMA, paired by seed", "Tables 5.3/5.4's layout", "lower ESM",
                    "small-batch questions", "Values per BN channel"):
        assert heading in out, heading


def test_values_per_channel_give_n_bessels_factor_and_the_spread_by_hand():
    """Two layers of each network at B = 16 (n = 16 × 28 × 28 = 12544 in layer 1, 16 × 7 × 7 = 784
    deeper), an MLP-like network with n = B: the smallest n, (n−1)/n and the ratios by hand."""
    spread = pd.DataFrame({"dataset": "d", "member": "bank", "seed": [1, 1, 2, 2, 1, 1],
                           "arch": [BN, BN, BN, BN, "mlp", "mlp"], "regime": "mini-b16",
                           "layer": [1, 2, 1, 2, 1, 2], "batch_size": [12544, 784, 12544, 784, 16, 16],
                           "ratio": [120.0, 8.0, 100.0, 10.0, 0.96, 0.01]})
    table = cnn_findings.values_per_channel(spread)
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]}
    # ResNet: n 784–12544, (784 − 1) / 784 = 0.99872 -> 0.9987; layer 1 median of (120, 100) = 110
    assert rows[BN] == ["B = 16", "784–12544", "0.9987", "110.000", "9.000"]
    # MLP: n = B = 16, 15 / 16 = 0.9375
    assert rows["mlp"] == ["B = 16", "16–16", "0.9375", "0.960", "0.010"]


def test_a_study_at_the_thesis_regime_mini_fills_the_thesis_layout_and_meets_the_mlps_b100():
    """The `cnn` study trains the named regime `mini` (B = 100), the MLP sweep `mini-b100`: the
    thesis's layout takes `mini`, and the MLP's B = 100 runs, on the CNN's data set only, are paired
    at it; an MLP run on another data set or batch size stays out."""
    cnn = metrics_frame(regimes=("mini",))
    paper = pd.read_csv(ROOT / "workflow/resources/paper_tables.csv")
    dmbn = cnn[(cnn.arch == BN) & (cnn.estimator == "dmbn")].accuracy
    layout = cnn_findings.thesis_layout(cnn, paper)
    assert f"{dmbn.mean():.3f} ± {dmbn.std():.3f} (3)" in next(li for li in layout.splitlines() if li.startswith("| dmbn "))

    mlp = pd.concat([metrics_frame(archs=("mlp",), regimes=("mini-b100", "mini-b16"), seed=3),
                     metrics_frame(archs=("mlp",), regimes=("mini-b100",), seed=4).assign(dataset="mnist")])
    table = cnn_findings.against_mlp(cnn, mlp)
    cells = mlp[(mlp.dataset == "fashion-mnist") & (mlp.regime == "mini-b100")].set_index(["seed", "estimator"]).accuracy
    d = np.array([cells[(s, "precise")] - cells[(s, "static-0.1")] for s in SEEDS])
    low, high = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    line = next(li for li in table.splitlines() if "precise − static-0.1" in li and "| mlp " in li)
    assert f"{d.mean():+.4f} [{low:+.4f}, {high:+.4f}] (3)" in line, line
    assert "B = 16" not in table and table.count("| mlp ") == len(cnn_findings.SMALL_BATCH_PAIRS) - 2  # no moment, no precise-mean rows


def test_the_page_generator_reads_several_studies_as_one(tmp_path):
    """`cnn` (mini) and `cnn_small` (B = 16) published apart: each one's own tables, then one
    small-batch table with both batch sizes."""
    for name, regimes, seed in (("cnn", ("mini",), 5), ("cnn_small", ("mini-b16",), 6)):
        (tmp_path / name).mkdir()
        metrics_frame(regimes=regimes, seed=seed).to_csv(tmp_path / name / "metrics.csv", index=False)
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "cnn_findings.py"), "cnn", "cnn_small",
                          "--published", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    joint = out[out.index("small-batch questions"):]
    header = next(li for li in joint.splitlines() if li.startswith("| comparison"))
    assert "B = 16" in header and "mini" in header, header
    small = pd.read_csv(tmp_path / "cnn_small" / "metrics.csv").set_index(["arch", "seed", "estimator"]).accuracy
    d = np.array([small[(TWIN, s, "dmbn")] - small[(TWIN, s, "static-0.1")] for s in SEEDS])
    line = next(li for li in joint.splitlines() if "dmbn − static-0.1" in li and f"| {TWIN} " in li)
    assert f"{d.mean():+.4f}" in line, line


def test_several_mlp_studies_are_named_after_their_study_and_one_keeps_its_name(tmp_path):
    for name, seed in (("batch_sweep", 7), ("shift", 8)):
        (tmp_path / name).mkdir()
        metrics_frame(archs=("mlp",), regimes=("mini-b100",), seed=seed).to_csv(tmp_path / name / "metrics.csv", index=False)
    both = cnn_findings._mlp_studies(tmp_path, ["batch_sweep", "shift"])
    assert sorted(both.arch.unique()) == ["mlp (batch_sweep)", "mlp (shift)"] and len(both) == 2 * len(ROWS) * 3
    assert list(cnn_findings._mlp_studies(tmp_path, ["shift"]).arch.unique()) == ["mlp"]
    assert cnn_findings._mlp_studies(tmp_path, []) is None
    # in the table, each is paired within its own study: the shift study's dmbn − static-0.1 by hand
    table = cnn_findings.against_mlp(metrics_frame(regimes=("mini",)), both)
    cells = pd.read_csv(tmp_path / "shift" / "metrics.csv").set_index(["seed", "estimator"]).accuracy
    d = np.array([cells[(s, "dmbn")] - cells[(s, "static-0.1")] for s in SEEDS])
    assert f"{d.mean():+.4f}" in next(li for li in table.splitlines() if "dmbn − static-0.1" in li and "mlp (shift)" in li)
