"""An estimator bank's state round trip: a bank loaded from another's state holds the same
statistics, β* and CMA count, and goes on exactly as the original."""

import copy

import pytest
import torch
import torch.nn.functional as F

from dmbn.bank import EstimatorBank
from dmbn.estimators import TrainingContext, precise_statistics
from dmbn.models import build_model


def step(model, bank, x, y) -> None:
    model.train()
    loss = F.cross_entropy(model(x), y)
    loss.backward()  # the weights stay: only the BN statistics matter here
    bank.observe()


def test_a_bank_loaded_from_a_state_continues_as_the_original(data):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 1, 12), 3, depth=3, width=8)
    twin = copy.deepcopy(model)
    kinds = ("static", "dmbn", "cma", "precise")
    bank, loaded = EstimatorBank(model, (0.2, 0.6), kinds), EstimatorBank(twin, (0.2, 0.6), kinds)
    bank.start_epoch()
    for i in range(3):
        step(model, bank, data.x_train[i * 30:(i + 1) * 30], data.y_train[i * 30:(i + 1) * 30])
    bank.finish_epoch(torch.tensor([[0.1, 0.5, 0.2], [0.3, 0.4, 0.1]]))  # β* = 0.2, 0.6, 0.6
    bank.finish_training(TrainingContext(model, lambda: [data.x_train[:50]], data.x_esm, 2048))
    loaded.load_state_dict(copy.deepcopy(bank.state_dict()))
    assert loaded.beta_star.tolist() == [0.2, 0.6, 0.6] and loaded.estimator("cma").steps == 3
    assert loaded.names == bank.names == ["static-0.2", "static-0.6", "cma", "dmbn", "precise"]
    for name in bank.names:
        for a, b in zip(bank.statistics(name), loaded.statistics(name)):
            assert torch.equal(a, b), name
    # one more step on the same batch: every estimator, CMA's 1/4 weight included, moves alike
    for m, b in ((model, bank), (twin, loaded)):
        b.start_epoch()
        step(m, b, data.x_train[90:120], data.y_train[90:120])
    for name in bank.names:
        for a, b in zip(bank.statistics(name), loaded.statistics(name)):
            torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_a_model_without_batchnorm_is_refused_naming_the_reason():
    with pytest.raises(ValueError, match="^the model has no BatchNorm layer to estimate statistics for$"):
        EstimatorBank(torch.nn.Sequential(torch.nn.Linear(3, 2)))


def test_precise_bn_without_batches_says_so():
    model = build_model("mlp", (1, 1, 4), 2, depth=2, width=4)
    with pytest.raises(ValueError, match="^PreciseBN needs at least one batch$"):
        precise_statistics(model, [])


def test_dmbn_without_candidates_is_refused_naming_the_reason():
    model = build_model("mlp", (1, 1, 4), 2, depth=2, width=4)
    with pytest.raises(ValueError, match="^DMBN chooses among static candidates: give at least one β$"):
        EstimatorBank(model, betas=())
    assert EstimatorBank(model, betas=(), estimators=("cma",)).names == ["cma"]  # without DMBN no β is needed
    with pytest.raises(ValueError, match="^dmbn choose among the static candidates: add 'static' to the estimators$"):
        EstimatorBank(model, estimators=("dmbn",))


def test_the_banks_tensors_live_on_the_models_device():
    # the meta device stands in for a GPU: a tensor created without the model's device lands on the CPU
    model = build_model("mlp", (1, 1, 4), 2, depth=2, width=4).to("meta")
    bank = EstimatorBank(model, betas=(0.1, 0.5))
    dmbn_mean, dmbn_var = bank.statistics("dmbn")
    tensors = {"ema_mean": bank.ema_mean, "ema_var": bank.ema_var, "dmbn_mean": dmbn_mean,
               "dmbn_var": dmbn_var}
    assert {name: t.device.type for name, t in tensors.items()} == {name: "meta" for name in tensors}
    model.train()(torch.empty(8, 1, 1, 4, device="meta"))
    bank.observe()  # the EMA weights must be on the model's device too
    assert bank.ema_mean.device.type == "meta"


def test_a_fresh_bank_has_no_beta_star_and_needs_an_epoch_start():
    bank = EstimatorBank(build_model("mlp", (1, 1, 4), 2, depth=2, width=4), betas=(0.1, 0.5))
    assert bank.beta_star is None  # no epoch finished yet
    with pytest.raises(RuntimeError, match=r"finish_epoch\(\) called without start_epoch\(\)"):
        bank.finish_epoch(torch.zeros(2, 2))


def test_a_bank_state_written_before_estimators_were_plug_ins_still_loads(data):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 1, 12), 3, depth=3, width=8)
    kinds = ("static", "dmbn", "cma", "precise", "recalibrated")
    loaded = EstimatorBank(copy.deepcopy(model), (0.2, 0.6), kinds)
    g = torch.Generator().manual_seed(0)
    ema_mean, ema_var = torch.randn(3, 24, generator=g), torch.rand(3, 24, generator=g)
    dmbn, precise = (torch.randn(24, generator=g), torch.rand(24, generator=g)), (torch.zeros(24), torch.ones(24))
    old = {"ema_mean": ema_mean, "ema_var": ema_var, "dmbn_mean": dmbn[0], "dmbn_var": dmbn[1],
           "cma_steps": 4, "beta_star": torch.tensor([0.2, 0.6, 0.6], dtype=torch.float64),
           "extra": {"precise": precise}}  # the old format, field by field
    loaded.load_state_dict(old)
    assert loaded.names == ["static-0.2", "static-0.6", "cma", "dmbn", "precise"]
    assert torch.equal(loaded.statistics("static-0.6")[0], ema_mean[1]) and torch.equal(loaded.statistics("cma")[1], ema_var[2])
    assert all(torch.equal(a, b) for a, b in zip(loaded.statistics("dmbn"), dmbn))
    assert loaded.estimator("cma").steps == 4 and loaded.beta_star.tolist() == [0.2, 0.6, 0.6]
    with pytest.raises(ValueError, match="^the bank's state has no estimator horizon"):
        EstimatorBank(model, (0.2, 0.6), kinds + ("horizon",)).load_state_dict(old)
