"""BatchNorm running statistics as flat per-channel vectors, and loading them into a model.

Every estimator in this project is a pair of flat vectors (mean, variance) over all channels of
all BN layers, concatenated in forward order. ``LayerLayout`` splits them back per layer.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn

from .bn_state import BatchNorm, preserved  # noqa: F401  (BatchNorm: dmbn.esm imports it from here)
from .bn_state import tracked_layers as batchnorm_layers  # layers without running statistics: left alone
from .files import load_pt


@dataclass(frozen=True)
class LayerLayout:
    """Where each BN layer's channels sit in a flat statistics vector (layers are 1-based in logs)."""

    names: tuple[str, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, model: nn.Module) -> "LayerLayout":
        layers = batchnorm_layers(model)
        return cls(tuple(n for n, _ in layers), tuple(bn.num_features for _, bn in layers))

    @property
    def channels(self) -> int:
        return sum(self.sizes)

    def split(self, flat: Tensor) -> tuple[Tensor, ...]:
        """Per-layer slices of ``flat`` along its last axis."""
        return flat.split(list(self.sizes), dim=-1)

    def per_channel(self, per_layer: Tensor) -> Tensor:
        """Repeat one value per layer (last axis) over that layer's channels."""
        repeats = torch.tensor(self.sizes, device=per_layer.device)
        return per_layer.repeat_interleave(repeats, dim=-1)

    def layer_norms(self, flat: Tensor) -> Tensor:
        """L2 norm of each layer's slice: ``[..., channels] -> [..., layers]``."""
        return torch.stack([part.norm(dim=-1) for part in self.split(flat)], dim=-1)


def channel_values(x: Tensor) -> Tensor:
    """A BN layer's input as ``[channels, samples x positions]``: the values each channel's
    statistics are taken over (dimension 1 is the channel, as in every ``nn.BatchNorm*d``)."""
    return x.transpose(0, 1).flatten(1)


def read_buffers(model: nn.Module) -> tuple[Tensor, Tensor]:
    """The model's current BN running statistics as flat (mean, var) copies."""
    layers = [bn for _, bn in batchnorm_layers(model)]
    return (torch.cat([bn.running_mean for bn in layers]).clone(),
            torch.cat([bn.running_var for bn in layers]).clone())


def write_buffers(model: nn.Module, mean: Tensor, var: Tensor) -> None:
    """Copy flat statistics into the BN buffers in place (views into shared storage stay views)."""
    layout = LayerLayout.of(model)
    if mean.shape[-1] != layout.channels or var.shape[-1] != layout.channels:
        raise ValueError(f"statistics have {mean.shape[-1]} channels, the model's BN layers {layout.channels}")
    layers = [bn for _, bn in batchnorm_layers(model)]
    with torch.no_grad():
        for bn, m, v in zip(layers, layout.split(mean), layout.split(var)):
            bn.running_mean.copy_(m)
            bn.running_var.copy_(v)


preserved_statistics = preserved  # the one save/restore of BN state (dmbn.bn_state)


@contextmanager
def using_statistics(model: nn.Module, mean: Tensor, var: Tensor) -> Iterator[nn.Module]:
    """Evaluate ``model`` as if it had learnt these running statistics; restore them afterwards."""
    with preserved(model):
        write_buffers(model, mean, var)
        yield model


@dataclass
class EstimatorStatistics:
    """The final statistics of named estimators: ``mean``/``var`` are ``[estimators, channels]``."""

    names: list[str]
    mean: Tensor
    var: Tensor
    layout: LayerLayout
    # estimators without fixed statistics (prediction-time BN): name -> samples per test batch
    # (None: the whole set as one batch); evaluated by dmbn.evaluate, not by loading statistics
    prediction_batches: dict[str, int | None] = field(default_factory=dict)

    def index(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"no estimator {name!r}; this run has {self.names}")
        return self.names.index(name)

    def of(self, name: str) -> tuple[Tensor, Tensor]:
        i = self.index(name)
        return self.mean[i], self.var[i]

    def use(self, model: nn.Module, name: str):
        """Context manager: ``model`` normalises with estimator ``name``'s statistics."""
        return using_statistics(model, *self.of(name))

    def save(self, path: str | Path) -> None:
        """Write atomically (a partial file is renamed into place)."""
        partial = Path(str(path) + ".part")
        state = {"names": list(self.names), "mean": self.mean.cpu(), "var": self.var.cpu(),
                 "layer_names": list(self.layout.names), "layer_sizes": list(self.layout.sizes)}
        if self.prediction_batches:  # only then: the files of runs without it stay as they were
            state["prediction_batches"] = dict(self.prediction_batches)
        torch.save(state, partial)
        partial.replace(path)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "EstimatorStatistics":
        state = load_pt(path, map_location=device)
        layout = LayerLayout(tuple(state["layer_names"]), tuple(state["layer_sizes"]))
        return cls(list(state["names"]), state["mean"], state["var"], layout,
                   dict(state.get("prediction_batches", {})))
