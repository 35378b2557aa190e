"""Issue #29 in the workflow: corrupted sets generated once per data set with an md5 manifest, a
tampered set never used, every run scored from its trained files (a new corruption, stream or
rule re-runs no training), and existing studies planning what they planned before."""

from __future__ import annotations

import copy
import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dmbn.corruptions import corrupt

from conftest import ROOT, base_config, planned_rules, snakemake, write_config, write_mnist_like

NOWHERE = "http://127.0.0.1:9/"  # the discard port: nothing answers
RUN = "results/shift_tiny/runs/tiny-idx/mini-b20/mlp/seed1/bank"
# the jobs that only generate sets, score trained runs or show results: never training
SHIFT_ONLY = {"shift_set", "shift_manifest", "shift_evaluate", "shift_aggregate", "shift_examples",
              "shift_tables", "shift_figures", "study_page", "shift_tiny", "all"}


def shift_config(workdir: Path, source: Path, md5: dict) -> dict:
    """One tiny shift study on MNIST-format noise images (400 train, 100 test): one run, two
    corruptions at two severities, every stream and rule."""
    config = base_config()
    config.update(data_root=str(workdir / "resources/data"), local_sources=[str(source)], download=False,
                  default_study="shift_tiny")
    config["datasets"] = {"tiny-idx": {"torchvision": "MNIST", "mirrors": [NOWHERE], "md5": md5}}
    config["studies"] = {"shift_tiny": {
        "datasets": ["tiny-idx"], "batch_sizes": [20], "archs": ["mlp"], "seeds": [1], "shift": True,
        "train": {"epochs": 1, "depth": 2, "width": 8, "precise_batches": 2}}}
    config["report"].update(beta_layer=1, esm_layers=[1])
    config["shift"].update(corruptions=["gaussian_noise", "translate"], severities=[1, 5])
    return config


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, dict, Path]:
    workdir = tmp_path_factory.mktemp("shift")
    md5 = write_mnist_like(workdir / "source")
    config = shift_config(workdir, workdir / "source", md5)
    path = write_config(workdir, config)
    snakemake(workdir, path, "--cores", "1")
    return workdir, config, path



def official_test_images(workdir: Path) -> np.ndarray:
    import torch

    return torch.load(workdir / "results/data/tiny-idx/tensors.pt", weights_only=True)["x_test"][:, 0].numpy()


@pytest.mark.slow  # a real workflow run: data, one training job, generation, evaluation, report
def test_each_set_is_the_corrupted_test_split_and_the_manifest_holds_its_md5(finished):
    workdir, config, _ = finished
    folder = workdir / "results/data/tiny-idx/shift"
    manifest = pd.read_csv(folder / "manifest.csv")
    assert sorted(zip(manifest.corruption, manifest.severity)) == [
        ("gaussian_noise", 1), ("gaussian_noise", 5), ("translate", 1), ("translate", 5)]
    test = official_test_images(workdir)
    for row in manifest.itertuples():
        path = folder / row.corruption / row.file
        assert hashlib.md5(path.read_bytes()).hexdigest() == row.md5  # the file's own bytes
        expected = corrupt(test, row.corruption, row.severity, seed=config["shift"]["seed"])
        assert np.array_equal(np.load(path), expected)


