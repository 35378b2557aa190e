"""Estimation Shift Magnitude (Huang et al., CVPR 2022).

The *expected* statistics μ̃, σ̃² of a BN layer are the per-channel mean and variance of its input
(over samples and spatial positions) when the ESM set flows through the model in eval mode, every
BN layer normalising with the estimator under study. Then, per layer,

    ESM_μ = ‖μ̂ − μ̃‖₂        ESM_σ = ‖√σ̂² − √σ̃²‖₂

The variance is the unbiased one, the convention PyTorch's ``running_var`` uses. Moments are
computed per chunk in the activations' dtype (two passes: mean, then centred squares) and merged
across chunks in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from .statistics import LayerLayout, batchnorm_layers, preserved_statistics, read_buffers, using_statistics


@dataclass
class ExpectedStatistics:
    """One eval pass over a data set: flat float64 μ̃, σ̃² and the model's predictions."""

    mean: Tensor
    var: Tensor
    predictions: Tensor


class Moments:
    """Per-channel count, mean and centred sum of squares, merged chunk by chunk in float64
    (Chan et al.), so that neither large means nor many chunks cost precision."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, count: int, mean: Tensor, var: Tensor) -> None:
        """Merge a chunk of ``count`` values per channel with this (biased) mean and variance."""
        mean, m2 = mean.double(), var.double() * count
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * count / total)
        self.count = total

    def mean_var(self) -> tuple[Tensor, Tensor]:
        """Mean and unbiased variance."""
        return self.mean, self.m2 / max(self.count - 1, 1)


def _channel_moments(x: Tensor) -> tuple[int, Tensor, Tensor]:
    """(values per channel, mean, biased variance) of a BN input over all axes but the channel.

    Two passes (mean, then centred squares): exact enough in float32 within a chunk, and on the
    CPU an order of magnitude faster than ``torch.var_mean`` over the batch axis."""
    dims = [d for d in range(x.dim()) if d != 1]
    x = x.detach()
    mean = x.mean(dims, keepdim=True)
    var = (x - mean).square().mean(dims)
    return x.numel() // x.shape[1], mean.flatten(), var


def _expected(moments: list[Moments], predictions: Tensor) -> ExpectedStatistics:
    """Flat μ̃, σ̃² from per-layer moments (in layer order), with the pass's predictions."""
    stats = [m.mean_var() for m in moments]
    return ExpectedStatistics(torch.cat([m for m, _ in stats]), torch.cat([v for _, v in stats]),
                              predictions)


@torch.no_grad()
def expected_statistics(model: nn.Module, x: Tensor, chunk: int = 4096,
                        layers: list[int] | None = None) -> ExpectedStatistics:
    """μ̃, σ̃² of every BN layer's input (or only ``layers``, 0-based) over ``x`` in eval mode."""
    bns = [bn for _, bn in batchnorm_layers(model)]
    chosen = range(len(bns)) if layers is None else layers
    moments = {i: Moments() for i in chosen}
    hooks = [bns[i].register_forward_pre_hook(
        lambda module, inputs, m=moments[i]: m.add(*_channel_moments(inputs[0]))) for i in chosen]
    was_training = model.training
    model.eval()
    try:
        predictions = torch.cat([model(part).argmax(dim=1) for part in x.split(chunk)])
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return _expected([moments[i] for i in chosen], predictions)


