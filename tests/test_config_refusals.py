"""Issue #24, deliverable 3: the config check refuses what cannot work, before any job, naming the
key — non-finite numbers, split fractions that leave a class out of a part, a data_root that is
no directory, an ESM estimator no run carries, a rounding reference that trains other runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from dmbn.config import check, validate

from conftest import ROOT, base_config, quickstart_config, snakemake, write_config
from test_reliability import SCHEMA, rejection

NAN, INF = float("nan"), float("inf")


def setting(config: dict, path: str, value) -> dict:
    """A copy of ``config`` with the dotted key set (test_reliability's, creating missing blocks)."""
    config = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    node[last] = value
    return config


def with_file(tmp_path: Path) -> Path:
    """A plain file where a directory is expected."""
    path = tmp_path / "not-a-folder"
    path.write_text("a file\n")
    return path


def moment_study(config: dict) -> dict:
    """quickstart carrying the moment rows too (β grid of the global train block)."""
    config["studies"]["quickstart"]["train"]["estimators"] = [*config["train"]["estimators"], "moment"]
    return config


# (dotted key, bad value, words the error's FIRST line must contain; the first is the key it starts with)
REFUSALS = [
    # non-finite numbers, wherever they are (YAML .nan, .inf, -.inf)
    ("train.lr", NAN, ["train.lr", "nan"]),
    ("train.lr", INF, ["train.lr", "inf"]),
    ("train.lr", -INF, ["train.lr", "-inf"]),
    ("studies.quickstart.train.lr", NAN, ["studies.quickstart.train.lr", "nan"]),
    ("studies.quickstart.train.lr", INF, ["studies.quickstart.train.lr", "inf"]),
    ("studies.quickstart.regime_overrides.mini.train.lr", NAN,
     ["studies.quickstart.regime_overrides.mini.train.lr", "nan"]),
    ("studies.quickstart.regime_overrides.mini.train.lr", INF,
     ["studies.quickstart.regime_overrides.mini.train.lr", "inf"]),
    ("studies.batch_sweep.regime_overrides.mini-b8.train.lr", -INF,
     ["studies.batch_sweep.regime_overrides.mini-b8.train.lr", "-inf"]),
    ("train.betas", [0.1, NAN, 0.5], ["train.betas[1]", "nan"]),
    ("train.momentum", NAN, ["train.momentum", "nan"]),
    ("train.weight_decay", INF, ["train.weight_decay", "inf"]),
    ("report.confidence", NAN, ["report.confidence", "nan"]),
    # fractions that leave a part with fewer samples than classes. By hand: digits' test part of
    # 0.001 is ceil(1.797) = 2 samples; with the default test_fraction 0.3 its training part is
    # 1797 - ceil(539.1) = 1257, and 0.0001 of that is ceil(0.1257) = 1 validation sample.
    ("split.validation_fraction", 0.0001,
     ["split.validation_fraction", "0.0001", "1 sample ", "'digits'", "10 classes"]),
    ("split.validation_fraction", 0.0071, ["split.validation_fraction", "0.0071", "9 samples"]),  # ceil(8.92)
    ("split.validation_fraction", 0.993, ["split.validation_fraction", "0.993", "8 samples"]),  # 1257 - 1249
    ("datasets.digits.test_fraction", 0.001,
     ["datasets.digits.test_fraction", "0.001", "2 samples", "10 classes"]),
    ("datasets.digits.test_fraction", 0.005, ["datasets.digits.test_fraction", "0.005", "9 samples"]),  # ceil(8.985)
    ("datasets.digits.test_fraction", 0.9995,
     ["datasets.digits.test_fraction", "0.9995", "0 samples"]),  # 1797 - ceil(1796.1)
    # the report's ESM estimator: a row no run of the study carries
    ("report.esm_estimator", "moment-0.1", ["report.esm_estimator", "moment-0.1", "studies.quickstart"]),
    ("report.esm_estimator", "static-0.15", ["report.esm_estimator", "static-0.15", "studies.quickstart"]),
    ("report.esm_estimator", "static-0.10", ["report.esm_estimator", "static-0.10"]),  # typos the schema's
    ("report.esm_estimator", "static-01", ["report.esm_estimator", "static-01"]),      # pattern lets through
    ("studies.quickstart.report.esm_estimator", "moment-0.1",
     ["studies.quickstart.report.esm_estimator", "moment-0.1"]),
    ("studies.quickstart.report.esm_estimator", "dmbn-sigma",
     ["studies.quickstart.report.esm_estimator", "dmbn-sigma"]),
    ("studies.batch_sweep.report.esm_estimator", "moment-0.15",
     ["studies.batch_sweep.report.esm_estimator", "moment-0.15"]),
    # a rounding reference that trains other runs, or lacks some of the study's
    ("studies.quickstart.rounding_of", "mlp", ["studies.quickstart.rounding_of", "'mlp'", "digits"]),
    ("studies.mlp_threads.rounding_of", "mlp_fashion", ["studies.mlp_threads.rounding_of", "'mlp_fashion'", "mnist"]),
]


@pytest.mark.parametrize("key, value, words", REFUSALS, ids=[f"{k}={v}" for k, v, _ in REFUSALS])
def test_a_config_that_cannot_work_is_refused_naming_key_and_value_first(key, value, words):
    first = rejection(setting(base_config(), key, value)).splitlines()[0]
    assert first.startswith(words[0] + ":") or first.startswith(words[0] + " "), first
    for word in words:
        assert word in first, f"{word!r} not in the first line: {first}"
    assert "{'" not in first and len(first) < 300, f"a config dump, not a message: {first}"


ROWS = [  # (dotted key, value, the rows the message must name: its β grid and single rows, by hand)
    ("report.esm_estimator", "static-0.15", "static-β for β in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], "
                                            "dmbn, cma, precise, recalibrated"),
    ("studies.batch_sweep.report.esm_estimator", "moment-0.15",
     "static-β, horizon-β, moment-β for β in [0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1], "
     "dmbn, cma, precise, recalibrated, dmbn-causal, dmbn-sigma, dmbn-mu-sigma"),  # no test-batch: no ESM
]


@pytest.mark.parametrize("key, value, rows", ROWS, ids=[f"{k}={v}" for k, v, _ in ROWS])
def test_a_refused_esm_estimator_names_the_rows_the_study_carries(key, value, rows):
    assert rows in rejection(setting(base_config(), key, value))


def test_a_default_esm_estimator_the_study_lacks_is_refused_and_the_rows_are_named():
    config = base_config()
    config["studies"]["quickstart"]["train"]["estimators"] = ["static", "cma"]  # no DMBN
    message = rejection(config)
    assert message.startswith("report.esm_estimator (the default): 'dmbn'"), message
    assert "static-β for β in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], cma." in message
    assert "studies.quickstart.report.esm_estimator" in message  # what to do


def test_an_esm_estimator_missing_from_one_regime_names_that_regime():
    config = moment_study(base_config())
    config["studies"]["quickstart"]["regime_overrides"]["full"] = {"train": {"estimators": ["static", "dmbn"]}}
    first = rejection(setting(config, "studies.quickstart.report.esm_estimator", "moment-0.1")).splitlines()[0]
    assert first.startswith("studies.quickstart.report.esm_estimator: 'moment-0.1'") and "'full'" in first, first


@pytest.mark.parametrize("estimator", ["dmbn", "static-0.1", "static-0.9", "cma", "precise", "recalibrated",
                                       "moment-0.5"])
def test_an_esm_estimator_every_run_carries_passes(estimator):
    config = setting(moment_study(base_config()), "studies.quickstart.report.esm_estimator", estimator)
    validate(config, SCHEMA)
    check(config)


def test_the_shipped_wide_beta_grid_passes_its_own_rows():
    config = setting(base_config(), "studies.batch_sweep.report.esm_estimator", "moment-0.01")
    validate(config, SCHEMA)
    check(config)
    config = setting(config, "studies.batch_sweep.report.esm_estimator", "horizon-1")  # β 1.0 is named 1
    check(config)


EDGES = [  # values at the edge that must pass (by hand: each part holds >= 10 samples)
    ("split.validation_fraction", 0.0072),       # ceil(0.0072 * 1257) = ceil(9.05) = 10
    ("datasets.digits.test_fraction", 0.0051),   # ceil(0.0051 * 1797) = ceil(9.16) = 10
    ("train.lr", 1e300),                         # large, but finite
]


@pytest.mark.parametrize("key, value", EDGES, ids=[f"{k}={v}" for k, v in EDGES])
def test_values_at_the_edge_pass(key, value):
    config = setting(base_config(), key, value)
    validate(config, SCHEMA)
    check(config)


def test_the_largest_validation_fraction_passes_where_the_batch_fits():
    # 1257 - ceil(0.992 * 1257) = 1257 - 1247 = 10 training samples of digits: room for a batch of 10
    config = setting(base_config(), "split.validation_fraction", 0.992)
    config["studies"] = {"quickstart": config["studies"]["quickstart"]}
    config["studies"]["quickstart"]["regimes"] = ["full", "full-heldout"]
    del config["studies"]["quickstart"]["regime_overrides"]
    validate(config, SCHEMA)
    check(config)


def test_a_cifar100_split_needs_a_hundred_validation_samples():
    config = setting(base_config(), "split.validation_fraction", 0.0019)  # digits: ceil(2.39) = 3 < 10
    config["studies"] = {"resnet": config["studies"]["resnet"]}
    config["default_study"] = "resnet"
    # CIFAR-10 and CIFAR-100 both hold 50,000 training samples: ceil(0.0019 * 50000) = 95 samples,
    # enough for CIFAR-10's 10 classes, not for CIFAR-100's 100
    first = rejection(config).splitlines()[0]
    assert first.startswith("split.validation_fraction: 0.0019") and "95 samples" in first, first
    assert "'cifar100'" in first and "100 classes" in first, first
    check(setting(config, "split.validation_fraction", 0.002))  # ceil(100.0) = 100


def test_the_split_sizes_match_what_scikit_learn_demands():
    """The refusals' boundary is scikit-learn's own: one sample fewer than the classes fails there."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    labels = np.arange(1257) % 10
    with pytest.raises(ValueError, match="greater or equal to the number of classes"):
        train_test_split(np.arange(1257), test_size=0.0071, stratify=labels, random_state=0)
    train, test = train_test_split(np.arange(1257), test_size=0.0072, stratify=labels, random_state=0)
    assert len(test) == 10 and len(np.unique(labels[test])) == 10


def test_a_data_root_that_is_a_file_is_refused(tmp_path):
    first = rejection(setting(base_config(), "data_root", str(with_file(tmp_path)))).splitlines()[0]
    assert first.startswith("data_root: ") and "not-a-folder" in first and "not a directory" in first, first


def test_a_data_root_under_a_file_is_refused(tmp_path):
    root = with_file(tmp_path) / "data" / "raw"
    first = rejection(setting(base_config(), "data_root", str(root))).splitlines()[0]
    assert first.startswith("data_root: ") and str(root) in first and "is a file" in first, first


@pytest.mark.parametrize("relative", ["", "new", "new/deeper"])
def test_a_data_root_that_is_or_can_be_a_directory_passes_and_is_not_created(tmp_path, relative):
    root = tmp_path / relative
    check(setting(base_config(), "data_root", str(root)))
    assert root.is_dir() == (relative == "")  # checked, not created


def test_a_rounding_reference_with_other_archs_is_refused():
    config = base_config()
    config["studies"]["mlp_threads"]["archs"] = ["mlp", "resnet50"]
    first = rejection(config).splitlines()[0]
    assert first.startswith("studies.mlp_threads.rounding_of: 'mlp'") and "resnet50" in first, first


def test_a_rounding_reference_lacking_seeds_or_regimes_is_refused():
    config = setting(base_config(), "studies.mlp_threads.regime_overrides.mini.seeds", [1, 6])
    first = rejection(config).splitlines()[0]
    assert first.startswith("studies.mlp_threads.rounding_of: 'mlp'") and "[6]" in first and "'mini'" in first, first
    config = setting(base_config(), "studies.mlp_threads.regimes", ["mini", "full-heldout", "mini-b8"])
    first = rejection(config).splitlines()[0]
    assert first.startswith("studies.mlp_threads.rounding_of: 'mlp'") and "'mini-b8'" in first, first


def test_the_shipped_rounding_study_passes():
    """mlp_threads: mlp's data sets, one of its archs, its regimes, some of its seeds."""
    config = base_config()
    validate(config, SCHEMA)
    check(config)
    assert config["studies"]["mlp_threads"]["rounding_of"] == "mlp"


def test_layers_of_a_bn_bfn_only_study_are_checked_against_the_bn_bfn_network():
    # depth 6: the BN-BFN MLP has (6 + 1) // 2 = 3 BN layers, the figures plot its layers
    config = setting(base_config(), "studies.quickstart.archs", ["mlp-bnbfn"])
    first = rejection(config).splitlines()[0]
    assert first.startswith("studies.quickstart.report.beta_layer: layer 5") and "'mlp-bnbfn'" in first, first
    config = setting(config, "studies.quickstart.report", {"beta_layer": 3, "esm_layers": [1, 3]})
    check(config)


def test_snakemake_refuses_a_file_data_root_and_a_nan_lr_before_any_job(tmp_path):
    """Real runs: nothing is planned or written; the message names the key."""
    config = quickstart_config(tmp_path)
    config["data_root"] = str(with_file(tmp_path))
    result = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "data_root: " in output and "not a directory" in output, output[-3000:]
    assert "NotADirectoryError" not in output
    assert not (tmp_path / "results").exists()

    # lr: .nan in a --configfile merged over a valid one, as YAML writes it
    base = write_config(tmp_path, quickstart_config(tmp_path))
    extra = tmp_path / "nan.yaml"
    extra.write_text("studies:\n  quickstart:\n    train: {lr: .nan}\n")
    result = snakemake(tmp_path, base, "--configfile", str(base), str(extra), "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "studies.quickstart.train.lr: nan is not a finite number" in output, output[-3000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()
