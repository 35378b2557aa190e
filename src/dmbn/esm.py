"""Estimation Shift Magnitude (Huang et al., CVPR 2022).

The *expected* statistics μ̃, σ̃² of a BN layer are the per-channel mean and variance of its input
(over samples and spatial positions) when the ESM set flows through the model in eval mode, every
BN layer normalising with the estimator under study. Then, per layer,

    ESM_μ = ‖μ̂ − μ̃‖₂        ESM_σ = ‖√σ̂² − √σ̃²‖₂

The variance is the unbiased one, the convention PyTorch's ``running_var`` uses.

All estimators are measured in one stacked pass: during the pass every BN layer is replaced by a
``StackedBatchNorm`` whose input holds one block of samples per estimator and which normalises
each block with its own estimator's statistics. Everything else in the model (linear and
convolutional layers, batch-free norms) treats samples independently in eval mode, so each block
flows exactly as in a pass of its own; the layers before the first BN, which no estimator
changes, run once on the shared samples. Moments are computed per chunk in the activations' dtype
(two passes: mean, then centred squares) and merged across chunks in float64.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from . import distributed
from .batches import CallFn, forward
from .bn_state import CallCounter, all_batchnorms, checked_layers, preserved, warn_not_run
from .statistics import (
    BatchNorm,
    LayerLayout,
    batchnorm_layers,
    channel_values,
    read_buffers,
)

# Samples x estimators per stacked forward: small enough that an MLP layer's [2048, 128]
# activations stay in a CPU core's caches between its passes (benchmarks/RESULTS.md, target 3).
ESM_CHUNK = 2048


@dataclass
class ExpectedStatistics:
    """One estimator's eval pass over a data set: flat float64 μ̃, σ̃² and the predictions."""

    mean: Tensor
    var: Tensor
    predictions: Tensor


