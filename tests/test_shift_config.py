"""Issue #29, item 7: a `shift` block that cannot work is refused before any job, naming the key;
the block's enums come from the code's own tables (dmbn.corruptions, dmbn.streams,
dmbn.names.SHIFT_RULES), and a shift study on data the corruptions are not written for is refused."""

from __future__ import annotations

import pytest

from dmbn.config import check, shift_defaults, shift_settings, validate

from conftest import base_config, quickstart_config, snakemake, write_config
from test_config_refusals import setting
from test_reliability import SCHEMA, rejection

# (dotted key, bad value, words the error's FIRST line must contain; the first is the key it starts with)
REFUSALS = [
    ("shift.corruptions", ["gaussian_noise", "fog"], ["shift.corruptions[1]", "'fog'"]),
    ("shift.corruptions", ["Gaussian_noise"], ["shift.corruptions[0]", "'Gaussian_noise'"]),
    ("shift.corruptions", [], ["shift.corruptions", "[]"]),
    ("shift.severities", [0], ["shift.severities[0]", "0"]),
    ("shift.severities", [1, 6], ["shift.severities[1]", "6"]),
    ("shift.severities", [2.0], ["shift.severities[0]", "2.0"]),   # a float is no severity
    ("shift.streams", ["iid", "sorted"], ["shift.streams[1]", "'sorted'"]),
    ("shift.alpha", 0, ["shift.alpha", "0"]),
    ("shift.alpha", -0.1, ["shift.alpha", "-0.1"]),
    ("shift.alpha", float("nan"), ["shift.alpha", "nan"]),
    ("shift.prior", -1, ["shift.prior", "-1"]),
    ("shift.prior", -0.5, ["shift.prior", "-0.5"]),
    ("shift.rules", ["tent"], ["shift.rules[0]", "'tent'"]),
    ("shift.seed", -1, ["shift.seed", "-1"]),
    ("shift.colour", "red", ["shift.colour", "unknown key"]),
    ("studies.quickstart.shift", "maybe", ["studies.quickstart.shift", "'maybe'"]),  # "yes" reads as true
    # a shift study on 8x8 digits: the corruptions are written for 28x28 grayscale
    ("studies.quickstart.shift", True, ["studies.quickstart.shift", "'digits'", "28x28"]),
]


@pytest.mark.parametrize("key, value, words", REFUSALS, ids=[f"{k}={v}" for k, v, _ in REFUSALS])
def test_a_shift_block_that_cannot_work_is_refused_naming_key_and_value_first(key, value, words):
    first = rejection(setting(base_config(), key, value)).splitlines()[0]
    assert first.startswith(words[0] + ":") or first.startswith(words[0] + " "), first
    for word in words:
        assert word in first, f"{word!r} not in the first line: {first}"


EDGES = [  # values at the edge that must pass
    ("shift.severities", [1]),
    ("shift.severities", [5]),
    ("shift.alpha", 1e-6),
    ("shift.prior", 0),
    ("shift.rules", []),           # source rows only
    ("shift.corruptions", ["translate"]),
]


@pytest.mark.parametrize("key, value", EDGES, ids=[f"{k}={v}" for k, v in EDGES])
def test_shift_values_at_the_edge_pass(key, value):
    config = setting(base_config(), key, value)
    validate(config, SCHEMA)
    check(config)


def test_the_enums_are_the_code_tables():
    """What the config may name is what the library has: written out here by hand, from MNIST-C's
    list (google-research/mnist-c, with speckle noise from its ALL_CORRUPTIONS, less fog, frost, snow, spatter, dotted/zigzag lines, stripe and
    canny edges, which need images or ImageMagick) and the issue's rules."""
    defaults = shift_defaults()
    assert sorted(defaults["corruptions"]) == sorted([
        "gaussian_noise", "shot_noise", "impulse_noise", "gaussian_blur", "glass_blur", "motion_blur",
        "contrast", "brightness", "pixelate", "jpeg_compression", "elastic_transform", "rotate", "shear",
        "scale", "translate", "speckle_noise"])
    assert defaults["severities"] == [1, 2, 3, 4, 5]
    from dmbn.streams import STREAMS
    from dmbn.test_time import RULES

    assert defaults["streams"] == list(STREAMS)
    assert defaults["rules"] == ["test-batch", "source-target-mix", "robust-ema", "decaying-momentum",
                                 "target-recalibrated"]
    assert set(defaults["rules"]) - {"target-recalibrated"} == set(RULES)  # one class per rule row


def test_the_shipped_block_is_the_defaults_but_a_subset_and_a_missing_block_takes_them():
    config = base_config()
    # the published study's 15: speckle_noise was added to the table after it ran
    every_but_speckle = [c for c in shift_defaults()["corruptions"] if c != "speckle_noise"]
    assert shift_settings(config) == {**shift_defaults(), "test_samples": 2000, "corruptions": every_but_speckle}
    del config["shift"]
    validate(config, SCHEMA)
    check(config)
    assert shift_settings(config) == shift_defaults()


