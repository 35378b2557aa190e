import pytest
import torch
from torch import nn

from dmbn.esm import Moments, esm, expected_statistics, measure_esm, recalibrated_statistics
from dmbn.models import build_model
from dmbn.statistics import LayerLayout, batchnorm_layers, using_statistics


def bn_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every BN layer's input in eval mode, captured directly."""
    captured = []
    hooks = [bn.register_forward_pre_hook(lambda m, inp: captured.append(inp[0].detach().double()))
             for _, bn in batchnorm_layers(model)]
    model.eval()
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return captured


def test_esm_matches_a_direct_computation_on_a_tiny_mlp():
    torch.manual_seed(0)
    model = build_model("mlp", (1, 1, 6), 3, depth=3, width=5)
    x = torch.randn(50, 1, 1, 6)
    est_mean, est_var = torch.randn(15), torch.rand(15) + 0.5
    with using_statistics(model, est_mean, est_var):
        inputs = bn_inputs(model, x)
        measured = measure_esm(model, {"e": (est_mean, est_var)}, x, torch.zeros(50, dtype=torch.long))
    for layer, h in enumerate(inputs):
        mu, var = h.mean(0), h.var(0)  # unbiased, as PyTorch's running_var
        sl = slice(5 * layer, 5 * layer + 5)
        # chunk moments are float32 (two-pass), merged in float64: float32 rounding at most
        assert torch.isclose(measured.esm_mu[0, layer], (est_mean[sl].double() - mu).norm(), rtol=1e-6)
        assert torch.isclose(measured.esm_sigma[0, layer],
                             (est_var[sl].double().sqrt() - var.sqrt()).norm(), rtol=1e-6)


def test_expected_statistics_of_conv_layers_average_over_samples_and_positions():
    torch.manual_seed(0)
    model = build_model("resnet50", (3, 8, 8), 4, resnet_blocks=(1, 1, 1, 1), resnet_channels=4)
    x = torch.randn(10, 3, 8, 8)
    inputs = bn_inputs(model, x)
    expected = expected_statistics(model, x, chunk=3)  # chunking must not change the result
    layout = LayerLayout.of(model)
    for h, mean, var in zip(inputs, layout.split(expected.mean), layout.split(expected.var)):
        flat = h.transpose(0, 1).reshape(h.shape[1], -1)
        # float32 convolutions may round differently for other batch sizes: float32 tolerance
        torch.testing.assert_close(mean, flat.mean(1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(var, flat.var(1), rtol=1e-5, atol=1e-6)


def test_esm_of_recalibrated_statistics_is_zero(data):
    torch.manual_seed(0)
    model = build_model("mlp", data.input_shape, 3, depth=6, width=16)
    model.train()(data.x_train)  # some non-trivial running statistics first
    mean, var = recalibrated_statistics(model, data.x_esm)
    measured = measure_esm(model, {"recalibrated": (mean, var)}, data.x_esm, data.y_esm)
    assert measured.esm_mu.max() < 1e-4 and measured.esm_sigma.max() < 1e-4
    default = measure_esm(model, {"initial": (torch.zeros(96), torch.ones(96))}, data.x_esm, data.y_esm)
    assert default.esm_mu.max() > 0.1  # so the check above can fail


def test_esm_is_l2_norm_per_layer():
    layout = LayerLayout(("a", "b"), (2, 1))
    esm_mu, esm_sigma = esm(torch.tensor([3.0, 4.0, 1.0]), torch.tensor([4.0, 9.0, 1.0]),
                            torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), layout)
    assert esm_mu.tolist() == [5.0, 1.0]
    assert esm_sigma.tolist() == [(1.0 + 4.0) ** 0.5, 0.0]


def test_esm_is_computed_on_the_estimates_device():
    """Expected statistics from another device (a CPU pass, estimates on an accelerator) are moved
    to the estimates' device; the meta device stands in for a GPU."""
    layout = LayerLayout(("a",), (2,))
    esm_mu, esm_sigma = esm(torch.zeros(2, device="meta"), torch.ones(2, device="meta"),
                            torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64), layout)
    assert esm_mu.device.type == esm_sigma.device.type == "meta" and esm_mu.shape == (1,)


@pytest.mark.parametrize("chunks", [[[1.0, 2.0]], [[1.0], [2.0]], [[5.0], [1.0, 2.0, 9.0], [4.0, 4.0]]])
def test_moments_merge_chunks_into_the_unbiased_variance_of_all_values(chunks):
    moments = Moments()
    for chunk in chunks:
        values = torch.tensor(chunk, dtype=torch.float64)
        moments.add(len(chunk), values.mean()[None], values.var(unbiased=False)[None])
    everything = torch.tensor(sum(chunks, []), dtype=torch.float64)
    mean, var = moments.mean_var()
    assert mean.item() == pytest.approx(everything.mean().item(), abs=1e-12)
    assert var.item() == pytest.approx(everything.var().item(), abs=1e-12)  # n − 1, also for n = 2


def test_moments_of_nothing_are_refused():
    with pytest.raises(ValueError, match="no values"):
        Moments().mean_var()


