"""dmbn.shift against direct computations: a corrupted set read back only while its md5 holds,
each row's accuracy on a shifted set as computed without the module (statistics loaded by hand,
train-mode BN over the stream's batches, dmbn.recalibrate for the oracle), and ESM from layer
inputs captured with hooks and the norms written out here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import dmbn
from dmbn.shift import ShiftSetError, read_set, score_shifted_set, set_digest, write_set
from dmbn.statistics import EstimatorStatistics, LayerLayout
from dmbn.streams import stream

torch.manual_seed(0)


def test_a_set_is_read_back_only_while_its_md5_holds(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    path, md5 = tmp_path / "severity1.npy", tmp_path / "severity1.md5"
    digest = write_set(images, path, md5)
    import hashlib

    assert digest == hashlib.md5(path.read_bytes()).hexdigest() and md5.read_text().split() == [digest, path.name]
    assert set_digest(read_set(path, md5)) == set_digest(images)
    tampered = images.copy()
    tampered[2, 3, 4] ^= 1
    np.save(path, tampered)
    with pytest.raises(ShiftSetError, match=r"severity1\.npy: md5 .* does not match .*rm "):
        read_set(path, md5)


def network(layers: int = 2) -> nn.Sequential:
    """A small BN MLP on 1x4x4 inputs whose running statistics are far from any batch's."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 6), nn.BatchNorm1d(6), nn.ReLU(),
                          nn.Linear(6, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    for bn in (model[2], model[5]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 3)
    return model.eval()


def two_estimators(model: nn.Sequential) -> EstimatorStatistics:
    layout = LayerLayout.of(model)
    mean = torch.randn(2, layout.channels)
    var = torch.rand(2, layout.channels) + 0.5
    return EstimatorStatistics(["static-0.1", "cma"], mean, var, layout)


SETTINGS = {"streams": ["iid", "class-sorted", "dirichlet"], "alpha": 0.1, "prior": 16.0, "seed": 3,
            "rules": ["test-batch", "source-target-mix", "robust-ema", "decaying-momentum", "target-recalibrated"]}
X = torch.randn(60, 1, 4, 4) * 1.5 + 0.7  # "shifted": other moments than the statistics above
Y = torch.arange(60) % 3


def test_a_source_row_is_the_accuracy_with_its_statistics_loaded():
    torch.manual_seed(1)
    model = network()
    statistics = two_estimators(model)
    accuracy, _ = score_shifted_set(model, statistics, X, Y, SETTINGS, batch_size=10)
    got = {r["row"]: r["accuracy"] for r in accuracy if r["family"] == "source"}
    for i, name in enumerate(statistics.names):
        by_hand = [t.clone() for t in statistics.layout.split(statistics.mean[i])], \
                  [t.clone() for t in statistics.layout.split(statistics.var[i])]
        for bn, m, v in zip((model[2], model[5]), *by_hand):
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)
        with torch.no_grad():
            expected = (model(X).argmax(1) == Y).double().mean().item()
        assert got[name] == pytest.approx(expected)


def test_test_batch_on_a_stream_is_train_mode_bn_over_its_batches_in_order():
    torch.manual_seed(2)
    model = network()
    accuracy, _ = score_shifted_set(model, two_estimators(model), X, Y, SETTINGS, batch_size=10)
    got = {r["stream"]: r["accuracy"] for r in accuracy if r["row"] == "test-batch"}
    for order in SETTINGS["streams"]:
        index = torch.from_numpy(stream(order, Y.numpy(), SETTINGS["seed"], SETTINGS["alpha"]))
        hand = network()
        hand.load_state_dict(model.state_dict())
        hand.train()  # every BN normalises each batch with its own biased statistics
        with torch.no_grad():
            predicted = torch.cat([hand(X[index][k:k + 10]).argmax(1) for k in range(0, 60, 10)])
        assert got[order] == pytest.approx((predicted == Y[index]).double().mean().item()), order
    assert set(got) == set(SETTINGS["streams"])


def test_the_oracle_is_dmbn_recalibrate_on_the_whole_shifted_set():
    torch.manual_seed(3)
    model = network()
    accuracy, _ = score_shifted_set(model, two_estimators(model), X, Y, SETTINGS, batch_size=10)
    got = [r for r in accuracy if r["row"] == "target-recalibrated"]
    assert len(got) == 1 and got[0]["stream"] == "any"
    dmbn.recalibrate(model, [X], estimator="recalibrated", batches=None)
    with torch.no_grad():
        expected = (model.eval()(X).argmax(1) == Y).double().mean().item()
    assert got[0]["accuracy"] == pytest.approx(expected)


def test_esm_is_against_the_shifted_sets_own_layer_inputs():
    """ESM_μ = ‖μ̂ − μ̃‖, ESM_σ = ‖σ̂ − σ̃‖ per layer, μ̃, σ̃² (unbiased) of each BN layer's input on
    the shifted set with the estimator's statistics loaded: captured here with hooks."""
    torch.manual_seed(4)
    model = network()
    statistics = two_estimators(model)
    _, esm = score_shifted_set(model, statistics, X, Y, SETTINGS, batch_size=10)
    for i, name in enumerate(statistics.names):
        means = statistics.layout.split(statistics.mean[i])
        variances = statistics.layout.split(statistics.var[i])
        captured = []
        for bn, m, v in zip((model[2], model[5]), means, variances):
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)
        handles = [bn.register_forward_pre_hook(lambda module, inputs: captured.append(inputs[0].double()))
                   for bn in (model[2], model[5])]
        with torch.no_grad():
            model(X)
        for handle in handles:
            handle.remove()
        for layer, (h, m, v) in enumerate(zip(captured, means, variances), start=1):
            row = next(r for r in esm if r["estimator"] == name and r["layer"] == layer)
            assert row["esm_mu"] == pytest.approx((m.double() - h.mean(0)).norm().item(), rel=1e-5)
            assert row["esm_sigma"] == pytest.approx((v.double().sqrt() - h.var(0).sqrt()).norm().item(), rel=1e-5)


def test_a_subset_of_test_samples_is_seeded_distinct_and_the_same_for_every_call():
    from dmbn.shift import scored_samples

    first = scored_samples(1000, 200, seed=0)
    assert len(set(first.tolist())) == 200 and first.max() < 1000 and np.all(np.diff(first) > 0)
    assert np.array_equal(first, scored_samples(1000, 200, seed=0))
    assert not np.array_equal(first, scored_samples(1000, 200, seed=1))
    assert np.array_equal(scored_samples(50, None, seed=0), np.arange(50))


def test_the_published_esm_summary_holds_each_layers_esm_mu_in_its_own_column():
    from dmbn.shift import esm_mu_by_layer

    labels = dict(dataset="d", regime="mini-b16", arch="mlp", seed=1)
    long = pd.DataFrame([dict(labels, corruption=c, severity=s, layer=layer, estimator=e,
                              esm_mu=100 * layer + 10 * s + (e == "dmbn"), esm_sigma=-1.0)
                         for c in ("fog", "blur") for s in (1, 5) for e in ("static-0.1", "dmbn") for layer in (1, 2, 3)])
    wide = esm_mu_by_layer(long)
    assert len(wide) == 2 * 2 * 2 and list(wide.columns[-3:]) == ["l1", "l2", "l3"]
    for row in wide.itertuples():
        for layer in (1, 2, 3):  # the value written for that cell above, never ESM_σ
            assert getattr(row, f"l{layer}") == 100 * layer + 10 * row.severity + (row.estimator == "dmbn")
    assert "esm_sigma" not in wide
