"""The real Snakemake DAG, executed: the quickstart study end to end, incremental rebuilds, lint."""

import copy
import subprocess
import sys

import pandas as pd
import pytest

from conftest import ROOT, SNAKEFILE, planned_rules, quickstart_config, snakemake, write_config
from dmbn.report import FIGURES

ESTIMATORS = 13  # static x9, cma, dmbn, precise, recalibrated


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The whole quickstart DAG for real (2 epochs) and its report."""
    workdir = tmp_path_factory.mktemp("quickstart")
    config = quickstart_config(workdir)
    path = write_config(workdir, config)
    snakemake(workdir, path, "--cores", "2")
    snakemake(workdir, path, "--report", str(workdir / "report.html"))
    return workdir, config, path


def test_quickstart_writes_metrics_for_every_run_and_estimator(quickstart):
    workdir, _, _ = quickstart
    metrics = pd.read_csv(workdir / "results/quickstart/metrics.csv")
    assert list(metrics.columns) == ["dataset", "regime", "arch", "seed", "estimator", "accuracy",
                                     "sensitivity", "specificity", "f1"]
    assert len(metrics) == 2 * 2 * 3 * ESTIMATORS  # regimes x archs x seeds x estimators
    assert metrics[["accuracy", "sensitivity", "specificity", "f1"]].apply(lambda c: c.between(0, 1)).all().all()


def test_quickstart_tables_hold_the_thesis_rows(quickstart):
    workdir, _, _ = quickstart
    table = pd.read_csv(workdir / "results/quickstart/tables/digits.csv")
    expected = [f"static-0.{i}" for i in range(1, 10)] + ["dmbn", "bn-bfn", "precise", "cma", "recalibrated"]
    for regime in ("full", "mini"):
        assert table[table.regime == regime].variant.tolist() == expected
    assert (table.seeds == 3).all()
    latex = (workdir / "results/quickstart/tables/digits.tex").read_text()
    assert "\\toprule" in latex and "\\textbf{" in latex and "DMBN" in latex and "BN-BFN" in latex
    paired = pd.read_csv(workdir / "results/quickstart/comparisons/paired.csv")
    assert set(paired.comparison) == {"dmbn - static-0.1", "dmbn - bn-bfn", "dmbn - precise"}
    assert (paired.ci_low <= paired.mean_difference).all() and (paired.mean_difference <= paired.ci_high).all()
    thesis = pd.read_csv(workdir / "results/quickstart/comparisons/thesis.csv")
    assert list(thesis.columns[:5]) == ["dataset", "regime", "variant", "metric", "thesis"]


def test_quickstart_figures_and_report_exist(quickstart):
    workdir, _, _ = quickstart
    for regime in ("mini", "full"):
        for name in FIGURES:
            for ext in ("png", "pdf"):
                path = workdir / f"results/quickstart/figures/digits/{regime}/{name}.{ext}"
                assert path.stat().st_size > 1000, path
    report = (workdir / "report.html").read_text(errors="replace")
    for name in [*(f"{f}.html" for f in FIGURES), "digits.html", "paired.html", "thesis.html", "metrics.html"]:
        assert name in report, name


def test_table_settings_rerun_only_aggregation_and_figures(quickstart):
    workdir, config, _ = quickstart
    changed = copy.deepcopy(config)
    changed["report"].update(decimals=4, beta_layer=5)
    plan = planned_rules(snakemake(workdir, write_config(workdir, changed, "report.yaml"), "-n", "--cores", "2"))
    assert plan and "train" not in plan and "evaluate" not in plan
    assert {"table", "figures", "compare"} <= set(plan)


def test_training_settings_rerun_the_affected_training_jobs(quickstart):
    workdir, config, _ = quickstart
    changed = copy.deepcopy(config)
    changed["studies"]["quickstart"]["train"]["lr"] = 0.05
    plan = planned_rules(snakemake(workdir, write_config(workdir, changed, "train.yaml"), "-n", "--cores", "2"))
    assert plan["train"] == 12 and plan["evaluate"] == 12
    unchanged = planned_rules(snakemake(workdir, quickstart[2], "-n", "--cores", "2"))
    assert unchanged == {}  # everything is up to date


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--lint"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_idx_and_cifar_formats_through_the_real_rules(tmp_path):
    """MNIST-format (IDX, gzip) and CIFAR-format (pickled batches in a tar.gz) archives served over
    HTTP on loopback: download -> prepare -> split -> train -> evaluate -> tables, for real."""
    from conftest import base_config, http_mirror, write_cifar_like, write_mnist_like

    mirror = tmp_path / "mirror"
    idx_md5 = write_mnist_like(mirror, n_train=300, n_test=60)
    cifar_md5 = write_cifar_like(mirror, per_batch=24, n_test=40)
    workdir = tmp_path / "work"
    workdir.mkdir()
    with http_mirror(mirror) as url:
        config = base_config()
        config.update(data_root=str(workdir / "resources/data"), local_sources=[], default_study="idx")
        config["datasets"] = {"tiny-idx": {"torchvision": "MNIST", "mirrors": [url], "md5": idx_md5},
                              "tiny-cifar": {"torchvision": "CIFAR10", "mirrors": [url], "md5": cifar_md5}}
        small = {"epochs": 2, "batch_size": 40, "precise_batches": 2, "esm_chunk": 64}
        config["studies"] = {
            "idx": {"datasets": ["tiny-idx"], "regimes": ["mini", "full"], "archs": ["mlp", "mlp-bnbfn"],
                    "seeds": [1], "train": {**small, "depth": 4, "width": 16}},
            "cifar": {"datasets": ["tiny-cifar"], "regimes": ["mini"],
                      "archs": ["resnet50", "resnet50-xbnblock-p2"], "seeds": [1],
                      "train": {**small, "epochs": 1, "resnet_blocks": [1, 1, 1, 1], "resnet_width": 4,
                                "augment": True}},
        }
        config["report"].update(beta_layer=1, esm_layers=[1, 2])
        snakemake(workdir, write_config(workdir, config), "--cores", "2", "idx", "cifar")
    idx = pd.read_csv(workdir / "results/idx/metrics.csv")
    assert len(idx) == 2 * 2 * ESTIMATORS and set(idx.dataset) == {"tiny-idx"}
    cifar = pd.read_csv(workdir / "results/cifar/metrics.csv")
    assert len(cifar) == 2 * ESTIMATORS and set(cifar.arch) == {"resnet50", "resnet50-xbnblock-p2"}
    layers = pd.read_csv(workdir / "results/cifar/runs/tiny-cifar/mini/resnet50/seed1/bank/layers.csv")
    assert len(layers) == 1 + 3 * 4 + 4  # stem, three per bottleneck, four projections
    assert (workdir / "results/cifar/tables/tiny-cifar.tex").exists()
    assert (workdir / "resources/data/tiny-idx/MNIST/raw/train-images-idx3-ubyte").exists()


@pytest.mark.slow
def test_separate_runs_protocol_agrees_with_the_bank(tmp_path):
    """The thesis's protocol (one training per static β) through the workflow: its static rows
    come from their own runs and match the bank's estimators on the same weights."""
    config = quickstart_config(tmp_path)
    study = config["studies"]["quickstart"]
    study.update(regimes=["mini"], archs=["mlp"], seeds=[1], protocol="separate")
    study["train"].update(betas=[0.1, 0.3])
    snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2", "results/quickstart/metrics.csv")
    runs = tmp_path / "results/quickstart/runs/digits/mini/mlp/seed1"
    assert sorted(p.name for p in runs.iterdir()) == ["bank", "static-0.1", "static-0.3"]
    bank = pd.read_csv(runs / "bank/metrics.csv").set_index("estimator")
    for beta in ("0.1", "0.3"):
        alone = pd.read_csv(runs / f"static-{beta}/metrics.csv").set_index("estimator")
        assert alone.index.tolist() == [f"static-{beta}"]
        pd.testing.assert_series_equal(alone.loc[f"static-{beta}"], bank.loc[f"static-{beta}"])
    metrics = pd.read_csv(tmp_path / "results/quickstart/metrics.csv")
    assert metrics.estimator.value_counts().max() == 1  # each estimator once: no double rows