class Moments:
    """Per-channel count, mean and centred sum of squares, merged chunk by chunk in float64
    (Chan et al.), so that neither large means nor many chunks cost precision. Means and
    variances may carry leading axes (one row per estimator). Starting from zero values, the
    first chunk's merge gives that chunk's own moments: no special case."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | float = 0.0
        self.m2: Tensor | float = 0.0

    def add(self, count: int, mean: Tensor, var: Tensor) -> None:
        """Merge a chunk of ``count`` values per channel with this (biased) mean and variance."""
        total = self.count + count
        delta = mean.double() - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + var.double() * count + delta.square() * (self.count * count / total)
        self.count = total

    def all_reduce(self, like: Tensor | None = None) -> None:
        """Under ``torch.distributed``: pool every rank's values (``dmbn.distributed``), each rank
        weighted by its count; a no-op in a single process. ``like`` (a per-channel tensor) gives
        the shape and device of a rank that added no values, which still takes part with zeros."""
        if not distributed.active():
            return
        if self.count == 0:
            if like is None:
                raise ValueError("moments without values need a tensor `like` to take part in an all-reduce")
            self.mean = self.m2 = torch.zeros_like(like, dtype=torch.float64)
        count = torch.tensor(float(self.count), dtype=torch.float64, device=self.mean.device)
        total, self.mean, self.m2 = distributed.pooled_moments(count, self.mean, self.m2)
        self.count = int(total.item())

    def mean_var(self) -> tuple[Tensor, Tensor]:
        """Mean and unbiased variance (a single value per channel: variance 0)."""
        if self.count == 0:
            raise ValueError("no values were added to these moments")
        return self.mean, self.m2 / max(self.count - 1, 1)


class StackedBatchNorm(nn.Module):
    """Stands in for one BN layer during a stacked pass over ``E`` estimators.

    Its input is ``[E * n, C, ...]``, estimator ``e``'s samples in block ``e``, or ``[n, C, ...]``
    shared by all estimators (before the first BN layer), which it expands into the ``E`` blocks.
    Each block is normalised with its estimator's statistics and, when ``moments`` is set, its
    per-channel moments are accumulated there (``[E, C]``)."""

    def __init__(self, bn: BatchNorm, mean: Tensor, var: Tensor, measured: bool) -> None:
        super().__init__()
        self.estimators = len(mean)
        scale = (var + bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight
        bias = bn.bias if bn.bias is not None else torch.zeros_like(scale[0])
        # eval-mode BN as one multiply-add, x * scale + shift, the form PyTorch's own kernel uses
        self.scale, self.shift = scale, bias - mean * scale
        self.moments = Moments() if measured else None
        self.samples = 0  # n: samples per block in the current chunk (set by the pass)

    def forward(self, x: Tensor) -> Tensor:
        blocks = self._blocks(x)
        if self.moments is not None:
            count, mean, var = _block_moments(blocks)
            self.moments.add(count, mean.expand(self.estimators, -1), var.expand(self.estimators, -1))
        broadcast = (self.estimators, 1, -1) + (1,) * (x.dim() - 2)
        return torch.addcmul(self.shift.view(broadcast), blocks, self.scale.view(broadcast)).flatten(0, 1)

    def _blocks(self, x: Tensor) -> Tensor:
        if x.shape[0] == self.estimators * self.samples:
            return x.unflatten(0, (self.estimators, self.samples))
        if x.shape[0] == self.samples:
            return x.unsqueeze(0)
        raise RuntimeError(f"a BN layer received {x.shape[0]} samples in a stacked pass of "
                           f"{self.estimators} estimators x {self.samples} samples")


def _block_moments(blocks: Tensor) -> tuple[int, Tensor, Tensor]:
    """(values per channel, mean, biased variance) of each block ``[E, n, C, ...]`` over samples
    and positions, as ``[E, C]``. Two passes (mean, then centred squares): exact enough in float32
    within a chunk, and on the CPU far faster than ``torch.var_mean`` over a batch axis."""
    dims = [1] + list(range(3, blocks.dim()))
    mean = blocks.mean(dims, keepdim=True)
    var = (blocks - mean).square_().mean(dims)
    return blocks[0].numel() // blocks.shape[2], mean.flatten(1), var


@contextmanager
def _stacked_batchnorms(model: nn.Module, mean: Tensor, var: Tensor,
                        layers: Sequence[int] | None) -> Iterator[list[StackedBatchNorm]]:
    """Replace every BN layer by a ``StackedBatchNorm`` for ``[E, channels]`` statistics (moments
    only at ``layers``, 0-based, if given); the original layers are back afterwards."""
    untracked = [name for name, bn in all_batchnorms(model) if not bn.track_running_stats]
    if untracked:
        raise ValueError(f"the stacked ESM pass cannot run BatchNorm layers without running statistics "
                         f"({', '.join(untracked)}): in eval mode they normalise each chunk with its own "
                         "statistics, mixing the estimators' blocks")
    named = batchnorm_layers(model)
    layout = LayerLayout.of(model)
    stand_ins = [StackedBatchNorm(bn, m, v, layers is None or i in layers)
                 for i, ((_, bn), m, v) in enumerate(zip(named, layout.split(mean), layout.split(var)))]
    try:
        for (name, _), stand_in in zip(named, stand_ins):
            _set_submodule(model, name, stand_in)
        yield stand_ins
    finally:
        for name, bn in named:
            _set_submodule(model, name, bn)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent), attribute, module)


@torch.no_grad()
def stacked_expected_statistics(model: nn.Module, estimators: Sequence[tuple[Tensor, Tensor]], x: Tensor,
                                chunk: int = ESM_CHUNK, layers: Sequence[int] | None = None,
                                across_ranks: bool = False) -> list[ExpectedStatistics]:
    """μ̃, σ̃² of every BN layer's input (or only ``layers``, 0-based) over ``x`` in eval mode, for
    each estimator (flat mean, var), in one stacked pass (module docstring). ``chunk`` bounds the
    samples times estimators evaluated at a time. ``across_ranks``: under ``torch.distributed``
    the moments pool every rank's ``x`` (a collective: every rank must call; predictions stay
    this rank's own).

    A model that adds a tensor computed before its first BN layer to one computed after it has no
    shared prefix; the pass then fails with an error that says so rather than mix estimators."""
    mean = torch.stack([m for m, _ in estimators])
    var = torch.stack([v for _, v in estimators])
    count = len(estimators)
    predictions = []
    with preserved(model), _stacked_batchnorms(model, mean, var, layers) as stand_ins:
        model.eval()
        for part in x.split(max(1, chunk // count)):
            for stand_in in stand_ins:
                stand_in.samples = len(part)
            if len(part) == 1:  # one sample cannot tell shared input from stacked blocks
                part = part.expand(count, *part.shape[1:])
            predictions.append(_stacked_forward(model, part, count))
    predictions = torch.cat(predictions, dim=1)
    if across_ranks:
        for stand_in in stand_ins:
            if stand_in.moments is not None:
                stand_in.moments.all_reduce()
    moments = [s.moments.mean_var() for s in stand_ins if s.moments is not None]
    return [ExpectedStatistics(torch.cat([m[e] for m, _ in moments]), torch.cat([v[e] for _, v in moments]),
                               predictions[e]) for e in range(count)]


def _stacked_forward(model: nn.Module, part: Tensor, estimators: int) -> Tensor:
    """Predictions ``[estimators, n]`` of one stacked chunk."""
    try:
        return model(part).unflatten(0, (estimators, -1)).argmax(dim=-1)
    except RuntimeError as error:
        raise RuntimeError(f"the stacked ESM pass of {estimators} estimators failed: {error} (a model "
                           "that combines a tensor computed before its first BN layer with one "
                           "computed after it cannot share its first layers; see dmbn.esm)") from error


def expected_statistics(model: nn.Module, x: Tensor, chunk: int = ESM_CHUNK,
                        layers: Sequence[int] | None = None, across_ranks: bool = False) -> ExpectedStatistics:
    """``stacked_expected_statistics`` of the model's own running statistics."""
    return stacked_expected_statistics(model, [read_buffers(model)], x, chunk, layers, across_ranks)[0]


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

    def select(self, names: Sequence[str]) -> "EsmMeasurement":
        """The measurement of ``names`` alone, in that order."""
        rows = [self.names.index(n) for n in names]
        return EsmMeasurement(list(names), self.esm_mu[rows], self.esm_sigma[rows], self.accuracy[rows])

    def rows(self, epoch: int) -> list[dict]:
        """Long-format rows ``epoch, layer, estimator, esm_mu, esm_sigma`` (layers 1-based)."""
        mu, sigma = self.esm_mu.tolist(), self.esm_sigma.tolist()
        return [{"epoch": epoch, "layer": layer + 1, "estimator": name,
                 "esm_mu": mu[e][layer], "esm_sigma": sigma[e][layer]}
                for e, name in enumerate(self.names) for layer in range(len(mu[e]))]


