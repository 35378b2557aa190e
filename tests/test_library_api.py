"""dmbn as a library (issue #26 items 1, 3, 4): ``dmbn.recalibrate`` on any model and any loader,
the bank in a user's own loop, real models no one here wrote, and the behaviours that
``torch.optim.swa_utils.update_bn``'s tests (pytorch test/optim/test_swa_utils.py) and fvcore's
PreciseBN tests (tests/test_precise_bn.py) check. Every expected value is an exact population
computation in numpy on the concatenated inputs of each BN layer, captured by plain hooks on a copy
of the model; where dmbn deliberately differs from those tools the test says so."""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import mobilenet_v3_small, resnet18

import dmbn
from dmbn.bank import EstimatorBank
from dmbn.esm import recalibrated_statistics

from conftest import ROOT
from test_bn_state import Mixed, assert_same, partly_frozen_model, snapshot

BatchNorm = nn.modules.batchnorm._BatchNorm
# most loaders here are shorter than recalibrate's default 200 batches; the warning has its own test
pytestmark = pytest.mark.filterwarnings("ignore:the loader gave:UserWarning")


# -- independent expectations ----------------------------------------------------------------------

def population(chunks: list[torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased variance per channel (axis 1) of all values of the concatenated chunks."""
    x = np.concatenate([c.detach().double().cpu().numpy() for c in chunks])
    axes = tuple(i for i in range(x.ndim) if i != 1)
    return x.mean(axis=axes), x.var(axis=axes, ddof=1)


def train_mode_inputs(model: nn.Module, inputs: list[torch.Tensor], call=None) -> dict[str, list[torch.Tensor]]:
    """Each tracking BN layer's inputs over plain train-mode forwards of a copy of ``model``."""
    reference = copy.deepcopy(model).train()
    captured: dict[str, list[torch.Tensor]] = {}
    for name, module in reference.named_modules():
        if isinstance(module, BatchNorm) and module.track_running_stats:
            captured[name] = []
            module.register_forward_pre_hook(lambda m, args, name=name: captured[name].append(args[0].clone()))
    with torch.no_grad():
        for x in inputs:
            (call or (lambda m, b: m(b)))(reference, x)
    return captured


def assert_population(statistics: dict, captured: dict, rtol=1e-4, atol=1e-5) -> None:
    assert list(statistics) == list(captured)  # every tracking layer, in forward order
    for name, chunks in captured.items():
        mean, var = population(chunks)
        got_mean, got_var = statistics[name]
        torch.testing.assert_close(got_mean.double().cpu(), torch.from_numpy(mean), rtol=rtol, atol=atol, msg=name)
        torch.testing.assert_close(got_var.double().cpu(), torch.from_numpy(var), rtol=rtol, atol=atol, msg=name)


def buffers_of(model: nn.Module) -> dict:
    return {name: (m.running_mean, m.running_var) for name, m in model.named_modules()
            if isinstance(m, BatchNorm) and m.track_running_stats}


# -- torch's update_bn tests, in our own code --------------------------------------------------------

class DNN(nn.Module):
    """test_swa_utils.py's SWATestDNN: Linear(5, 100) -> BatchNorm1d."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn = nn.Linear(5, 100), nn.BatchNorm1d(100)

    def forward(self, x):
        return self.bn(self.fc1(x))


class CNN(nn.Module):
    """test_swa_utils.py's SWATestCNN: Conv2d(3, 10) -> BatchNorm2d(momentum 0.3)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn = nn.Conv2d(3, 10, kernel_size=3, padding=1), nn.BatchNorm2d(10, momentum=0.3)

    def forward(self, x):
        return self.bn(self.conv1(x))


def objects(kind: str) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(100, 5) if kind == "dnn" else torch.rand(100, 3, 5, 5)


@pytest.mark.parametrize("kind", ["dnn", "cnn"])
@pytest.mark.parametrize("with_targets", [False, True])  # update_bn's dl_x and dl_xy
def test_precise_is_the_population_of_the_concatenated_preactivations(kind, with_targets):
    torch.manual_seed(0)
    model = DNN() if kind == "dnn" else CNN()
    x = objects(kind)
    data = TensorDataset(x, torch.rand(100)) if with_targets else TensorDataset(x)
    loader = DataLoader(data, batch_size=7, shuffle=True, generator=torch.Generator().manual_seed(0))
    statistics = dmbn.recalibrate(model, loader, batches=None)
    preactivation = model.fc1(x) if kind == "dnn" else model.conv1(x)
    assert_population(statistics, {"bn": [preactivation]}, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.bn.running_mean, statistics["bn"][0])  # loaded (load=True by default)
    assert torch.equal(model.bn.running_var, statistics["bn"][1])


def test_update_bn_keeps_the_mean_of_batch_variances_and_dmbn_the_population_variance():
    """dmbn deliberately differs: update_bn (momentum=None) keeps the plain mean of the batches'
    unbiased variances, which leaves out the spread of the batch means; dmbn's running_var is the
    unbiased variance of all the values, as PreciseBN (fvcore since 2021) defines it. Batches whose
    means drift apart (as in a loader sorted by class) make the difference plain."""
    torch.manual_seed(0)
    model = DNN()
    batches = [b + 0.5 * i for i, b in enumerate(objects("dnn").split(5))]
    theirs = copy.deepcopy(model)
    update_bn([(b,) for b in batches], theirs)
    preactivations = [model.fc1(b) for b in batches]
    mean_of_batch_vars = np.mean([population([p])[1] for p in preactivations], axis=0)
    torch.testing.assert_close(theirs.bn.running_var.double(), torch.from_numpy(mean_of_batch_vars),
                               rtol=1e-5, atol=1e-6)
    ours = dmbn.recalibrate(model, batches, batches=None)
    _, pooled_var = population(preactivations)
    torch.testing.assert_close(ours["bn"][1].double(), torch.from_numpy(pooled_var), rtol=1e-5, atol=1e-6)
    assert pooled_var.sum() > 1.5 * mean_of_batch_vars.sum()  # the spread of the batch means, which update_bn drops
    torch.testing.assert_close(ours["bn"][0], theirs.bn.running_mean)  # the means agree (equal batch sizes)


def test_statistics_do_not_depend_on_the_buffers_they_replace():
    """update_bn's test resets the buffers and runs again: the same statistics."""
    torch.manual_seed(0)
    model = CNN()
    batches = list(objects("cnn").split(10))
    first = {k: (m.clone(), v.clone()) for k, (m, v) in dmbn.recalibrate(model, batches).items()}
    model.bn.running_mean.normal_()
    model.bn.running_var.uniform_(5, 9)
    second = dmbn.recalibrate(model, batches)
    assert all(torch.equal(first["bn"][i], second["bn"][i]) for i in (0, 1))


@pytest.mark.parametrize("train", [False, True])
def test_mode_and_momentum_are_kept(train):
    """update_bn's test_bn_update_eval_momentum: eval stays eval, momentum 0.3 stays 0.3."""
    model = CNN().train(train)
    dmbn.recalibrate(model, list(objects("cnn").split(10)))
    assert model.training is train and model.bn.training is train
    assert model.bn.momentum == 0.3


# -- fvcore's PreciseBN tests, in our own code -------------------------------------------------------

@pytest.mark.parametrize("bn_type, shape", [(nn.BatchNorm1d, (16, 8, 24)), (nn.BatchNorm2d, (16, 8, 24, 8)),
                                            (nn.BatchNorm3d, (16, 8, 4, 12, 6))])
def test_precise_bn_of_a_bare_layer_of_every_dimension(bn_type, shape):
    """fvcore's test_precise_bn: 8 random batches through BN1d/2d/3d. fvcore compares with the mean
    of the batches' variances; dmbn's is the population variance of all values (above)."""
    torch.manual_seed(42)
    model = bn_type(shape[1])
    weight = model.weight.detach().clone()
    tensors = [torch.randn(shape) for _ in range(8)]
    statistics = dmbn.recalibrate(model, tensors)
    assert_population({"<model>": statistics["<model>"]}, {"<model>": tensors}, rtol=1e-5, atol=1e-6)
    assert torch.equal(model.weight, weight)  # only statistics change


def test_a_loader_shorter_than_the_batches_asked_is_used_whole_with_a_warning():
    """fvcore's test_precise_bn_insufficient_data raises; dmbn pools what there is and says so."""
    torch.manual_seed(0)
    model = nn.BatchNorm2d(32)
    tensors = [torch.randn(16, 32, 6, 6) for _ in range(10)]
    with pytest.warns(UserWarning, match="^the loader gave 10 batches of the 20 asked"):
        statistics = dmbn.recalibrate(model, tensors, batches=20)
    assert_population(statistics, {"<model>": tensors}, rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dmbn.recalibrate(model, tensors, batches=None)  # the whole loader: no warning
        dmbn.recalibrate(model, tensors, batches=4)  # fewer than the loader has: no warning


def test_float64_batches_into_a_float32_model():
    """update_bn moves inputs to the model's device; dmbn also casts them to the model's dtype."""
    torch.manual_seed(0)
    model = DNN()
    x = objects("dnn").double()
    statistics = dmbn.recalibrate(model, [(b, torch.zeros(len(b))) for b in x.split(10)])
    assert statistics["bn"][0].dtype == torch.float32
    assert_population(statistics, {"bn": [model.fc1(x.float())]}, rtol=1e-5, atol=1e-6)


def devices() -> list[str]:
    return ["meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", devices())
def test_cpu_batches_into_a_model_on_another_device(device):
    """The meta device stands in for a GPU where there is none: the batches must follow the model."""
    torch.manual_seed(0)
    model = CNN().to(device)
    batches = [(b, torch.zeros(len(b))) for b in objects("cnn").split(10)]
    for estimator in ("precise", "recalibrated"):
        statistics = dmbn.recalibrate(model, batches, estimator)
        assert statistics["bn"][0].device.type == device
    if device != "meta":
        assert_population(dmbn.recalibrate(model, batches), {"bn": [model.conv1(objects("cnn").to(device))]})


# -- the API: any batch, any call, nothing changed but what is asked ---------------------------------

def test_tensor_tuple_list_and_dict_batches_give_the_same_statistics():
    torch.manual_seed(0)
    model = Mixed()
    x, y = torch.randn(24, 3, 4, 4), torch.randint(0, 3, (24,))
    forms = {"tensor": list(x.split(8)), "tuple": list(zip(x.split(8), y.split(8))),
             "list": [[a, b] for a, b in zip(x.split(8), y.split(8))],
             "dict": [{"image": a, "label": b} for a, b in zip(x.split(8), y.split(8))],
             "loader": DataLoader(TensorDataset(x, y), batch_size=8)}
    results = {form: dmbn.recalibrate(model, batches, load=False) for form, batches in forms.items()}
    for form, statistics in results.items():
        for name in statistics:
            assert all(torch.equal(statistics[name][i], results["tensor"][name][i]) for i in (0, 1)), (form, name)
    assert_population(results["dict"], train_mode_inputs(model, list(x.split(8))))


class TwoInputs(nn.Module):
    """A forward that takes two tensors: the default call cannot feed it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(2, 3)
        self.bn_a, self.bn_b = nn.BatchNorm1d(3), nn.BatchNorm1d(3)

    def forward(self, a, b):
        return self.bn_a(self.a(a)) + self.bn_b(self.b(b))


def test_call_fn_feeds_a_two_input_model_from_dict_batches_under_no_grad():
    torch.manual_seed(0)
    model = TwoInputs()
    batches = [{"a": torch.randn(8, 4), "b": torch.randn(8, 2), "label": torch.zeros(8)} for _ in range(3)]
    grad_enabled = []

    def call_fn(model, batch):
        grad_enabled.append(torch.is_grad_enabled())
        return model(batch["a"], batch["b"])

    for estimator in ("precise", "recalibrated"):
        statistics = dmbn.recalibrate(model, batches, estimator, call_fn=call_fn)
        assert_population(statistics, {"bn_a": [model.a(b["a"]) for b in batches],
                                       "bn_b": [model.b(b["b"]) for b in batches]})  # first layers: same in both
    assert grad_enabled and not any(grad_enabled)


def test_a_batch_without_a_tensor_is_refused_saying_to_pass_call_fn():
    with pytest.raises(TypeError, match="^a batch of type dict holds no tensor .* pass call_fn="):
        dmbn.recalibrate(CNN(), [{"path": "a.png"}])


def test_an_unknown_estimator_and_no_batches_are_refused():
    with pytest.raises(ValueError, match="^unknown estimator 'cma' for recalibrate\\(\\): choose one of precise, "
                                         "recalibrated"):
        dmbn.recalibrate(CNN(), [torch.randn(2, 3, 5, 5)], "cma")
    with pytest.raises(ValueError, match="^PreciseBN needs at least one batch$"):
        dmbn.recalibrate(CNN(), [])
    with pytest.raises(ValueError, match="^the model has no BatchNorm layer with running statistics to recalibrate"):
        dmbn.recalibrate(nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2, track_running_stats=False)),
                         [torch.randn(4, 3)])


@pytest.mark.parametrize("estimator", ["precise", "recalibrated"])
def test_statistics_are_returned_and_loaded_only_on_request_and_nothing_else_changes(estimator):
    model = partly_frozen_model()
    before = snapshot(model)
    batches = [torch.randn(6, 3, 4, 4) for _ in range(3)]
    statistics = dmbn.recalibrate(model, batches, estimator, load=False)
    assert_same(before, snapshot(model))
    assert dmbn.recalibrate(model, batches, estimator).keys() == statistics.keys() == {"bn2d", "bn1d"}
    after = snapshot(model)
    for name, (mean, var) in statistics.items():
        assert torch.equal(getattr(model, name).running_mean, mean) and torch.equal(getattr(model, name).running_var, var)
        before["state"][f"{name}.running_mean"] = after["state"][f"{name}.running_mean"]
        before["state"][f"{name}.running_var"] = after["state"][f"{name}.running_var"]
    assert_same(before, after)  # modes (the frozen ones too), momenta, counters, hooks, buffer objects


def test_recalibrated_is_each_layers_input_with_the_layers_before_it_recalibrated():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3), nn.BatchNorm1d(3))
    x = torch.randn(40, 4) * 3 + 1
    statistics = dmbn.recalibrate(model, x.split(16), "recalibrated", load=False)
    # by hand, in float64: layer 1 sees fc1(x); layer 2 sees fc2(relu(bn1 with layer 1's statistics))
    with torch.no_grad():
        first = model[0](x).double()
        mean1, var1 = first.mean(0), first.var(0)
        bn1 = (first - mean1) / (var1 + model[1].eps).sqrt() * model[1].weight.double() + model[1].bias.double()
        second = F.linear(bn1.relu(), model[3].weight.double(), model[3].bias.double())
    expected = {"1": (mean1, var1), "4": (second.mean(0), second.var(0))}
    for name, (mean, var) in expected.items():
        torch.testing.assert_close(statistics[name][0].double(), mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(statistics[name][1].double(), var, rtol=1e-5, atol=1e-6)
    # the workflow's stacked pass over one tensor gives the same statistics
    stacked_mean, stacked_var = recalibrated_statistics(model, x, chunk=16)
    torch.testing.assert_close(stacked_mean, torch.cat([statistics[n][0] for n in ("1", "4")]))
    torch.testing.assert_close(stacked_var, torch.cat([statistics[n][1] for n in ("1", "4")]))


# -- the bank in a user's own loop -------------------------------------------------------------------

def test_the_bank_in_a_users_loop_gives_the_model_back_and_keeps_every_estimator():
    torch.manual_seed(0)
    model = Mixed()
    own = {name: (m.clone(), v.clone()) for name, (m, v) in buffers_of(model).items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = [(torch.randn(8, 3, 4, 4), torch.randint(0, 3, (8,))) for _ in range(4)]
    seen: dict[str, list] = {"bn2d": [], "bn1d": []}  # the user's own hooks: each step's BN inputs
    handles = [getattr(model, n).register_forward_pre_hook(lambda m, args, n=n: seen[n].append(args[0].clone()))
               for n in seen]
    with EstimatorBank(model, betas=(0.1, 0.5), estimators=("static", "dmbn", "cma", "moment")) as bank:
        for x, y in batches:
            loss = F.cross_entropy(model.train()(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bank.observe()
    for handle in handles:
        handle.remove()
    batch_stats = [{n: population([seen[n][step]]) for n in seen} for step in range(len(batches))]
    assert bank.names == ["static-0.1", "static-0.5", "cma", "moment-0.1", "moment-0.5", "dmbn"]
    for name, (mean, var) in buffers_of(model).items():  # not the last batch's: the model's own, unshared
        assert torch.equal(mean, own[name][0]) and torch.equal(var, own[name][1]) and mean._base is None
    assert model.bn2d.momentum == 0.3 and model.bn1d.momentum is None
    assert all(not m._forward_pre_hooks for m in model.modules())
    cma_mean, cma_var = bank.statistics("cma")  # the plain mean of the batches' mean and unbiased variance
    expected_mean = np.concatenate([np.mean([s[n][0] for s in batch_stats], axis=0) for n in ("bn2d", "bn1d")])
    expected_var = np.concatenate([np.mean([s[n][1] for s in batch_stats], axis=0) for n in ("bn2d", "bn1d")])
    torch.testing.assert_close(cma_mean.double(), torch.from_numpy(expected_mean), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cma_var.double(), torch.from_numpy(expected_var), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="^the bank is closed: attach\\(\\) it again"):
        bank.observe()
    with bank:  # attach again: the estimators go on
        model.train()(batches[0][0])
        bank.observe()
    assert bank.estimator("cma").steps == 5
    with pytest.raises(KeyError, match="no estimator 'precise'; this bank has"):
        bank.close(load="precise")


# -- real models no one here wrote --------------------------------------------------------------------

def mixed_affine_false() -> nn.Module:
    model = Mixed()
    model.bn2d, model.bn1d = nn.BatchNorm2d(4, affine=False), nn.BatchNorm1d(6, affine=False)
    return model


def frozen_resnet18() -> nn.Module:
    model = resnet18(num_classes=10)
    model.layer1.eval()  # partly frozen, as in fine-tuning
    return model


def frozen_mobilenet() -> nn.Module:
    model = mobilenet_v3_small(num_classes=10)
    model.features[1].eval()
    return model


MODELS = {"mixed-1d-2d": Mixed, "affine-false": mixed_affine_false, "resnet18": frozen_resnet18,
          "mobilenet_v3_small": frozen_mobilenet}


@pytest.mark.parametrize("estimator", ["precise", "recalibrated"])
@pytest.mark.parametrize("build", MODELS.values(), ids=MODELS.keys())
def test_real_models_from_a_dict_loader(build, estimator):
    torch.manual_seed(0)
    model = build()
    size = 32 if build in (frozen_resnet18, frozen_mobilenet) else 4
    x = torch.randn(8 if estimator == "precise" else 4, 3, size, size)  # recalibrated: a pass per layer
    loader = [{"image": part, "label": torch.zeros(len(part))} for part in x.split(2)]
    modes = {name: m.training for name, m in model.named_modules()}
    statistics = dmbn.recalibrate(model, loader, estimator)
    assert {name: m.training for name, m in model.named_modules()} == modes
    if estimator == "precise":
        assert_population(statistics, train_mode_inputs(model, list(x.split(2))))
    else:  # its first layer sees the input before any BN; every layer has its statistics
        first = next(iter(statistics))
        assert_population({first: statistics[first]}, {first: train_mode_inputs(model, [x])[first]})
        assert statistics.keys() == train_mode_inputs(model, [x[:2]]).keys()
    for name, (mean, var) in buffers_of(model).items():
        assert torch.equal(mean, statistics[name][0]) and torch.equal(var, statistics[name][1])


@pytest.mark.parametrize("estimator", ["precise", "recalibrated"])
def test_a_sync_batchnorm_model_without_a_process_group_gives_the_plain_models_statistics(estimator):
    """SyncBatchNorm.convert_sync_batchnorm on CPU without torch.distributed: its train-mode forward
    falls back to plain BN (it syncs only when a process group is initialised), so the statistics
    are the unconverted model's, bitwise."""
    torch.manual_seed(0)
    plain = resnet18(num_classes=10)
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(plain))
    assert isinstance(synced.bn1, nn.SyncBatchNorm) and not torch.distributed.is_initialized()
    batches = [(x, torch.zeros(2)) for x in torch.randn(4, 3, 32, 32).split(2)]
    ours, theirs = dmbn.recalibrate(synced, batches, estimator), dmbn.recalibrate(plain, batches, estimator)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert all(torch.equal(ours[name][i], theirs[name][i]) for i in (0, 1)), name


class WithUntracked(nn.Module):
    """A BatchNorm1d without running statistics among layers with them (the issue's 'bn4')."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(4, 6), nn.BatchNorm1d(6)
        self.fc4, self.bn4 = nn.Linear(6, 5), nn.BatchNorm1d(5, track_running_stats=False)
        self.fc5, self.bn5 = nn.Linear(5, 3), nn.BatchNorm1d(3)

    def forward(self, x):
        return self.bn5(self.fc5(self.bn4(self.fc4(self.bn1(self.fc1(x)).relu())).relu()))


def test_a_layer_without_running_statistics_is_left_alone_and_named():
    torch.manual_seed(0)
    model = WithUntracked()
    batches = list(torch.randn(30, 4).split(10))
    before = snapshot(model)
    with pytest.warns(UserWarning, match="^BatchNorm layers without running statistics are left alone: bn4 "):
        statistics = dmbn.recalibrate(model, batches)
    assert list(statistics) == ["bn1", "bn5"] and model.bn4.running_mean is None
    assert_population(statistics, train_mode_inputs(model, batches))
    with pytest.warns(UserWarning, match="left alone: bn4"):
        dmbn.recalibrate(model, batches, "recalibrated", load=False)
    with pytest.warns(UserWarning, match="left alone: bn4"):
        bank = EstimatorBank(model, (0.1,), ("static", "cma"))
    model.train()(batches[0])
    bank.observe()
    bank.close()
    after = snapshot(model)
    assert after["modes"] == before["modes"] and after["hooks"] == before["hooks"]


def test_the_stacked_esm_pass_refuses_a_layer_without_running_statistics_naming_it():
    """In eval mode such a layer would normalise each stacked chunk with its own statistics,
    mixing the estimators' blocks: refused rather than measured wrong."""
    model = WithUntracked()
    statistics = torch.zeros(9), torch.ones(9)
    with pytest.raises(ValueError, match="^the stacked ESM pass cannot run BatchNorm layers without running "
                                         "statistics \\(bn4\\)"):
        dmbn.measure_esm(model, {"a": statistics}, torch.randn(10, 4), torch.zeros(10, dtype=torch.long))


def test_a_layer_run_twice_in_one_forward_is_refused_naming_it():
    shared = nn.BatchNorm1d(4)

    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc, self.shared = nn.Linear(4, 4), shared

        def forward(self, x):
            return self.shared(self.fc(self.shared(x)))

    model = Twice()
    before = snapshot(model)
    for estimator in ("precise", "recalibrated"):
        with pytest.raises(ValueError, match="^BatchNorm layer 'shared' ran 2 times in one forward"):
            dmbn.recalibrate(model, [torch.randn(5, 4)], estimator)
    assert_same(before, snapshot(model))
    bank = EstimatorBank(model, (0.1,), ("static",))
    model.train()(torch.randn(5, 4))
    with pytest.raises(ValueError, match="^BatchNorm layer 'shared' ran 2 times in train mode since attach"):
        bank.observe()


def test_a_lazy_layer_not_yet_initialised_is_refused_naming_it():
    model = nn.Sequential(nn.Linear(3, 4), nn.LazyBatchNorm1d())
    with pytest.raises(ValueError, match="^BatchNorm layer '1' is a lazy layer not initialised yet"):
        dmbn.recalibrate(model, [torch.randn(5, 3)])


def test_a_layer_that_never_runs_keeps_its_statistics_and_is_named():
    model = nn.ModuleDict({"used": nn.BatchNorm1d(3), "unused": nn.BatchNorm1d(3)})
    model.forward = lambda x: model["used"](x)
    model["unused"].running_mean.fill_(7.0)
    batches = [torch.randn(5, 3) for _ in range(2)]
    for estimator in ("precise", "recalibrated"):
        with pytest.warns(UserWarning, match="did not run in any batch keep their own statistics: unused$"):
            statistics = dmbn.recalibrate(model, batches, estimator)
        assert torch.equal(statistics["unused"][0], torch.full((3,), 7.0))
        assert_population({"used": statistics["used"]}, {"used": batches})


# -- docs/LIBRARY.md -----------------------------------------------------------------------------------

def library_example(marker: str) -> str:
    text = (ROOT / "docs/LIBRARY.md").read_text()
    return re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, re.S).group(1)


def test_the_library_pages_resnet18_example_recalibrates_from_a_dict_loader_in_one_call():
    namespace: dict = {}
    exec(compile(library_example("resnet18-example"), "docs/LIBRARY.md", "exec"), namespace)
    model, statistics, data = namespace["model"], namespace["statistics"], namespace["loader"].dataset
    assert len(statistics) == 20  # every BN layer of a ResNet-18
    for name, (mean, var) in buffers_of(model).items():
        assert torch.equal(mean, statistics[name][0]) and torch.equal(var, statistics[name][1])
    stem = model.conv1(torch.stack([data[i]["image"] for i in range(len(data))]))  # bn1's input
    assert_population({"bn1": statistics["bn1"]}, {"bn1": [stem]})


def test_the_library_pages_bank_example_runs():
    namespace: dict = {}
    exec(compile(library_example("bank-example"), "docs/LIBRARY.md", "exec"), namespace)
    model, bank = namespace["model"], namespace["bank"]
    assert not bank.attached and "dmbn" in bank.names
    dmbn_mean, _ = bank.statistics("dmbn")
    assert torch.equal(torch.cat([m for m, _ in buffers_of(model).values()]), dmbn_mean)  # loaded on close


def test_the_library_pages_test_time_example_runs_and_uses_the_stream():
    namespace: dict = {}
    exec(compile(library_example("test-time-example"), "docs/LIBRARY.md", "exec"), namespace)
    model, shifted, logits = namespace["model"], namespace["shifted"], namespace["logits"]
    assert logits.shape == (4 * 32, 3) and namespace["predictions"].shape == (4 * 32,)
    plain = model(torch.cat(shifted))  # the carried (source) statistics alone
    assert not torch.allclose(logits, plain)  # the mix let each batch's statistics in
    assert not model.training and not model[1]._forward_pre_hooks  # left as it was
