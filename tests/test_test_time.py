"""Test-time BN rules (distribution shift) against a direct computation: a two-BN-layer MLP run
by hand, layer by layer, on a three-batch stream, with each rule's formula written out here."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dmbn.test_time import DecayingMomentum, RobustEMA, SourceTargetMix, TestBatch, stream_logits

torch.manual_seed(0)


def network() -> nn.Sequential:
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 3), nn.BatchNorm1d(3),
                          nn.Linear(3, 2)).double()
    model[1].running_mean.uniform_(-1, 1), model[1].running_var.uniform_(0.5, 2)
    model[4].running_mean.uniform_(-1, 1), model[4].running_var.uniform_(0.5, 2)
    model[1].weight.data.uniform_(0.5, 1.5), model[4].bias.data.uniform_(-0.5, 0.5)
    return model


STREAM = [torch.randn(6, 5, dtype=torch.float64) * 2 + 1, torch.randn(4, 5, dtype=torch.float64) - 1,
          torch.randn(8, 5, dtype=torch.float64)]


def by_hand(model: nn.Sequential, choose) -> torch.Tensor:
    """Run the stream through the layers, each BN normalising with choose(layer, k, μ_b, σ²_b, n)."""
    outputs = []
    for k, x in enumerate(STREAM):
        h = x
        for index, layer in enumerate(model):
            if isinstance(layer, nn.BatchNorm1d):
                mu_b, var_b, n = h.mean(0), h.var(0, unbiased=False), h.shape[0]
                mu, var = choose(index, k, mu_b, var_b, n)
                h = (h - mu) / torch.sqrt(var + layer.eps) * layer.weight + layer.bias
            else:
                h = layer(h)
        outputs.append(h)
    return torch.cat(outputs)


def source(model, index):
    return model[index].running_mean.clone(), model[index].running_var.clone()


def test_test_batch_is_each_batchs_own_biased_statistics():
    model = network()
    expected = by_hand(model, lambda i, k, mu, var, n: (mu, var))
    torch.testing.assert_close(stream_logits(model, STREAM, TestBatch), expected)


@pytest.mark.parametrize("prior", [0.0, 8.0, 1e9])
def test_source_target_mix_weights_the_source_by_n_over_n_plus_its_prior(prior):
    model = network()

    def choose(i, k, mu, var, n):
        p = prior / (prior + n)
        mu_s, var_s = source(model, i)
        return p * mu_s + (1 - p) * mu, p * var_s + (1 - p) * var

    torch.testing.assert_close(stream_logits(model, STREAM, SourceTargetMix, prior=prior), by_hand(model, choose))
    if prior == 1e9:  # all source: the eval-mode model itself
        torch.testing.assert_close(stream_logits(model, STREAM, SourceTargetMix, prior=prior),
                                   model.eval()(torch.cat(STREAM)), rtol=1e-6, atol=1e-6)


def test_robust_ema_carries_its_average_along_the_stream():
    model = network()
    state = {}

    def choose(i, k, mu, var, n):
        mu_r, var_r = state.get(i, source(model, i))
        state[i] = (0.95 * mu_r + 0.05 * mu, 0.95 * var_r + 0.05 * var)
        return state[i]

    torch.testing.assert_close(stream_logits(model, STREAM, RobustEMA), by_hand(model, choose))


def test_decaying_momentum_follows_dua_s_schedule_with_pytorchs_unbiased_update():
    model = network()
    state = {}

    def choose(i, k, mu, var, n):
        m = 0.1 * 0.94 ** k + 0.005
        mu_r, var_r = state.get(i, source(model, i))
        state[i] = ((1 - m) * mu_r + m * mu, (1 - m) * var_r + m * var * n / (n - 1))
        return state[i]

    torch.testing.assert_close(stream_logits(model, STREAM, DecayingMomentum), by_hand(model, choose))


def test_the_model_is_left_exactly_as_it_was():
    model = network().train()
    before = copy.deepcopy(model.state_dict())
    stream_logits(model, STREAM, RobustEMA)
    assert model.training and all(m.training for m in model.modules())
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert not any(bn._forward_pre_hooks for bn in (model[1], model[4]))


@pytest.mark.parametrize("rule, settings, words", [(SourceTargetMix, {"prior": -1.0}, "prior N"),
                                                   (RobustEMA, {"alpha": 0.0}, "alpha"),
                                                   (RobustEMA, {"alpha": 1.5}, "alpha")])
def test_bad_settings_are_refused_naming_them(rule, settings, words):
    with pytest.raises(ValueError, match=words):
        stream_logits(network(), STREAM, rule, **settings)