def test_measure_esm_evaluates_in_chunks_of_the_given_size():
    """``chunk`` bounds samples × estimators per forward: 10 samples, 2 estimators, chunk 4 ->
    2 samples a forward, 5 forwards (the default chunk would take them in one)."""
    torch.manual_seed(0)
    model = build_model("mlp", (1, 1, 6), 3, depth=2, width=4)
    layout = LayerLayout.of(model)
    forwards = []
    model.register_forward_pre_hook(lambda m, inp: forwards.append(inp[0].shape[0]))
    estimators = {n: (torch.zeros(layout.channels), torch.ones(layout.channels)) for n in ("a", "b")}
    measure_esm(model, estimators, torch.randn(10, 1, 1, 6), torch.zeros(10, dtype=torch.long), chunk=4)
    assert forwards == [2] * 5


@pytest.mark.parametrize("chunk", [16, 3, 1])  # 3 estimators: parts of 5, 1 and 1 samples
@pytest.mark.parametrize("arch, shape", [("mlp", (1, 1, 12)), ("resnet50-xbnblock-p2", (3, 8, 8))])
def test_stacked_pass_equals_a_direct_computation_per_estimator(arch, shape, chunk):
    # XBNBlock-P2's first BN layers sit in two branches (main and downsample) after a GroupNorm
    # stem: both expand the shared samples into per-estimator blocks
    torch.manual_seed(0)
    model = build_model(arch, shape, 3, depth=4, width=8, resnet_blocks=(1, 1, 1, 1), resnet_channels=4)
    with torch.no_grad():  # trained-looking BN scales and shifts, not the initial 1 and 0
        for _, bn in batchnorm_layers(model):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
    assert_stacked_pass_matches_direct(model, torch.randn(11, *shape), estimators=3, chunk=chunk)


@pytest.mark.parametrize("estimators", [1, 2])
def test_stacked_pass_of_batchnorm_without_affine_parameters(estimators):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4, affine=False), nn.ReLU(), nn.Linear(4, 3),
                          nn.BatchNorm1d(3, affine=False))
    assert_stacked_pass_matches_direct(model, torch.randn(9, 5), estimators, chunk=64)


def assert_stacked_pass_matches_direct(model: nn.Module, x: torch.Tensor, estimators: int, chunk: int) -> None:
    """Every estimator's ESM and accuracy from one stacked pass equal a pass of its own, measured
    with forward hooks on the model as it is."""
    y = torch.arange(len(x)) % 3
    layout = LayerLayout.of(model)
    estimators = {f"e{i}": (torch.randn(layout.channels) * 0.1, torch.rand(layout.channels) + 0.5)
                  for i in range(estimators)}
    measured = measure_esm(model, estimators, x, y, chunk=chunk)
    for e, (mean, var) in enumerate(estimators.values()):
        with using_statistics(model, mean, var):
            inputs = bn_inputs(model, x)
            predictions = model(x).argmax(dim=1)
        flat = [h.transpose(0, 1).reshape(h.shape[1], -1) for h in inputs]
        direct_mu = layout.layer_norms(mean.double() - torch.cat([h.mean(1) for h in flat]))
        direct_sigma = layout.layer_norms(var.double().sqrt() - torch.cat([h.var(1) for h in flat]).sqrt())
        torch.testing.assert_close(measured.esm_mu[e], direct_mu, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(measured.esm_sigma[e], direct_sigma, rtol=1e-4, atol=1e-5)
        assert measured.accuracy[e] == (predictions == y).double().mean()


def test_stacked_pass_refuses_a_shortcut_around_the_first_batchnorm():
    class Shortcut(nn.Module):  # x + BN(linear(x)): no prefix is shared by all estimators
        def __init__(self):
            super().__init__()
            self.linear, self.bn = nn.Linear(4, 4), nn.BatchNorm1d(4)

        def forward(self, x):
            return x + self.bn(self.linear(x))

    estimators = {"a": (torch.zeros(4), torch.ones(4)), "b": (torch.ones(4), torch.ones(4))}
    with pytest.raises(RuntimeError) as refused:
        measure_esm(Shortcut(), estimators, torch.randn(6, 4), torch.zeros(6, dtype=torch.long))
    message = str(refused.value)
    assert message.startswith("the stacked ESM pass of 2 estimators failed: ")
    assert message.endswith("(a model that combines a tensor computed before its first BN layer with one "
                            "computed after it cannot share its first layers; see dmbn.esm)")


def test_stacked_pass_names_a_batchnorm_that_receives_other_samples():
    """A model that drops samples before a BN layer: the layer cannot tell the estimators' blocks
    apart, and says how many samples it got and expected."""
    class DropsOne(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear, self.bn = nn.Linear(4, 3), nn.BatchNorm1d(3)

        def forward(self, x):
            return self.bn(self.linear(x)[:-1])

    estimators = {"a": (torch.zeros(3), torch.ones(3)), "b": (torch.ones(3), torch.ones(3))}
    with pytest.raises(RuntimeError, match=r"failed: a BN layer received 4 samples in a stacked pass "
                                           r"of 2 estimators x 5 samples \("):
        measure_esm(DropsOne(), estimators, torch.randn(5, 4), torch.zeros(5, dtype=torch.long))
