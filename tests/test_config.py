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


def test_a_study_in_parts_is_one_study_per_seed_in_its_place():
    """``parts: seed`` gives ``<name>_s<seed>`` for each seed, each the study with that seed
    alone and nothing else changed (a hand-written copy per seed, as config.yaml held before),
    in the study's place; a part's name that another study has is refused, naming both."""
    from dmbn.config import expand_parts

    config = base_config()
    template = config["studies"]["quickstart"]
    config["studies"] = {"first": copy.deepcopy(template), "split": {**copy.deepcopy(template), "parts": "seed",
                                                                     "seeds": [4, 7]},
                         "last": copy.deepcopy(template)}
    config["default_study"] = "first"
    by_hand = {f"split_s{seed}": {**copy.deepcopy(template), "seeds": [seed]} for seed in (4, 7)}
    assert expand_parts(config) == {"split": ["split_s4", "split_s7"]}
    assert list(config["studies"]) == ["first", "split_s4", "split_s7", "last"]
    assert {name: config["studies"][name] for name in by_hand} == by_hand
    config["studies"]["split_s4"]["train"]["epochs"] = 99  # each part owns its settings
    assert config["studies"]["split_s7"]["train"].get("epochs") != 99
    check(config)

    clash = base_config()
    clash["studies"]["quickstart"]["parts"] = "seed"
    clash["studies"]["quickstart_s2"] = copy.deepcopy(clash["studies"]["quickstart"])
    with pytest.raises(ConfigError, match="studies.quickstart.parts: its part for seed 2, quickstart_s2, is also a study"):
        expand_parts(clash)
    default = base_config()
    default["studies"]["quickstart"]["parts"] = "seed"
    with pytest.raises(ConfigError, match=r"default_study: 'quickstart' is published in parts \(quickstart_s1, "):
        expand_parts(default)


def test_a_study_in_parts_plans_each_part_in_its_own_folder_under_its_name(tmp_path):
    """A real dry run: the study's name builds every part, and one part's name that part alone."""
    from conftest import planned_rules, snakemake, write_config

    config = base_config()
    config["studies"]["halves"] = {**copy.deepcopy(config["studies"]["quickstart"]), "parts": "seed",
                                  "seeds": [1, 2], "regimes": ["mini"], "archs": ["mlp"]}
    path = write_config(tmp_path, config)
    whole = snakemake(tmp_path, path, "-n", "--cores", "1", "halves")
    assert planned_rules(whole)["train"] == 2
    text = whole.stdout + whole.stderr
    for seed in (1, 2):
        assert f"results/halves_s{seed}/runs/digits/mini/mlp/seed{seed}/bank" in text
    assert "results/halves/" not in text
    one = snakemake(tmp_path, path, "-n", "--cores", "1", "halves_s2")
    assert planned_rules(one)["train"] == 1
    assert "results/halves_s1/" not in one.stdout + one.stderr


def test_a_study_named_like_a_rule_is_refused_naming_the_key(tmp_path):
    """`split` is the workflow's data-split rule: a study of that name would take its target name."""
    from conftest import snakemake, write_config

    config = base_config()
    config["studies"]["split"] = copy.deepcopy(config["studies"]["quickstart"])
    refused = snakemake(tmp_path, write_config(tmp_path, config), "-n", "--cores", "1", check=False)
    assert refused.returncode != 0
    assert "studies.split: a study cannot be named like one of the workflow's rules (split)" in refused.stdout + refused.stderr
