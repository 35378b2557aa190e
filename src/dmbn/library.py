"""dmbn as a library: BatchNorm statistics of any model from any loader in one call.

``recalibrate(model, loader)`` replaces ``torch.optim.swa_utils.update_bn`` and fvcore's
``update_bn_stats``; ``load_statistics`` loads what it returned. The estimator bank for a user's
own training loop is ``dmbn.EstimatorBank`` (``with EstimatorBank(model) as bank: ...``).
docs/LIBRARY.md shows both.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from .batches import CallFn
from .esm import recalibrated_statistics
from .estimators import precise_statistics
from .statistics import LayerLayout, batchnorm_layers

LayerStatistics = dict[str, tuple[Tensor, Tensor]]  # BN layer name -> (running_mean, running_var)
RECALIBRATORS = ("precise", "recalibrated")


def recalibrate(model: nn.Module, loader: Iterable[Any], estimator: str = "precise", batches: int | None = 200,
                call_fn: CallFn | None = None, load: bool = True) -> LayerStatistics:
    """Re-estimate every BN layer's running statistics from ``loader`` with the model's current
    weights; return them per layer and, with ``load`` (default), load them into the layers.

    ``estimator``, per channel over every value of a channel (samples × positions) of the
    ``batches`` batches:

    * ``"precise"`` (default; PreciseBN, Wu & Johnson 2021, fvcore's ``update_bn_stats``):
      train-mode forwards, each layer seeing the batch-normalised outputs of the layers before it,
      as in training; μ = mean of all N values of the layer's input, σ² = their unbiased variance
      Σ(x − μ)²/(N − 1), pooled exactly from each batch's count, mean and variance in float64
      (``dmbn.estimators.PopulationStatistics``), so batches of different sizes weigh by their size
      and the spread of the batch means is part of σ². ``update_bn`` instead keeps the plain mean
      of its batches' means and of their unbiased variances (``momentum=None``).
    * ``"recalibrated"``: eval-mode forwards, layer by layer in forward order, each layer's μ, σ²
      (unbiased) measured with every layer before it already recalibrated: the statistics whose
      estimation shift (ESM) on these batches is zero (``dmbn.esm.recalibrated_statistics``). It
      keeps the batches in memory and passes over them once per BN layer.

    ``loader``: any iterable of batches (a ``DataLoader``, a list, a generator) — tensors,
    ``(x, y)`` tuples or lists, dicts. Every tensor of a batch moves to the model's device; by
    default the model is called with the batch's first tensor (a tuple's first item, a dict's
    first tensor value), cast to the model's floating dtype, as ``update_bn`` calls it;
    ``call_fn(model, batch)`` calls it any other way (several inputs, a dict's key). Users keep
    asking ``update_bn`` for exactly this: pytorch/pytorch#49082 ("swa_utils.bn_update is too
    opinionated in how it calls the model", the ``call_fn`` request), #59363 ("SWA with mixed-
    precision and distributed training": a dict-batch loader, BN updated by hand).

    ``batches``: at most this many batches (default 200, fvcore's; ``None``: the whole loader).
    A loader that ends sooner is used whole, with a warning that says how many batches it gave.

    Runs under ``torch.no_grad()``. Leaves the model exactly as it was — each module's mode,
    momenta, ``num_batches_tracked``, hooks, and (without ``load``) the running statistics
    (``dmbn.bn_state.preserved``). Layers without running statistics (``track_running_stats=False``)
    are left alone and named in a warning, as are layers that never ran (they keep their own
    statistics); a layer that runs twice in one forward is refused, naming it.

    Returns ``{layer name: (running_mean, running_var)}`` for every layer with running statistics,
    in forward order, in the buffers' dtype and device; ``running_var`` is unbiased, as PyTorch's.
    """
    if estimator not in RECALIBRATORS:
        raise ValueError(f"unknown estimator {estimator!r} for recalibrate(): choose one of "
                         f"{', '.join(RECALIBRATORS)} (the bank, dmbn.EstimatorBank, holds the others)")
    if batches is not None and batches < 1:
        raise ValueError(f"batches={batches}: give at least 1 (None: the whole loader)")
    if not batchnorm_layers(model):
        raise ValueError("the model has no BatchNorm layer with running statistics to recalibrate "
                         "(layers built with track_running_stats=False are left alone)")
    feed = _limited(loader, batches)
    if estimator == "precise":
        mean, var = precise_statistics(model, feed, call_fn)
    else:
        mean, var = recalibrated_statistics(model, feed, call_fn=call_fn)
    statistics = per_layer(model, mean, var)
    if load:
        load_statistics(model, statistics)
    return statistics


def _limited(loader: Iterable[Any], batches: int | None):
    """The loader's first ``batches`` batches, with a warning when it gives fewer."""
    given = 0
    for batch in itertools.islice(loader, batches):
        given += 1
        yield batch
    if batches is not None and given < batches:
        warnings.warn(f"the loader gave {given} batches of the {batches} asked: the statistics are "
                      f"pooled over those {given} (batches=None uses the whole loader without this warning)",
                      stacklevel=4)


def per_layer(model: nn.Module, mean: Tensor, var: Tensor) -> LayerStatistics:
    """Flat (mean, var) over the BN layers with running statistics, as ``{layer name: (mean, var)}``."""
    layout = LayerLayout.of(model)
    return {name: (m, v) for name, m, v in zip(layout.names, layout.split(mean), layout.split(var))}


@torch.no_grad()
def load_statistics(model: nn.Module, statistics: LayerStatistics) -> None:
    """Copy ``{layer name: (mean, var)}`` (what ``recalibrate`` returns) into those BN layers'
    running statistics; a name that is not a BN layer with running statistics is refused."""
    layers = dict(batchnorm_layers(model))
    unknown = [name for name in statistics if name not in layers]
    if unknown:
        raise KeyError(f"no BatchNorm layer with running statistics named {', '.join(map(repr, unknown))} "
                       f"in the model (it has {', '.join(layers) or 'none'})")
    for name, (mean, var) in statistics.items():
        layers[name].running_mean.copy_(mean)
        layers[name].running_var.copy_(var)
