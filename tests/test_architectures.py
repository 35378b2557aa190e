"""Architectures from one registry (dmbn.names.ARCHITECTURES): the schema's enum, the `arch`
wildcard, the BN/BN-BFN pairs, the BN-layer counts, each run's identity and the config checks
derive from it; a retired key and a width without a whole GroupNorm group count are refused
before any job, naming the key."""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import ROOT, base_config
from dmbn.config import ConfigError, arch_train, study_train, validate, with_registries
from dmbn.models import build_model
from dmbn.names import ARCH_PATTERN, ARCHITECTURES, BATCH_FREE_ARCHS, BATCH_NORM_ARCHS, batchnorm_count
from dmbn.statistics import batchnorm_layers
from test_config_refusals import setting
from test_reliability import SCHEMA, rejection

SMALL = {"depth": 5, "width": 8, "batch_free": "layernorm", "groups": 1, "resnet_blocks": [2, 1, 1, 1],
         "resnet_channels": 8, "xbn_groups": 64}


def test_the_schema_enum_and_the_wildcard_come_from_the_registry():
    schema = with_registries(yaml.safe_load(SCHEMA.read_text()))
    assert schema["$defs"]["arch"]["enum"] == list(ARCHITECTURES)
    assert "resnet50" not in SCHEMA.read_text().split("archs:")[1].split("seeds:")[0]  # not written there
    for name in ARCHITECTURES:
        assert re.fullmatch(ARCH_PATTERN, name)
    for other in ("mlp-bnbfn2", "resnet5", "resnet18", "mlp-"):
        assert not re.fullmatch(ARCH_PATTERN, other)
    assert "arch=ARCH_PATTERN" in (ROOT / "workflow/rules/common.smk").read_text()
    error = rejection(setting(base_config(), "studies.quickstart.archs", ["resnet18"]))
    assert "studies.quickstart.archs[0]" in error and "resnet18" in error


def test_twins_pair_each_bn_network_with_its_batch_free_hybrid():
    assert BATCH_NORM_ARCHS == {"mlp": "mlp-bnbfn", "resnet50": "resnet50-xbnblock-p2"}
    assert BATCH_FREE_ARCHS == {"mlp-bnbfn": "mlp", "resnet50-xbnblock-p2": "resnet50"}


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_the_registrys_bn_layer_count_is_what_the_built_network_has(arch):
    model = build_model(arch, (3, 16, 16), 4, **{k: v for k, v in SMALL.items() if k in ARCHITECTURES[arch].settings})
    assert batchnorm_count(arch, SMALL) == len(batchnorm_layers(model))


def test_a_run_carries_only_its_own_networks_settings():
    train = study_train(base_config(), "quickstart")
    mlp, bnbfn, resnet = (arch_train(train, a) for a in ("mlp", "mlp-bnbfn", "resnet50"))
    assert not {"resnet_blocks", "resnet_channels", "xbn_groups", "batch_free", "groups"} & set(mlp)
    assert {"depth", "width", "batch_free", "groups"} <= set(bnbfn)
    assert {"resnet_blocks", "resnet_channels"} <= set(resnet) and not {"depth", "width"} & set(resnet)
    assert mlp["lr"] == train["lr"] and mlp["epochs"] == train["epochs"]  # training settings stay
    wider = arch_train({**train, "resnet_channels": 16}, "mlp")
    assert wider == mlp  # a ResNet setting changes nothing of an MLP run's identity


@pytest.mark.parametrize("path", ["train.resnet_width", "studies.resnet.train.resnet_width",
                                  "studies.quickstart.regime_overrides.mini.train.resnet_width"])
def test_the_retired_resnet_width_is_refused_naming_its_successor(path):
    config = setting(base_config(), path, 16)
    with pytest.raises(ConfigError) as error:
        validate(config, SCHEMA)
    message = str(error.value)
    assert message.startswith(f"{path}: this key is retired")
    assert f"{path.removesuffix('resnet_width')}resnet_channels" in message and "width_per_group" in message


@pytest.mark.parametrize("channels, groups, ok", [(64, 64, True), (16, 64, True), (3, 32, False), (8, 48, False)])
def test_the_config_check_refuses_a_width_without_a_whole_group_count(channels, groups, ok):
    config = setting(setting(base_config(), "studies.resnet.train.resnet_channels", channels),
                     "studies.resnet.train.xbn_groups", groups)
    if ok:
        validate(config, SCHEMA)
        from dmbn.config import check

        check(config)
        return
    first = rejection(config).splitlines()[0]
    assert first.startswith("studies.resnet.train.resnet_channels / xbn_groups:"), first
    assert f"resnet_channels {channels}" in first