def measure_esm(model: nn.Module, estimators: Mapping[str, tuple[Tensor, Tensor]], x: Tensor,
                y: Tensor, chunk: int = ESM_CHUNK) -> EsmMeasurement:
    """ESM_μ, ESM_σ and ESM-set accuracy for each estimator (name -> flat (mean, var)), all
    estimators in one stacked pass."""
    layout = LayerLayout.of(model)
    passes = stacked_expected_statistics(model, list(estimators.values()), x, chunk)
    mus, sigmas, accuracies = [], [], []
    for (mean, var), expected in zip(estimators.values(), passes):
        esm_mu, esm_sigma = esm(mean, var, expected.mean, expected.var, layout)
        mus.append(esm_mu)
        sigmas.append(esm_sigma)
        accuracies.append((expected.predictions == y).double().mean())
    return EsmMeasurement(list(estimators), torch.stack(mus).cpu(), torch.stack(sigmas).cpu(),
                          torch.stack(accuracies).cpu())


@torch.no_grad()
def recalibrated_statistics(model: nn.Module, x: Tensor | Iterable, chunk: int = ESM_CHUNK,
                            call_fn: CallFn | None = None) -> tuple[Tensor, Tensor]:
    """Expected statistics set layer by layer, each measured with every upstream layer already
    recalibrated: the estimator whose ESM on ``x`` is zero by construction. In eval mode, for BN
    layer l = 1 … L in forward order, with layers 1 … l−1 already holding their recalibrated
    statistics: μ_l, σ²_l = mean and unbiased variance of layer l's input over every value of a
    channel in ``x`` (samples × positions), merged in float64. Flat (mean, var) over the layers
    with running statistics; the model's state is restored afterwards (``bn_state.preserved``).

    ``x`` is one tensor (split into chunks of ``chunk`` samples) or any iterable of batches fed
    through ``dmbn.batches.forward`` (``call_fn``); such batches are kept in a list, since every
    layer needs a pass over the same samples (L passes in all). A tensor on a model whose BN layers
    all track statistics takes the stacked pass of ``dmbn.esm`` (the workflow's path).

    Under ``torch.distributed`` each layer's statistics pool every rank's ``x`` on both paths
    (``dmbn.distributed``; every rank calls, with its own data), so all ranks end with the same."""
    named = checked_layers(model)
    untracked = len(named) < len(all_batchnorms(model))
    if isinstance(x, Tensor) and call_fn is None and not untracked:
        with preserved(model):
            for i, (_, bn) in enumerate(named):
                expected = expected_statistics(model, x, chunk, layers=[i], across_ranks=True)
                bn.running_mean.copy_(expected.mean)
                bn.running_var.copy_(expected.var)
            return read_buffers(model)
    batches = list(x.split(chunk) if isinstance(x, Tensor) else x)
    with preserved(model) as state:
        model.eval()
        ran = [_recalibrate_layer(model, state, named, i, batches, call_fn) for i in range(len(named))]
        statistics = read_buffers(model)
    warn_not_run([name for (name, _), r in zip(named, ran) if not r], "in any batch")
    return statistics