@pytest.mark.slow
def test_every_row_is_scored_on_every_set_and_stream(finished):
    workdir, config, _ = finished
    import torch

    scores = pd.read_csv(workdir / "results/shift_tiny/shift/scores.csv")
    names = torch.load(workdir / RUN / "statistics.pt", weights_only=True)["names"]
    for (corruption, severity), rows in scores.groupby(["corruption", "severity"]):
        source = rows[rows.family == "source"]
        assert sorted(source.row) == sorted(names) and set(source.stream) == {"any"}
        streamed = rows[(rows.family == "test-time") & (rows.stream != "any")]
        assert len(streamed) == 4 * 3  # four rules on three streams
        assert set(streamed.row) == {"test-batch", "source-target-mix", "robust-ema", "decaying-momentum"}
        oracle = rows[rows.row == "target-recalibrated"]
        assert len(oracle) == 1 and oracle.stream.item() == "any"
        assert rows.accuracy.between(0, 1).all()
    esm = pd.read_csv(workdir / "results/shift_tiny/shift/esm.csv")
    assert set(esm.estimator) == set(names) and set(esm.layer) == {1, 2}  # depth 2: two BN layers
    assert (esm[["esm_mu", "esm_sigma"]] >= 0).all().all()
    # the published summary: each long row's ESM_μ in its layer's column (5 significant digits)
    wide = pd.read_csv(workdir / "results/shift_tiny/shift/esm_mu_by_layer.csv")
    keys = ["seed", "corruption", "severity", "estimator"]
    assert len(wide) == len(esm) // 2
    for row in esm.sample(20, random_state=0).itertuples():
        match = wide[(wide[keys] == [getattr(row, k) for k in keys]).all(axis=1)]
        assert match[f"l{row.layer}"].item() == pytest.approx(row.esm_mu, rel=1e-4)


def test_a_studys_shift_regimes_score_only_those_runs(tmp_path):
    """Two batch sizes trained, one scored: the plan has each corruption's scores of that run alone."""
    config = shift_config(tmp_path, tmp_path / "source", write_mnist_like(tmp_path / "source"))
    study = config["studies"]["shift_tiny"]
    study.update(batch_sizes=[20, 40], shift={"regimes": ["mini-b40"]})
    result = snakemake(tmp_path, write_config(tmp_path, config), "-n")
    plan = planned_rules(result)
    assert plan["train"] == 2 and plan["shift_evaluate"] == 2, plan  # 2 runs trained; 1 run x 2 corruptions scored
    assert "mini-b40/mlp/seed1/bank/shift/translate.csv" in result.stdout
    assert "mini-b20/mlp/seed1/bank/shift/" not in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("change", ["a corruption", "a severity", "a stream", "a rule", "another N",
                                    "the study's own narrower block"])
def test_a_new_corruption_stream_or_rule_reruns_no_training(finished, change, tmp_path):
    workdir, config, _ = finished
    changed = copy.deepcopy(config)
    shift = changed["shift"]
    if change == "a corruption":
        shift["corruptions"].append("contrast")
    elif change == "a severity":
        shift["severities"].append(3)
    elif change == "a stream":  # the fixture runs every stream: drop one, then it is a change too
        shift["streams"] = ["iid", "dirichlet"]
    elif change == "a rule":
        shift["rules"] = ["test-batch"]
    elif change == "another N":
        shift["prior"] = 64
    else:  # scored on one corruption's severity 5 alone: its sets exist, nothing is generated
        changed["studies"]["shift_tiny"]["shift"] = {"corruptions": ["translate"], "severities": [5]}
    result = snakemake(workdir, write_config(workdir, changed, "changed.yaml"), "-n")
    plan = planned_rules(result)
    assert plan and set(plan) <= SHIFT_ONLY, plan
    assert "train" not in plan and "evaluate" not in plan  # named: the set above is the rule
    assert "shift_evaluate" in plan
    if change == "a corruption":  # only the new corruption's sets and scores
        assert plan["shift_set"] == 2 and plan["shift_evaluate"] == 1, plan
    if change == "the study's own narrower block":
        assert plan["shift_evaluate"] == 1 and "shift_set" not in plan, plan


