"""The training loop's wiring, checked from a run's files (and from the settings that make a run):
β* is the argmin of the logged ESM, the recalibrated ESM is zero, PreciseBN gets its batches,
layers.csv names the norm positions."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
import yaml

import dmbn.estimators
from dmbn.config import members, study_train, train_config
from dmbn.names import static_name, training_seed
from dmbn.models import build_model
from dmbn.train import TrainConfig, layer_table, train_run, write_run

from conftest import ROOT, tiny_data

# 240 training samples in batches of 40: six steps per epoch; PreciseBN asks for more batches than
# one epoch has, so its batches run on into a second shuffled epoch.
CONFIG = TrainConfig(epochs=2, batch_size=40, precise_batches=8, seed=3)
STEPS_PER_EPOCH = 6


class PreciseSpy:
    """Wraps ``precise_pass`` (PreciseBN's one pass): what batches it got and how many train-mode forwards it ran."""

    def __init__(self, original):
        self.original, self.batches, self.forwards = original, [], 0

    def __call__(self, model, batches):
        self.batches = list(batches)

        def count(module, inputs, output):
            self.forwards += module.training

        handle = model.register_forward_hook(count)
        try:
            return self.original(model, iter(self.batches))
        finally:
            handle.remove()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny bank run, written to disk, and what PreciseBN saw during it."""
    folder = tmp_path_factory.mktemp("run")
    patch = pytest.MonkeyPatch()
    spy = PreciseSpy(dmbn.estimators.precise_pass)  # what PreciseBN calls
    patch.setattr(dmbn.estimators, "precise_pass", spy)
    try:
        torch.manual_seed(3)
        data = tiny_data()
        model = build_model("mlp", data.input_shape, data.num_classes, depth=4, width=16)
        write_run(train_run(model, data, CONFIG), folder)
    finally:
        patch.undo()
    return folder, spy, data


def test_beta_star_is_the_argmin_of_the_static_esm_rows_ties_to_the_smaller_beta(run):
    folder = run[0]
    esm = pd.read_csv(folder / "esm.csv")
    betas = pd.read_csv(folder / "betas.csv")
    static = esm[esm.estimator.str.startswith("static-")].assign(
        beta=lambda f: f.estimator.str.removeprefix("static-").astype(float))
    assert static.groupby(["epoch", "layer"]).size().eq(9).all()  # all nine candidates logged
    expected = (static.sort_values(["epoch", "layer", "esm_mu", "beta"])  # smallest ESM, then smallest β
                .groupby(["epoch", "layer"]).first().beta)
    got = betas.set_index(["epoch", "layer"]).beta
    assert len(got) == CONFIG.epochs * 4
    pd.testing.assert_series_equal(got.sort_index(), expected.sort_index(), check_names=False)
    assert got.nunique() > 1  # the choice varies, so the check compares real choices


def test_recalibrated_estimator_has_zero_esm(run):
    esm = pd.read_csv(run[0] / "esm.csv")
    last = esm[esm.epoch == CONFIG.epochs]
    recalibrated = last[last.estimator == "recalibrated"]
    assert len(recalibrated) == 4
    assert (recalibrated.esm_mu < 1e-5).all() and (recalibrated.esm_sigma < 1e-5).all()
    others = last[last.estimator.isin(["precise", "static-0.1", "dmbn"])]
    assert (others.esm_mu > 1e-3).all()  # the same yardstick is not zero for the others
    assert set(esm[esm.epoch < CONFIG.epochs].estimator).isdisjoint({"recalibrated", "precise"})


def test_precise_bn_sees_the_configured_number_of_training_batches(run):
    _, spy, data = run
    assert len(spy.batches) == CONFIG.precise_batches
    assert spy.forwards == CONFIG.precise_batches  # train-mode forwards during PreciseBN
    assert all(len(b) == CONFIG.batch_size for b in spy.batches)
    rows = {tuple(r.tolist()) for r in data.x_train.flatten(1)}
    assert all(tuple(r.tolist()) in rows for b in spy.batches for r in b.flatten(1))
    # past one epoch's six batches: a fresh shuffle, so every sample once among the first six
    first_epoch = torch.cat(spy.batches[:STEPS_PER_EPOCH]).flatten(1)
    assert len({tuple(r.tolist()) for r in first_epoch}) == len(data.y_train)


def test_full_batch_precise_bn_gets_the_whole_training_set_once(monkeypatch):
    spy = PreciseSpy(dmbn.estimators.precise_pass)  # what PreciseBN calls
    monkeypatch.setattr(dmbn.estimators, "precise_pass", spy)
    data = tiny_data()
    model = build_model("mlp", data.input_shape, data.num_classes, depth=2, width=8)
    train_run(model, data, TrainConfig(epochs=1, batch_size=None, precise_batches=5, seed=1))
    assert len(spy.batches) == 1 and spy.forwards == 1
    assert torch.equal(spy.batches[0].sort(dim=0).values, data.x_train.sort(dim=0).values)


@pytest.mark.parametrize("arch, layers, positions", [("mlp", [1, 2, 3, 4], [1, 2, 3, 4]),
                                                     ("mlp-bnbfn", [1, 2], [1, 3])])
def test_layers_csv_gives_each_bn_layers_position_among_all_norm_layers(tmp_path, arch, layers, positions):
    data = tiny_data()
    model = build_model(arch, data.input_shape, data.num_classes, depth=4, width=16)
    write_run(train_run(model, data, TrainConfig(epochs=1, batch_size=60, precise_batches=1)), tmp_path)
    table = pd.read_csv(tmp_path / "layers.csv")
    assert table.layer.tolist() == layers and table.position.tolist() == positions
    # MLP hidden layer k is module "k" (after the Flatten at 0); its norm is "k.norm"
    assert table.name.tolist() == [f"{p}.norm" for p in positions]
    assert (table.channels == 16).all()
    assert sorted(pd.read_csv(tmp_path / "esm.csv").layer.unique()) == layers


def test_resnet_layer_table_counts_stem_bottlenecks_and_projections():
    model = build_model("resnet50-xbnblock-p2", (1, 8, 8), 3, resnet_blocks=(1, 1, 1, 1), resnet_channels=4)
    table = layer_table(model)  # what write_run puts in layers.csv
    # all norms in forward order: stem GN, then per block bn1, bn2 (GN), bn3, downsample BN
    kinds = ["gn"] + ["bn", "gn", "bn", "bn"] * 4
    bn_positions = [i + 1 for i, k in enumerate(kinds) if k == "bn"]
    assert table.position.tolist() == bn_positions and table.layer.tolist() == list(range(1, 13))
    assert table.name.tolist()[:3] == ["layer1.0.bn1", "layer1.0.bn3", "layer1.0.downsample.1"]


# -- the settings of a run -----------------------------------------------------------------------------

@pytest.fixture
def config():
    with open(ROOT / "config.yaml") as handle:
        config = yaml.safe_load(handle)
    config = copy.deepcopy(config)
    config["train"].update(lr=0.5, batch_size=64, betas=[0.1, 0.2, 0.3], epochs=7)
    config["studies"]["s"] = {"datasets": ["digits"], "regimes": ["mini", "full"], "archs": ["mlp"],
                              "seeds": [1], "train": {"lr": 0.2, "betas": [0.4, 0.8], "depth": 3}}
    return config


def test_study_train_is_the_global_block_updated_by_the_studys_own(config):
    train = study_train(config, "s")
    assert train["lr"] == 0.2 and train["betas"] == [0.4, 0.8] and train["depth"] == 3
    assert train["batch_size"] == 64 and train["epochs"] == 7  # not overridden: the global value
    assert config["train"]["lr"] == 0.5  # the global block itself is untouched


def test_train_config_per_regime_member_and_seed(config):
    train = study_train(config, "s")
    mini = train_config(train, "mini", seed=4, device="cpu")
    assert (mini.batch_size, mini.lr, mini.epochs, mini.seed, mini.device) == (64, 0.2, 7, 4, "cpu")
    assert mini.betas == (0.4, 0.8) and mini.separate_beta is None
    assert isinstance(mini.estimators, tuple) and mini.estimators == tuple(train["estimators"])
    for regime in ("full", "full-heldout"):
        assert train_config(train, regime, seed=4, device="cpu").batch_size is None  # full batch
    separate = train_config(train, "mini", seed=4, device="cuda", member="static-0.8")
    assert separate.separate_beta == 0.8 and separate.device == "cuda"
    assert not hasattr(separate, "depth")  # model settings build the model, not the run


def test_members_are_the_bank_plus_one_run_per_static_beta_under_the_separate_protocol(config):
    assert members(config, "s") == ["bank"]
    config["studies"]["s"]["protocol"] = "separate"
    assert members(config, "s") == ["bank", "static-0.4", "static-0.8"]
    config["studies"]["s"]["train"].pop("betas")
    assert members(config, "s") == ["bank", "static-0.1", "static-0.2", "static-0.3"]


def test_the_independent_protocol_has_the_same_members_each_from_its_own_seed(config):
    config["studies"]["s"]["protocol"] = "independent"
    assert members(config, "s") == ["bank", "static-0.4", "static-0.8"]
    # by hand: seed · 10,000 + 1,000 · β; the bank and the separate protocol keep the study's seed
    assert [training_seed(3, m, "independent") for m in members(config, "s")] == [3, 30400, 30800]
    assert [training_seed(3, m, "separate") for m in members(config, "s")] == [3, 3, 3]
    grid = [training_seed(s, static_name(b), "independent") for s in range(1, 11)
            for b in (0.001, 0.01, 0.1, 0.5, 0.999, 1.0)]
    assert len(set(grid)) == len(grid) and not set(grid) & set(range(1, 11))  # no two networks share one