class _Measured(Exception):
    """Raised by the measuring hook: the rest of the forward cannot change what was measured."""


def _recalibrate_layer(model: nn.Module, state, named: list, index: int, batches: list,
                       call_fn: CallFn | None) -> bool:
    """Load layer ``index``'s expected statistics over ``batches`` (eval forwards; the layers before
    it hold theirs already); False if it never ran (its statistics stay). The first layer's pass
    runs whole forwards and refuses a layer that runs twice in one; later passes stop each forward
    at the measured layer's input, which halves their cost on average. Under ``torch.distributed``
    the moments pool every rank's batches (a collective per layer, on every rank, even one whose
    batches never reach the layer); False then if it ran on no rank."""
    name, bn = named[index]
    moments = Moments()
    whole = index == 0

    def measure(module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
        values = channel_values(inputs[0])
        moments.add(values.shape[1], values.mean(dim=1), values.var(dim=1, unbiased=False))
        if not whole:
            raise _Measured

    counter = CallCounter(state, named) if whole else None
    handle = state.hook(bn, measure)
    try:
        for batch in batches:
            if counter:
                counter.reset()
            try:
                forward(model, batch, call_fn)
            except _Measured:
                pass
            if counter:
                counter.ran_once("in one forward")
    finally:
        handle.remove()
        if counter:
            counter.remove()
    moments.all_reduce(bn.running_mean)  # DDP: every rank's batches
    if moments.count == 0:
        return False
    mean, var = moments.mean_var()
    bn.running_mean.copy_(mean)
    bn.running_var.copy_(var)
    return True
