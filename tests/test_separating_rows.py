"""Rows that separate the explanations of PreciseBN's small-batch recovery (issue 27), each against a
direct computation: the EMA of the biased batch variance (``static-biased-β``), fvcore's earlier
PreciseBN (``precise-mean-biased`` / ``precise-mean-unbiased``) and the spread of the batch means
(``precise_spread.csv``). BN inputs are collected with forward hooks here and reduced in float64
by hand."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from torch import nn

from dmbn.bank import EstimatorBank
from dmbn.config import check, validate
from dmbn import estimators
from dmbn.estimators import TrainingContext
from dmbn.models import build_model
from dmbn.names import estimator_kind, estimator_label, estimator_rank
from dmbn.train import TrainConfig, train_run, write_run

from conftest import ROOT, quickstart_config, tiny_data

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
NEW_KINDS = ("static-biased", "precise-mean-unbiased", "precise-mean-biased")


def bn_mlp(features: int = 5, first_bn: bool = False) -> nn.Sequential:
    """Two BN layers of 6 and 4 channels (``first_bn``: a BN on the raw input first, so its
    input's batches are exactly the batches drawn)."""
    torch.manual_seed(0)
    head = [nn.BatchNorm1d(features)] if first_bn else []
    return nn.Sequential(*head, nn.Linear(features, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 4),
                         nn.BatchNorm1d(4))


class Inputs:
    """Every train-mode input of every BN layer, per forward, in float64."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
        self.seen: list[list[torch.Tensor]] = [[] for _ in self.layers]
        self.handles = [bn.register_forward_pre_hook(self._keep(i)) for i, bn in enumerate(self.layers)]

    def _keep(self, index: int):
        def hook(module, inputs):
            if module.training:
                self.seen[index].append(inputs[0].detach().double().clone())
        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def flat(per_layer: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(per_layer)


# -- static-biased-β -------------------------------------------------------------------------------

@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_static_biased_is_the_ema_of_the_biased_batch_variance(beta):
    model = bn_mlp()
    bank = EstimatorBank(model, betas=(0.1, 0.5), estimators=("static", "static-biased"))
    inputs = Inputs(model)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(1)
    sizes = [4] * 12 + [3]  # B = 4, where (B−1)/B = 0.75 matters; then a smaller last batch
    for size in sizes:
        x = torch.randn(size, 5, generator=generator) * 2 + 1
        optimiser.zero_grad()
        model(x).square().mean().backward()  # the weights move between batches, as in training
        optimiser.step()
        bank.observe()
    inputs.remove()
    expected_mean, expected_var = [], []
    for seen in inputs.seen:  # the EMA by hand: start at BN's mean 0, variance 1
        mean, var = torch.zeros(seen[0].shape[1], dtype=torch.float64), torch.ones(seen[0].shape[1], dtype=torch.float64)
        for x in seen:
            mean = (1 - beta) * mean + beta * x.mean(dim=0)
            var = (1 - beta) * var + beta * x.var(dim=0, unbiased=False)
        expected_mean.append(mean)
        expected_var.append(var)
    got_mean, got_var = bank.statistics(f"static-biased-{beta}")
    torch.testing.assert_close(got_mean.double(), flat(expected_mean), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_var.double(), flat(expected_var), rtol=1e-5, atol=1e-6)
    # the static row's μ̂ is the same; its σ̂² is not (unbiased v_b): the rows differ
    static_mean, static_var = bank.statistics(f"static-{beta}")
    torch.testing.assert_close(static_mean, got_mean)
    assert (static_var > got_var).all()
    bank.close()


def test_static_biased_state_survives_a_checkpoint():
    model = bn_mlp()
    bank = EstimatorBank(model, betas=(0.3,), estimators=("static", "static-biased"))
    model(torch.randn(4, 5))
    bank.observe()
    state = copy.deepcopy(bank.state_dict())
    bank.close()
    other = EstimatorBank(bn_mlp(), betas=(0.3,), estimators=("static", "static-biased"))
    other.load_state_dict(state)
    for got, want in zip(other.statistics("static-biased-0.3"), bank.statistics("static-biased-0.3")):
        assert torch.equal(got, want)


# -- precise-mean-biased / precise-mean-unbiased ---------------------------------------------------

def batch_inputs(model: nn.Module, batches: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Each BN layer's input for each batch, from train-mode forwards of a copy of the model (a
    train-mode layer normalises with its batch's statistics, so the running state does not matter)."""
    twin = copy.deepcopy(model).train()
    inputs = Inputs(twin)
    with torch.no_grad():
        for x in batches:
            twin(x)
    inputs.remove()
    return inputs.seen


@pytest.mark.parametrize("sizes", [[4] * 6, [4, 4, 7, 5, 2]], ids=["equal-B4", "unequal"])
def test_precise_mean_rows_are_plain_means_over_batches_in_the_same_pass_as_precise(sizes):
    model = bn_mlp()
    generator = torch.Generator().manual_seed(2)
    batches = [torch.randn(n, 5, generator=generator) * 3 - 1 for n in sizes]
    per_layer = batch_inputs(model, batches)
    bank = EstimatorBank(model, estimators=("static", "precise") + NEW_KINDS[1:])
    forwards = []
    handle = model.register_forward_hook(lambda module, args, output: forwards.append(module.training))
    bank.finish_training(TrainingContext(model, lambda: iter(batches), torch.randn(8, 5), 2048))
    handle.remove()
    assert forwards == [True] * len(sizes)  # one pass over the batches for all three rows
    means, unbiased, biased, population_mean, population_var = [], [], [], [], []
    for seen in per_layer:  # each batch weighs 1 (fvcore's running average), whatever its size
        means.append(torch.stack([x.mean(dim=0) for x in seen]).mean(dim=0))
        unbiased.append(torch.stack([x.var(dim=0, unbiased=True) for x in seen]).mean(dim=0))
        biased.append(torch.stack([x.var(dim=0, unbiased=False) for x in seen]).mean(dim=0))
        everything = torch.cat(seen)
        population_mean.append(everything.mean(dim=0))
        population_var.append(everything.var(dim=0, unbiased=True))
    for name, var in (("precise-mean-unbiased", unbiased), ("precise-mean-biased", biased)):
        got_mean, got_var = bank.statistics(name)
        torch.testing.assert_close(got_mean.double(), flat(means), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got_var.double(), flat(var), rtol=1e-5, atol=1e-6)
    got_mean, got_var = bank.statistics("precise")  # the same pass still gives the population
    torch.testing.assert_close(got_mean.double(), flat(population_mean), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_var.double(), flat(population_var), rtol=1e-5, atol=1e-6)
    if len(set(sizes)) > 1:  # unequal sizes: the plain mean of batch means is not the population mean
        assert not torch.allclose(flat(means), flat(population_mean), atol=1e-3)
    else:  # B = 4: the biased mean is exactly (B−1)/B of the unbiased one
        torch.testing.assert_close(bank.statistics("precise-mean-biased")[1].double(),
                                   0.75 * bank.statistics("precise-mean-unbiased")[1].double(), rtol=1e-5, atol=1e-7)
    bank.close()


# -- the spread diagnostic -------------------------------------------------------------------------

def hand_spread(seen: list[torch.Tensor]) -> dict:
    """Var_b(m_b) / (σ²_pop · mean_b(1/n_b)) per channel, averaged over the channels."""
    batch_means = torch.stack([x.mean(dim=0) for x in seen])
    var_of_means = batch_means.var(dim=0, unbiased=True)
    pooled = torch.cat(seen).var(dim=0, unbiased=True)
    inverse_b = torch.tensor([1.0 / len(x) for x in seen], dtype=torch.float64).mean()
    return {"var_of_batch_means": var_of_means.mean().item(), "pooled_var": pooled.mean().item(),
            "ratio": (var_of_means / (pooled * inverse_b)).mean().item(), "batches": len(seen),
            "batch_size": 1.0 / inverse_b.item()}


@pytest.mark.parametrize("sizes", [[4] * 10, [4, 6, 5, 4, 8]], ids=["equal-B4", "unequal"])
def test_spread_per_layer_against_a_hand_computation(sizes):
    model = bn_mlp()
    generator = torch.Generator().manual_seed(3)
    batches = [torch.randn(n, 5, generator=generator) + torch.randn(1, 5, generator=generator) for n in sizes]
    per_layer = batch_inputs(model, batches)
    rows = estimators.precise_pass(model, batches).spread
    assert [r["layer"] for r in rows] == [1, 2]
    for row, seen in zip(rows, per_layer):
        want = hand_spread(seen)
        assert row["batches"] == want["batches"]
        assert row["batch_size"] == pytest.approx(want["batch_size"])
        for column in ("var_of_batch_means", "pooled_var", "ratio"):
            assert row[column] == pytest.approx(want[column], rel=1e-5), column


def draw_batches(batches: int, size: int, shift: float) -> list[torch.Tensor]:
    """Batches of i.i.d. normal samples, each batch's mean shifted by a draw of N(0, shift²)."""
    generator = torch.Generator().manual_seed(4)
    return [torch.randn(size, 5, generator=generator) + shift * torch.randn(1, 5, generator=generator)
            for _ in range(batches)]


def test_spread_ratio_is_about_one_for_iid_batches():
    model = bn_mlp(first_bn=True)  # layer 1 sees the drawn batches themselves
    ratio = estimators.precise_pass(model, draw_batches(400, 4, shift=0.0)).spread[0]["ratio"]
    # Var_b(m_b) of 400 batch means estimates σ²/B to about ±7 % per channel, 5 channels averaged
    assert ratio == pytest.approx(1.0, abs=0.15)


def test_spread_ratio_is_far_above_one_when_batch_means_are_shifted():
    model = bn_mlp(first_bn=True)
    ratio = estimators.precise_pass(model, draw_batches(400, 16, shift=3.0)).spread[0]["ratio"]
    # Var(m_b) = 9 + 1/16, σ²_pop = 10: ratio ≈ 9.06 / (10 / 16) ≈ 14.5
    assert ratio > 8


# -- in a run's files ------------------------------------------------------------------------------

def test_a_run_with_precise_writes_precise_spread_csv(tmp_path):
    data = tiny_data()
    model = build_model("mlp", data.input_shape, data.num_classes, depth=3, width=8)
    config = TrainConfig(epochs=1, batch_size=40, precise_batches=5, seed=2,
                         estimators=("static", "precise") + NEW_KINDS)
    write_run(train_run(model, data, config), tmp_path)
    table = pd.read_csv(tmp_path / "precise_spread.csv")
    assert table.columns.tolist() == ["layer", "batch_size", "batches", "var_of_batch_means", "pooled_var", "ratio"]
    assert table.layer.tolist() == [1, 2, 3]
    assert (table.batches == 5).all() and (table.batch_size == 40).all()
    assert (table.ratio > 0).all() and (table.pooled_var > 0).all()
    esm = pd.read_csv(tmp_path / "esm.csv")
    assert set(esm.estimator) >= {"static-biased-0.1", "precise-mean-unbiased", "precise-mean-biased"}


def test_a_run_without_precise_writes_no_spread(tmp_path):
    data = tiny_data()
    model = build_model("mlp", data.input_shape, data.num_classes, depth=2, width=8)
    write_run(train_run(model, data, TrainConfig(epochs=1, batch_size=40, estimators=("static", "cma"))), tmp_path)
    assert not (tmp_path / "precise_spread.csv").exists()


# -- the registry: schema, order, labels ----------------------------------------------------------

def test_the_config_schema_accepts_the_new_kinds(tmp_path):
    config = quickstart_config(tmp_path)
    config["studies"]["quickstart"]["train"]["estimators"] = ["static", "dmbn", "precise", *NEW_KINDS]
    validate(config, SCHEMA)
    check(config)


def test_tables_order_and_label_the_new_rows():
    order = ["static-0.1", "static-0.9", "horizon-0.1", "moment-0.1", "static-biased-0.1", "static-biased-0.9",
             "dmbn", "precise", "precise-mean-unbiased", "precise-mean-biased", "cma"]
    assert sorted(reversed(order), key=estimator_rank) == order
    assert estimator_kind("static-biased-0.1") == "static-biased"
    assert estimator_kind("static-0.1") == "static"
    assert estimator_label("static-biased-0.3", latex=False) == "Static BN, biased variance (β = 0.3)"
    assert "unbiased" in estimator_label("precise-mean-unbiased") and "fvcore" in estimator_label("precise-mean-unbiased")


def test_accuracy_vs_beta_puts_only_the_static_rows_on_the_beta_axis():
    from dmbn import plots

    rows = [dict(dataset="d", regime="mini", arch="mlp", seed=seed, estimator=estimator, accuracy=accuracy,
                 sensitivity=0, specificity=0, f1=0)
            for seed in (1, 2) for estimator, accuracy in (("static-0.1", 0.8), ("static-0.5", 0.6),
                                                           ("static-biased-0.1", 0.1), ("static-biased-0.5", 0.2))]
    fig = plots.accuracy_vs_beta(pd.DataFrame(rows), "mlp", "t")
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert list(x) == [0.1, 0.5] and list(y) == pytest.approx([0.8, 0.6])
