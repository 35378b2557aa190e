"""Per-regime settings of a study, and the checks that reject a study before any job runs."""

import copy

import pytest

from dmbn.config import ConfigError, check, report_settings, study_seeds, study_train, train_config

from conftest import base_config


def config_with(**study) -> dict:
    config = copy.deepcopy(base_config())
    config["studies"]["quickstart"].update(study)
    return config


def test_regime_overrides_change_seeds_and_settings_of_one_regime_only():
    config = config_with(seeds=[1, 2], train={"epochs": 7},
                         regimes=["mini", "full"],
                         regime_overrides={"full": {"seeds": [1, 2, 3], "train": {"lr": 0.05}}})
    check(config)
    assert study_seeds(config, "quickstart", "mini") == [1, 2]
    assert study_seeds(config, "quickstart", "full") == [1, 2, 3]
    assert study_train(config, "quickstart", "full")["lr"] == 0.05
    assert study_train(config, "quickstart", "mini")["lr"] == config["train"]["lr"]
    assert study_train(config, "quickstart", "full")["epochs"] == 7  # the study's own, underneath


@pytest.mark.parametrize("regime, batch_size", [("mini", 100), ("full", None), ("full-heldout", None)])
def test_full_batch_regimes_train_with_one_batch(regime, batch_size):
    config = base_config()
    cfg = train_config(study_train(config, "quickstart", regime), regime, seed=3, device="cpu")
    assert cfg.batch_size == batch_size and cfg.seed == 3


@pytest.mark.parametrize("study, first_line", [
    (dict(regime_overrides={"full-heldout": {"seeds": [1]}}, regimes=["mini"]),
     "studies.quickstart.regime_overrides.full-heldout: the study has no regime 'full-heldout'"),
    (dict(rounding_of="nonexistent"), "studies.quickstart.rounding_of: 'nonexistent' is not another study"),
    (dict(rounding_of="quickstart"), "studies.quickstart.rounding_of: 'quickstart' is not another study"),
])
def test_bad_study_is_rejected_naming_key_and_value(study, first_line):
    with pytest.raises(ConfigError) as error:
        check(config_with(**study))
    assert str(error.value).splitlines()[0].startswith(first_line)


def test_a_study_plots_its_own_layers_checked_against_its_network():
    config = base_config()
    check(config)  # the shipped quickstart: 6 layers, its own report layers
    assert report_settings(config, "quickstart")["beta_layer"] == 5
    assert report_settings(config, "mlp")["beta_layer"] == report_settings(config)["beta_layer"] == 18
    shallow = config_with(report={"beta_layer": 7})
    with pytest.raises(ConfigError) as error:
        check(shallow)
    assert str(error.value).startswith("studies.quickstart.report.beta_layer: layer 7 does not exist")
    del shallow["studies"]["quickstart"]["report"]  # the global layers (18) do not fit depth 6
    with pytest.raises(ConfigError, match=r"^report\.beta_layer: layer 18 does not exist in studies\.quickstart"):
        check(shallow)