def test_snakemake_refuses_an_unknown_corruption_before_any_job(tmp_path):
    config = quickstart_config(tmp_path)
    config["shift"]["corruptions"] = ["gaussian_noise", "fog"]
    result = snakemake(tmp_path, write_config(tmp_path, config), "--cores", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "shift.corruptions[1]: 'fog'" in output, output[-3000:]
    assert not (tmp_path / "results").exists()


def test_more_test_samples_than_the_test_set_has_are_refused():
    config = setting(base_config(), "studies.mlp_fashion.shift", True)
    first = rejection(setting(config, "shift.test_samples", 10001)).splitlines()[0]
    assert first.startswith("shift.test_samples: 10001") and "10000" in first, first  # FashionMNIST's test set
    check(setting(config, "shift.test_samples", 10000))


@pytest.mark.parametrize("key, value", [("studies.mlp_fashion.train.betas", [0.2, 0.9]),
                                        ("studies.mlp_fashion.regime_overrides", {"full": {"train": {"betas": [0.5]}}})])
def test_a_shift_study_without_the_relative_tables_reference_row_is_refused(key, value):
    # the relative table divides every row's error by static-0.1's (PyTorch's default EMA); the
    # static kind itself the schema requires
    config = setting(setting(base_config(), "studies.mlp_fashion.shift", True), key, value)
    first = rejection(config).splitlines()[0]
    owner = "studies.mlp_fashion.regime_overrides.full" if "overrides" in key else "studies.mlp_fashion"
    assert first.startswith(f"{owner}.train: ") and "'static-0.1'" in first, first
    check(setting(config, key, {"full": {"train": {"betas": [0.1, 0.5]}}}) if "overrides" in key
          else setting(config, key, [*value, 0.1]))


def test_a_studys_own_shift_mapping_narrows_the_block():
    from dmbn.config import shift_studies, study_shift

    own = {"corruptions": ["contrast", "rotate"], "severities": [5], "streams": ["iid"], "test_samples": 300}
    config = setting(base_config(), "studies.mlp_fashion.shift", own)
    validate(config, SCHEMA)
    check(config)
    assert "mlp_fashion" in shift_studies(config)
    block = shift_settings(config)
    # every key the study sets replaces the block's; the rest (alpha, prior, rules, seed) are the block's
    assert study_shift(config, "mlp_fashion") == {"corruptions": ["contrast", "rotate"], "severities": [5],
                                                  "streams": ["iid"], "test_samples": 300, "alpha": block["alpha"],
                                                  "prior": block["prior"], "rules": block["rules"],
                                                  "seed": block["seed"]}
    assert study_shift(setting(config, "studies.mlp_fashion.shift", True), "mlp_fashion") == block
    assert "mlp_fashion" not in shift_studies(setting(config, "studies.mlp_fashion.shift", False))


@pytest.mark.parametrize("key, value, words", [
    ("test_samples", 10001, ["studies.mlp_fashion.shift.test_samples: 10001", "10000"]),
    ("severities", [6], ["studies.mlp_fashion.shift", "6"]),
    ("alpha", 0.5, ["studies.mlp_fashion.shift", "alpha"]),   # the block's alone: not a study's key
    ("regimes", ["mini-b16"], ["studies.mlp_fashion.shift.regimes: 'mini-b16'", "'mini', 'full'"]),
])
def test_a_studys_shift_mapping_that_cannot_work_is_refused(key, value, words):
    config = setting(base_config(), "studies.mlp_fashion.shift", {key: value})
    first = rejection(config).splitlines()[0]
    assert first.startswith(words[0].split(":")[0]) and all(w in first for w in words), first


def test_each_data_sets_manifest_lists_the_sets_of_every_shift_study_on_it_once():
    from dmbn.config import shift_grid

    config = setting(base_config(), "shift.corruptions", ["translate", "gaussian_noise"])
    config = setting(config, "shift.severities", [1, 5])
    config = setting(config, "studies.mlp_fashion.shift", True)  # the block's four sets
    config = setting(config, "studies.cnn_b16.shift", False)  # the config's own CNN block out of the way
    config = setting(config, "studies.cnn.shift", {"corruptions": ["contrast", "gaussian_noise"], "severities": [3, 5]})
    # the corruption table's order (dmbn.corruptions: noise before contrast before geometry), then severity
    assert shift_grid(config, "fashion-mnist") == [
        ("gaussian_noise", 1), ("gaussian_noise", 3), ("gaussian_noise", 5), ("contrast", 3), ("contrast", 5),
        ("translate", 1), ("translate", 5)]
    assert shift_grid(config, "mnist") == []  # no shift study on it
    check(config)  # a study's sets need not be the block's: each is generated when asked for