@torch.no_grad()
def stacked_expected_statistics(model: nn.Module, estimators: list[tuple[Tensor, Tensor]], x: Tensor,
                                chunk: int = 4096) -> list[ExpectedStatistics]:
    """``expected_statistics`` for many estimators in one batched pass: the estimators' statistics
    are stacked along a new axis and ``torch.func.vmap`` runs the model once over all of them
    (layers before the first BN, which no estimator changes, run once). ``chunk`` bounds the
    samples times estimators evaluated at a time."""
    from torch.func import functional_call, vmap

    layout = LayerLayout.of(model)
    bn_names, bns = zip(*batchnorm_layers(model))
    stacked_mean = torch.stack([m for m, _ in estimators])
    stacked_var = torch.stack([v for _, v in estimators])
    buffers = dict(model.named_buffers())
    in_dims = {name: None for name in buffers}
    for name, mean, var in zip(bn_names, layout.split(stacked_mean), layout.split(stacked_var)):
        buffers[f"{name}.running_mean"], buffers[f"{name}.running_var"] = mean, var
        in_dims[f"{name}.running_mean"] = in_dims[f"{name}.running_var"] = 0
    params = dict(model.named_parameters())

    counts: list[int] = []  # values per channel of each BN input (plain ints may leave vmap)

    def capture(captured: list, inputs: tuple[Tensor, ...]) -> None:
        count, mean, var = _channel_moments(inputs[0])
        counts.append(count)
        captured.append((mean, var))

    def forward(buffers: dict, part: Tensor):
        captured: list[tuple[Tensor, Tensor]] = []
        hooks = [bn.register_forward_pre_hook(lambda module, inputs: capture(captured, inputs)) for bn in bns]
        try:
            logits = functional_call(model, (params, buffers), (part,))
        finally:
            for hook in hooks:
                hook.remove()
        return logits.argmax(dim=1), [m for m, _ in captured], [v for _, v in captured]

    was_training = model.training
    model.eval()
    moments = [[Moments() for _ in bns] for _ in estimators]
    predictions = []
    try:
        for part in x.split(max(1, chunk // len(estimators))):
            counts.clear()
            predicted, means, variances = vmap(forward, in_dims=(in_dims, None))(buffers, part)
            predictions.append(predicted)
            for layer, (mean, var, count) in enumerate(zip(means, variances, counts)):
                for e in range(len(estimators)):
                    moments[e][layer].add(count, mean[e], var[e])
    finally:
        model.train(was_training)
    predictions = torch.cat(predictions, dim=1)
    return [_expected(moments[e], predictions[e]) for e in range(len(estimators))]


def esm(est_mean: Tensor, est_var: Tensor, exp_mean: Tensor, exp_var: Tensor,
        layout: LayerLayout) -> tuple[Tensor, Tensor]:
    """ESM_μ and ESM_σ per layer for flat estimated and expected statistics."""
    est_mean, est_var = est_mean.double(), est_var.double().clamp_min(0.0)
    esm_mu = layout.layer_norms(est_mean - exp_mean.to(est_mean.device))
    esm_sigma = layout.layer_norms(est_var.sqrt() - exp_var.to(est_var.device).sqrt())
    return esm_mu, esm_sigma


@dataclass
class EsmMeasurement:
    """ESM of several estimators on one ESM set: ``esm_mu``/``esm_sigma`` are ``[estimators, layers]``."""

    names: list[str]
    esm_mu: Tensor
    esm_sigma: Tensor
    accuracy: Tensor

    def rows(self, epoch: int) -> list[dict]:
        """Long-format rows ``epoch, layer, estimator, esm_mu, esm_sigma`` (layers 1-based)."""
        mu, sigma = self.esm_mu.tolist(), self.esm_sigma.tolist()
        return [{"epoch": epoch, "layer": layer + 1, "estimator": name,
                 "esm_mu": mu[e][layer], "esm_sigma": sigma[e][layer]}
                for e, name in enumerate(self.names) for layer in range(len(mu[e]))]


def measure_esm(model: nn.Module, estimators: Mapping[str, tuple[Tensor, Tensor]], x: Tensor,
                y: Tensor, chunk: int = 4096, stacked: bool = False) -> EsmMeasurement:
    """ESM_μ, ESM_σ and ESM-set accuracy for each estimator (name -> flat (mean, var)).

    ``stacked`` evaluates all estimators in one batched pass (``stacked_expected_statistics``)
    instead of one pass per estimator; the results agree to float rounding."""
    layout = LayerLayout.of(model)
    if stacked:
        passes = stacked_expected_statistics(model, list(estimators.values()), x, chunk)
    else:
        passes = []
        for mean, var in estimators.values():
            with using_statistics(model, mean, var):
                passes.append(expected_statistics(model, x, chunk))
    mus, sigmas, accuracies = [], [], []
    for (mean, var), expected in zip(estimators.values(), passes):
        esm_mu, esm_sigma = esm(mean, var, expected.mean, expected.var, layout)
        mus.append(esm_mu)
        sigmas.append(esm_sigma)
        accuracies.append((expected.predictions == y).double().mean())
    return EsmMeasurement(list(estimators), torch.stack(mus).cpu(), torch.stack(sigmas).cpu(),
                          torch.stack(accuracies).cpu())


@torch.no_grad()
def recalibrated_statistics(model: nn.Module, x: Tensor, chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Expected statistics set layer by layer, each measured with every upstream layer already
    recalibrated: the estimator whose ESM on ``x`` is zero by construction."""
    bns = [bn for _, bn in batchnorm_layers(model)]
    with preserved_statistics(model):
        for i, bn in enumerate(bns):
            expected = expected_statistics(model, x, chunk, layers=[i])
            bn.running_mean.copy_(expected.mean)
            bn.running_var.copy_(expected.var)
        return read_buffers(model)
