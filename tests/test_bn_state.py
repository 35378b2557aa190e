"""One BN-state mechanism (dmbn.bn_state, issue #26 item 2): the bank, PreciseBN, recalibration and
test-batch evaluation each leave a model bitwise as they found it — state dict, the buffer tensors
themselves, every module's mode (a partly frozen model included), momenta, counters and hooks."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmbn.bank import EstimatorBank
from dmbn.esm import recalibrated_statistics
from dmbn.estimators import precise_statistics
from dmbn.evaluate import predict_with_batch_statistics

HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks",
              "_forward_pre_hooks_with_kwargs", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
              "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
              "_load_state_dict_post_hooks")


class Mixed(nn.Module):
    """BatchNorm2d (momentum 0.3) and BatchNorm1d (momentum None: cumulative), dropout between."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn2d = nn.BatchNorm2d(4, momentum=0.3)
        self.fc = nn.Linear(16, 6)
        self.bn1d = nn.BatchNorm1d(6, momentum=None)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.bn2d(self.conv(x))), 2).flatten(1)
        return self.head(self.drop(F.relu(self.bn1d(self.fc(x)))))


def partly_frozen_model() -> nn.Module:
    """Trained-looking statistics, counters, a user's own hook, and some modules in eval mode."""
    torch.manual_seed(0)
    model = Mixed()
    for _ in range(3):
        model.train()(torch.randn(8, 3, 4, 4))
    model.bn2d.eval()    # frozen statistics
    model.drop.eval()
    model.bn1d.register_forward_pre_hook(lambda module, inputs: None)  # the user's: must stay
    return model


def snapshot(model: nn.Module) -> dict:
    """Everything a BN tool may change: values, the tensor objects, modes, momenta, hooks."""
    return {
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "tensors": {name: tuple((id(t), t.data_ptr(), t._base is None) for t in m.buffers(recurse=False))
                    for name, m in model.named_modules()},
        "modes": {name: m.training for name, m in model.named_modules()},
        "momenta": {name: m.momentum for name, m in model.named_modules() if hasattr(m, "momentum")},
        "hooks": {name: {d: list(getattr(m, d, {})) for d in HOOK_DICTS} for name, m in model.named_modules()},
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["state"].keys() == after["state"].keys()
    for key, value in before["state"].items():
        assert after["state"][key].dtype == value.dtype and torch.equal(after["state"][key], value), key
    for part in ("tensors", "modes", "momenta", "hooks"):
        assert after[part] == before[part], part


def batches():
    torch.manual_seed(1)
    return [torch.randn(6, 3, 4, 4) for _ in range(3)]


def test_precise_bn_leaves_the_model_as_it_found_it():
    model = partly_frozen_model()
    before = snapshot(model)
    precise_statistics(model, batches())
    assert_same(before, snapshot(model))


def test_recalibration_leaves_the_model_as_it_found_it_on_both_paths():
    model = partly_frozen_model()
    before = snapshot(model)
    recalibrated_statistics(model, torch.cat(batches()), chunk=5)  # the stacked pass (the workflow's)
    assert_same(before, snapshot(model))
    recalibrated_statistics(model, batches())  # any iterable of batches
    assert_same(before, snapshot(model))


def test_test_batch_evaluation_leaves_the_model_as_it_found_it():
    model = partly_frozen_model()
    before = snapshot(model)
    predict_with_batch_statistics(model, torch.cat(batches()), batch_size=6)
    assert_same(before, snapshot(model))


@pytest.mark.parametrize("kinds", [("static", "dmbn", "cma"), ("static", "moment", "cma")])  # moment: count hooks
def test_a_closed_bank_leaves_the_model_as_it_found_it(kinds):
    model = partly_frozen_model()
    before = snapshot(model)
    bank = EstimatorBank(model, (0.1, 0.5), kinds)
    assert model.bn2d.momentum == 1.0 and model.bn2d.running_mean._base is not None  # attached: shared views
    for x in batches():
        model.train()(x)  # trains the frozen layers too: the bank restores each module's own mode
        bank.observe()
    assert not torch.equal(model.bn1d.running_mean, before["state"]["bn1d.running_mean"])  # last batch's
    bank.close()
    assert_same(before, snapshot(model))
    assert bank.statistics("cma")[0].shape == (10,)  # the bank keeps its estimators


def test_leaving_the_banks_block_restores_the_model_even_on_an_error():
    model = partly_frozen_model()
    before = snapshot(model)
    with pytest.raises(ZeroDivisionError):
        with EstimatorBank(model, (0.1,), ("static",)) as bank:
            model.train()(batches()[0])
            bank.observe()
            1 / 0
    assert_same(before, snapshot(model))


def test_closing_with_an_estimator_loads_it_into_the_layers_own_buffers_only():
    model = partly_frozen_model()
    before = snapshot(model)
    bank = EstimatorBank(model, (0.1,), ("static", "cma"))
    for x in batches():
        model.train()(x)
        bank.observe()
    cma_mean, cma_var = (t.clone() for t in bank.statistics("cma"))
    bank.close(load="cma")
    after = snapshot(model)
    torch.testing.assert_close(torch.cat([model.bn2d.running_mean, model.bn1d.running_mean]), cma_mean,
                               rtol=0, atol=0)
    torch.testing.assert_close(torch.cat([model.bn2d.running_var, model.bn1d.running_var]), cma_var,
                               rtol=0, atol=0)
    for key in ("bn2d.running_mean", "bn2d.running_var", "bn1d.running_mean", "bn1d.running_var"):
        before["state"][key] = after["state"][key]  # the loaded statistics, and nothing else, changed
    assert_same(before, after)
    bank.ema_mean.add_(1.0)  # the bank's vectors are no longer the model's
    assert torch.equal(model.bn2d.running_mean, cma_mean[:4])


def test_preserved_restores_buffers_objects_momenta_modes_and_its_own_hooks_only():
    from dmbn.bn_state import preserved

    model = partly_frozen_model()
    before = snapshot(model)
    with preserved(model) as state:
        model.train()
        model.bn1d.momentum = 1.0
        model.bn2d.running_mean = torch.zeros(4)  # a new tensor object
        model.bn1d.running_var.mul_(3.0)
        model.bn1d.num_batches_tracked.add_(5)
        state.hook(model.bn2d, lambda module, inputs: None)
        model(batches()[0])
    assert_same(before, snapshot(model))