@pytest.mark.slow
def test_a_tampered_set_is_refused_not_used(finished):
    workdir, _, path = finished
    target = workdir / "results/data/tiny-idx/shift/translate/severity5.npy"
    images = np.load(target)
    images[0, 0, 0] ^= 1  # one bit of one pixel
    np.save(target, images)
    # both readers of a set refuse it: each asked for on its own, so that neither depends on
    # which of the two Snakemake happens to schedule first
    readers = [f"{RUN}/shift/translate.csv", "results/shift_tiny/figures/tiny-idx/shift/shift_examples.png"]
    for reader in readers:
        result = snakemake(workdir, path, "--cores", "1", reader, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert f"{target.relative_to(workdir)}: md5" in output and "does not match" in output, output[-3000:]
        assert "rm " in output  # what to do
    # deleting it, as the message says: the set's rule generates the same bytes again ...
    target.unlink()
    target.with_suffix(".md5").unlink()
    snakemake(workdir, path, "--cores", "1", str(target.relative_to(workdir)))
    manifest = pd.read_csv(workdir / "results/data/tiny-idx/shift/manifest.csv")
    recorded = manifest[(manifest.corruption == "translate") & (manifest.severity == 5)].md5.item()
    assert hashlib.md5(target.read_bytes()).hexdigest() == recorded
    # ... and both readers, then the whole study, finish from it
    snakemake(workdir, path, "--cores", "1")
    assert all((workdir / reader).is_file() for reader in readers)


@pytest.mark.slow
def test_publish_copies_the_scores_the_esm_summary_and_the_set_manifest(finished):
    workdir, _, _ = finished
    subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(workdir), "publish", "STUDY=shift_tiny"],
                   check=True, capture_output=True)
    published = workdir / "docs/results/shift_tiny/shift"
    assert sorted(p.name for p in published.iterdir()) == ["esm_mu_by_layer.csv", "manifest_tiny-idx.csv", "scores.csv"]
    for name, source in (("scores.csv", "results/shift_tiny/shift/scores.csv"),
                         ("esm_mu_by_layer.csv", "results/shift_tiny/shift/esm_mu_by_layer.csv"),
                         ("manifest_tiny-idx.csv", "results/data/tiny-idx/shift/manifest.csv")):
        assert (published / name).read_bytes() == (workdir / source).read_bytes()
    assert not (published / "esm.csv").exists()  # the long table stays with the results


@pytest.mark.slow
@pytest.mark.browser
def test_the_report_shows_every_shift_table_with_its_rows_and_every_figure_with_its_caption(finished, browser):
    """The shift items of `snakemake --report` in Chromium, as test_report_browser reads the
    others. DMBN_SHIFT_REPORT=<workdir>:<study>:<dataset> reads a finished real study instead
    (its config.yaml in the workdir), e.g. /work/study-shift:shift:fashion-mnist."""
    import os

    from dmbn.names import regime_label
    from dmbn.report import SHIFT_FIGURES, SHIFT_TABLES, item_label
    from test_report_browser import Reader, first_words, html_rows, shown_figure

    workdir, _, path = finished
    study, dataset = "shift_tiny", "tiny-idx"
    if os.environ.get("DMBN_SHIFT_REPORT"):
        folder, study, dataset = os.environ["DMBN_SHIFT_REPORT"].split(":")
        workdir, path = Path(folder), Path(folder) / "config.yaml"
    report = workdir / f"results/{study}/report.html"
    snakemake(workdir, path, "--report", str(report), study)
    reader = Reader(browser, report, None)
    for name in SHIFT_TABLES:
        csv = pd.read_csv(workdir / f"results/{study}/tables/{dataset}_{name}.csv")
        reader.open_category(dataset)
        reader.view(item_label(name))
        rows, caption, _ = html_rows(reader)
        assert len(rows) == len(csv), name
        # each row in the CSV's order, its regime as the report labels it
        assert [r[:2] for r in rows] == [[regime_label(r), a] for r, a in zip(csv.regime, csv.arch)], name
        assert caption.startswith(first_words(f"{name}.rst")), (name, caption)
    for name in SHIFT_FIGURES:
        shown_figure(reader, dataset, name)
    assert reader.errors == []
    reader.page.close()
