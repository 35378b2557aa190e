"""The real Snakemake DAG, executed: the quickstart study end to end, incremental rebuilds, lint."""

import copy
import os
import shutil
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from dmbn.config import model_kwargs, report_settings, study_train
from dmbn.data import load_run_data
from dmbn.models import build_model
from dmbn.names import METRICS, regime_label

from conftest import ROOT, SNAKEFILE, planned_rules, quickstart_config, snakemake, write_config
from test_evaluate import metrics_of
from test_tables import COLUMNS, parse_latex
from dmbn.report import FIGURES

ESTIMATORS = 13  # static x9, cma, dmbn, precise, recalibrated


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The whole quickstart DAG for real (2 epochs) and its report: ~5 min on 2 busy cores, so
    every test that uses it is marked slow (``make test`` and CI run them, ``make test-fast`` not)."""
    workdir = tmp_path_factory.mktemp("quickstart")
    config = quickstart_config(workdir)
    path = write_config(workdir, config)
    snakemake(workdir, path, "--cores", "2")
    snakemake(workdir, path, "--report", str(workdir / "report.html"))
    return workdir, config, path


@pytest.mark.slow  # a real DAG: minutes on 2 cores
def test_quickstart_writes_metrics_for_every_run_and_estimator(quickstart):
    workdir, config, _ = quickstart
    metrics = pd.read_csv(workdir / "results/quickstart/metrics.csv")
    assert list(metrics.columns) == ["dataset", "regime", "arch", "seed", "estimator", *METRICS]
    assert len(metrics) == 3 * 2 * 3 * ESTIMATORS  # regimes x archs x seeds x estimators
    runs = workdir / "results/quickstart/runs/digits"
    for (regime, arch, seed), rows in metrics.groupby(["regime", "arch", "seed"]):
        # the study's rows are the run's own evaluation, labelled with the run
        own = pd.read_csv(runs / f"{regime}/{arch}/seed{seed}/bank/metrics.csv")
        pd.testing.assert_frame_equal(rows.drop(columns=["dataset", "regime", "arch", "seed"]).reset_index(drop=True), own)
        assert rows.accuracy.nunique() > 1, (regime, arch, seed)  # estimators are told apart
    # one run re-evaluated by hand: its weights, each estimator's statistics loaded layer by layer
    train = study_train(config, "quickstart")
    regime, arch, seed = "mini", "mlp", 1
    run = runs / f"{regime}/{arch}/seed{seed}/bank"
    data = load_run_data(workdir / "results/data/digits/tensors.pt", workdir / "results/data/digits/split.pt", regime)
    model = build_model(arch, data.input_shape, data.num_classes, **model_kwargs(train))
    model.load_state_dict(torch.load(run / "model.pt", weights_only=True))
    statistics = torch.load(run / "statistics.pt", weights_only=True)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    ours = metrics[(metrics.regime == regime) & (metrics.arch == arch) & (metrics.seed == seed)].set_index("estimator")
    offsets = np.cumsum([0] + [bn.num_features for bn in bns])
    for i, name in enumerate(statistics["names"]):
        with torch.no_grad():
            for bn, start, end in zip(bns, offsets[:-1], offsets[1:]):
                bn.running_mean.copy_(statistics["mean"][i, start:end])
                bn.running_var.copy_(statistics["var"][i, start:end])
            predictions = model.eval()(data.x_test).argmax(dim=1).numpy()
        expected = metrics_of(data.y_test.numpy(), predictions, data.num_classes)
        for metric in METRICS:
            assert ours.loc[name, metric] == pytest.approx(expected[metric], abs=1e-12), (name, metric)


@pytest.mark.slow  # a real DAG: minutes on 2 cores
def test_quickstart_tables_hold_the_thesis_rows(quickstart):
    workdir, config, _ = quickstart
    table = pd.read_csv(workdir / "results/quickstart/tables/digits.csv")
    expected = [f"static-0.{i}" for i in range(1, 10)] + ["dmbn", "bn-bfn", "precise", "cma", "recalibrated"]
    for regime in ("full", "full-heldout", "mini"):
        assert table[table.regime == regime].variant.tolist() == expected
    assert (table.seeds == 3).all()
    latex = (workdir / "results/quickstart/tables/digits.tex").read_text()
    assert "\\toprule" in latex and "DMBN" in latex and "BN-BFN" in latex
    cells = parse_latex(latex)
    for regime in table.regime.unique():
        for column in COLUMNS:
            # bold: every mean that prints as the block's largest, none where all print the same
            shown = cells[(cells.regime == regime_label(regime)) & (cells.column == column)]
            printed = shown.text.str.split().str[0].astype(float)
            best = shown.variant[printed == printed.max()] if printed.nunique() > 1 else []
            assert sorted(shown[shown.bold].variant) == sorted(best), (regime, column)
    # paired comparisons recomputed from metrics.csv: per-seed differences, Student's t
    metrics = pd.read_csv(workdir / "results/quickstart/metrics.csv")
    variant = np.where(metrics.arch == "mlp", metrics.estimator,
                       np.where(metrics.estimator == "static-0.1", "bn-bfn", None))
    wide = metrics.assign(variant=variant).dropna(subset=["variant"]).pivot_table(
        index=["regime", "seed"], columns="variant", values=list(METRICS))
    paired = pd.read_csv(workdir / "results/quickstart/comparisons/paired.csv")
    assert len(paired) == 3 * 3 * len(METRICS)  # regimes x comparisons x metrics
    confidence = report_settings(config)["confidence"]
    for row in paired.itertuples():
        a, b = row.comparison.split(" - ")
        d = (wide[(row.metric, a)] - wide[(row.metric, b)]).xs(row.regime).to_numpy()
        low, high = stats.t.interval(confidence, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
        assert row.seeds == len(d) == 3 and row.confidence == confidence
        assert row.mean_difference == pytest.approx(d.mean(), abs=1e-12)
        if np.ptp(d) > 0:
            assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-12), row
        else:
            assert row.ci_low == row.ci_high == row.mean_difference
    assert "digits" not in set(pd.read_csv(ROOT / "workflow/resources/paper_tables.csv").dataset)
    # the thesis has no digits table: no comparison with it, rather than an empty one
    # (tests/test_tables.py compares on its rows)
    assert not list((workdir / "results/quickstart/comparisons").glob("thesis.*"))


@pytest.mark.slow  # a real DAG: minutes on 2 cores
def test_quickstart_figures_and_report_exist(quickstart):
    workdir, _, _ = quickstart
    for regime in ("mini", "full"):
        for name in FIGURES:
            for ext in ("png", "pdf"):
                path = workdir / f"results/quickstart/figures/digits/{regime}/{name}.{ext}"
                assert path.read_bytes().startswith(b"\x89PNG" if ext == "png" else b"%PDF"), path
            pixels = matplotlib.image.imread(workdir / f"results/quickstart/figures/digits/{regime}/{name}.png")
            assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 16, (regime, name)  # not blank
    report = (workdir / "report.html").read_text(errors="replace")
    assert report.lstrip().lower().startswith("<!doctype html")
    for name in [*(f"{f}.html" for f in FIGURES), "digits.html", "paired.html", "metrics.html",
                 "index.html"]:  # the study page, an item of the report
        assert name in report, name
    assert "thesis.html" not in report  # an item with no data (the thesis has no digits) is no item


@pytest.mark.slow  # a real DAG: minutes on 2 cores
def test_table_settings_rerun_only_aggregation_and_figures(quickstart):
    workdir, config, _ = quickstart
    changed = copy.deepcopy(config)
    changed["report"].update(decimals=4, beta_layer=5)
    plan = planned_rules(snakemake(workdir, write_config(workdir, changed, "report.yaml"), "-n", "--cores", "2"))
    assert plan and "train" not in plan and "evaluate" not in plan
    assert {"table", "figures", "paired"} <= set(plan)


@pytest.mark.slow  # a real DAG: minutes on 2 cores
def test_training_settings_rerun_the_affected_training_jobs(quickstart):
    workdir, config, _ = quickstart
    changed = copy.deepcopy(config)
    changed["studies"]["quickstart"]["train"]["lr"] = 0.05
    plan = planned_rules(snakemake(workdir, write_config(workdir, changed, "train.yaml"), "-n", "--cores", "2"))
    assert plan["train"] == 12 and plan["evaluate"] == 12
    dry = snakemake(workdir, quickstart[2], "-n", "--cores", "2")
    assert planned_rules(dry) == {}  # the dry run parsed and planned nothing: everything is up to date
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_lint_is_clean():
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--lint"],
                            cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.slow  # a real DAG: minutes on 2 cores
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
                      "train": {**small, "epochs": 1, "resnet_blocks": [1, 1, 1, 1], "resnet_channels": 8,
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
    snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2", "results/quickstart/metrics.csv",
              "results/quickstart/comparisons/separate.csv")
    runs = tmp_path / "results/quickstart/runs/digits/mini/mlp/seed1"
    assert sorted(p.name for p in runs.iterdir()) == ["bank", "static-0.1", "static-0.3"]
    bank = pd.read_csv(runs / "bank/metrics.csv").set_index("estimator")
    for beta in ("0.1", "0.3"):
        alone = pd.read_csv(runs / f"static-{beta}/metrics.csv").set_index("estimator")
        assert alone.index.tolist() == [f"static-{beta}"]
        pd.testing.assert_series_equal(alone.loc[f"static-{beta}"], bank.loc[f"static-{beta}"])
    metrics = pd.read_csv(tmp_path / "results/quickstart/metrics.csv")
    assert metrics.estimator.value_counts().max() == 1  # each estimator once: no double rows
    side_by_side = pd.read_csv(tmp_path / "results/quickstart/comparisons/separate.csv")
    assert side_by_side.beta.tolist() == [0.1, 0.3]
    assert side_by_side.bank.tolist() == bank.loc[["static-0.1", "static-0.3"], "accuracy"].tolist()
    assert side_by_side.separate.tolist() == side_by_side.bank.tolist()  # one trajectory


@pytest.mark.slow
def test_the_independent_protocol_trains_each_beta_from_its_own_seed(tmp_path):
    """Each β's network under ``independent`` is the network a bank run of seed · 10,000 +
    1,000 · β trains (computed by hand: seed 1, β = 0.3 → 10,300), not the bank's of the seed."""
    config = quickstart_config(tmp_path)
    study = config["studies"]["quickstart"]
    study.update(regimes=["mini"], archs=["mlp"], seeds=[1], protocol="independent")
    study["train"].update(betas=[0.1, 0.3])
    config["studies"]["reference"] = {**copy.deepcopy(study), "protocol": "bank", "seeds": [10300]}
    snakemake(tmp_path, write_config(tmp_path, config), "--cores", "2",
              "results/quickstart/comparisons/separate.csv", "results/reference/runs/digits/mini/mlp/seed10300/bank/metrics.csv")
    runs = tmp_path / "results/quickstart/runs/digits/mini/mlp/seed1"
    member = pd.read_csv(runs / "static-0.3/metrics.csv").set_index("estimator").loc["static-0.3"]
    reference = pd.read_csv(tmp_path / "results/reference/runs/digits/mini/mlp/seed10300/bank/metrics.csv")
    pd.testing.assert_series_equal(member, reference.set_index("estimator").loc["static-0.3"])
    own, shared = (torch.load(runs / name / "model.pt") for name in ("static-0.3", "bank"))
    assert any(not torch.equal(own[k], shared[k]) for k in own)  # another network than the seed's bank run
    bank = pd.read_csv(runs / "bank/metrics.csv").set_index("estimator")
    side_by_side = pd.read_csv(tmp_path / "results/quickstart/comparisons/separate.csv").set_index("beta")
    assert side_by_side.loc[0.3, "separate"] == member.accuracy
    assert side_by_side.bank.tolist() == bank.loc[["static-0.1", "static-0.3"], "accuracy"].tolist()


@pytest.mark.slow
def test_the_workflow_uses_its_own_source_tree_without_an_install(tmp_path):
    """Plain `snakemake` in a copy of the checkout: the Snakefile puts the copy's src/ first, for
    itself and for the jobs' scripts, ahead of anything else called dmbn on the path (here a
    stub that fails on import, standing in for no install or another version)."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(ROOT / name, checkout / name)
    for folder in ("workflow", "src"):
        shutil.copytree(ROOT / folder, checkout / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    stub = tmp_path / "stub" / "dmbn"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('the stub dmbn was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(stub.parent)}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "-d", str(checkout),
                             "-s", str(checkout / "Snakefile"), "results/data/digits/split.pt"],
                            capture_output=True, text=True, env=env, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (checkout / "results/data/digits/split.pt").exists()
