import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmbn.bank import EstimatorBank
from dmbn.estimators import precise_statistics
from dmbn.names import STATIC_BETAS
from dmbn.models import build_model
from dmbn.statistics import read_buffers



def small_mlp(seed: int = 0, arch: str = "mlp") -> nn.Module:
    torch.manual_seed(seed)
    return build_model(arch, (1, 1, 12), 3, depth=4, width=16)


def sgd_steps(model: nn.Module, data, steps: int, bank: EstimatorBank | None = None, batch: int = 20):
    """A few plain SGD steps in a fixed order; the bank observes each."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for step in range(steps):
        index = torch.arange(step * batch, (step + 1) * batch) % len(data.y_train)
        loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if bank is not None:
            bank.observe()


@pytest.mark.parametrize("name, momentum", [("static-0.1", 0.1), ("static-0.3", 0.3), ("static-0.9", 0.9),
                                            ("cma", None)])
def test_estimator_equals_batchnorm_with_that_momentum(data, name, momentum):
    """static-β is PyTorch's BN with momentum β; cma is PyTorch's momentum=None."""
    banked, plain = small_mlp(), small_mlp()
    for m in plain.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = momentum
    bank = EstimatorBank(banked)
    bank.start_epoch()
    sgd_steps(banked, data, 15, bank)
    sgd_steps(plain, data, 15)
    # the bank never changes the trajectory: identical weights, to the bit
    for p, q in zip(banked.parameters(), plain.parameters()):
        assert torch.equal(p, q)
    torch.testing.assert_close(bank.statistics(name), read_buffers(plain), rtol=1e-5, atol=1e-6)


def test_dmbn_equals_an_ema_replayed_with_each_layers_beta_star(data):
    model = small_mlp()
    bank = EstimatorBank(model)
    replay_mean, replay_var = torch.zeros(4 * 16), torch.ones(4 * 16)  # BN's start state
    generator = torch.Generator().manual_seed(0)
    for epoch in range(3):
        bank.start_epoch()
        batch_stats = []
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        for step in range(7):
            index = torch.randint(0, len(data.y_train), (20,), generator=generator)
            loss = F.cross_entropy(model(data.x_train[index]), data.y_train[index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            bank.observe()
            batch_stats.append(read_buffers(model))
        esm_mu = torch.rand(len(STATIC_BETAS), 4, generator=generator)
        beta_star = bank.finish_epoch(esm_mu)
        assert beta_star.tolist() == [STATIC_BETAS[i] for i in esm_mu.argmin(0).tolist()]
        per_channel = bank.layout.per_channel(beta_star).float()
        for mean, var in batch_stats:  # the EMA DMBN describes, step by step
            replay_mean = (1 - per_channel) * replay_mean + per_channel * mean
            replay_var = (1 - per_channel) * replay_var + per_channel * var
        torch.testing.assert_close(bank.statistics("dmbn"), (replay_mean, replay_var), rtol=1e-5, atol=1e-6)


def test_beta_star_ties_go_to_the_smaller_beta():
    bank = EstimatorBank(small_mlp())
    bank.start_epoch()
    esm_mu = torch.ones(9, 4)
    esm_mu[[2, 5], 1] = 0.0  # β = 0.3 and 0.6 tie on layer 2
    assert bank.finish_epoch(esm_mu).tolist() == [0.1, 0.3, 0.1, 0.1]


def test_precise_statistics_are_population_statistics_of_batches_of_different_sizes(data):
    model = small_mlp()
    # batches of different sizes and means: the population mixes them by size
    sizes = [40, 7, 23, 2]
    starts = [0, 40, 47, 70]
    batches = [data.x_train[a:a + n] + shift for a, n, shift in zip(starts, sizes, (0.0, 3.0, -1.0, 5.0))]
    before = read_buffers(model)
    mean, var = precise_statistics(model, batches)
    # direct: the first BN layer's input is the first Linear's output, for all samples at once
    first = model[1].linear
    with torch.no_grad():
        everything = torch.cat([first(b.flatten(1)) for b in batches]).double()
    torch.testing.assert_close(mean[:16].double(), everything.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var[:16].double(), everything.var(0, unbiased=True), rtol=1e-5, atol=1e-6)
    # not the mean of batch variances (the older fvcore estimator): the batch means differ
    mean_of_variances = torch.stack([first(b.flatten(1)).var(0) for b in batches]).mean(0).detach()
    assert (var[:16] - mean_of_variances).abs().max() > 0.1
    torch.testing.assert_close(read_buffers(model), before)  # buffers untouched


def test_precise_statistics_count_spatial_positions_of_conv_layers():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3)
    model = nn.Sequential(conv, bn)
    batches = [torch.randn(4, 2, 5, 5), torch.randn(1, 2, 5, 5) + 2.0]
    mean, var = precise_statistics(model, batches)
    with torch.no_grad():
        h = torch.cat([conv(b) for b in batches]).double().transpose(0, 1).flatten(1)  # [C, all elements]
    torch.testing.assert_close(mean.double(), h.mean(1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(var.double(), h.var(1, unbiased=True), rtol=1e-5, atol=1e-6)


def test_using_statistics_loads_and_restores(data):
    model = small_mlp().eval()
    bank = EstimatorBank(model)
    bank.start_epoch()
    sgd_steps(model, data, 5, bank)
    model.eval()
    before = read_buffers(model)
    with bank.use("static-0.5"):
        torch.testing.assert_close(read_buffers(model), bank.statistics("static-0.5"))
    torch.testing.assert_close(read_buffers(model), before)
    with pytest.raises(KeyError, match="static-0.55"):
        bank.statistics("static-0.55")


def test_bank_works_on_a_conv_model_with_batchnorm2d():
    torch.manual_seed(0)
    model = build_model("resnet50", (3, 8, 8), 4, resnet_blocks=(1, 1, 1, 1), resnet_channels=4)
    reference = copy.deepcopy(model)
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.2
    bank = EstimatorBank(model, betas=[0.2, 0.7])
    x = torch.randn(6, 3, 8, 8)
    for net in (model, reference):
        net.train()(x)
    bank.observe()
    torch.testing.assert_close(bank.statistics("static-0.2"), read_buffers(reference), rtol=1e-5, atol=1e-6)


def test_model_without_batchnorm_is_refused():
    with pytest.raises(ValueError, match="no BatchNorm"):
        EstimatorBank(nn.Sequential(nn.Linear(2, 2)))
